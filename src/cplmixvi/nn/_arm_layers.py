"""Linear layers and MLPs whose weights are stacked on a leading arm dimension.

Every arm of a coupled model has its own weights, but all arms run as one batched
matrix multiplication (``torch.baddbmm``): tensors flow as ``(n_arms, n_cells, n_features)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cplmixvi.nn._dispatch import formulation


class ArmLinear(nn.Module):
    """``A`` independent affine maps applied in one batched call.

    Parameters
    ----------
    n_arms
        Number of arms ``A``; each has its own weight and bias.
    n_in
        Input features.
    n_out
        Output features.
    n_cat
        Number of categories of an optional categorical covariate (e.g. batch). When > 0,
        a per-arm embedding of the covariate is added to the output, which is exactly a
        linear layer applied to the one-hot covariate concatenated to the input (as scVI does).
    """

    def __init__(self, n_arms: int, n_in: int, n_out: int, n_cat: int = 0):
        super().__init__()
        bound = 1.0 / math.sqrt(n_in + n_cat)
        self.weight = nn.Parameter(torch.empty(n_arms, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_arms, 1, n_out).uniform_(-bound, bound))
        self.cat_weight = (
            nn.Parameter(torch.empty(n_arms, n_cat, n_out).uniform_(-bound, bound))
            if n_cat > 0
            else None
        )

    def forward(self, x: torch.Tensor, cat: torch.Tensor | None = None) -> torch.Tensor:
        """Map ``x`` of shape ``(A, B, n_in)`` to ``(A, B, n_out)``; ``cat`` holds ``B`` codes."""
        out = formulation("arm_linear", _affine)(x, self.weight, self.bias)
        if self.cat_weight is not None and cat is not None:
            out = out + self.cat_weight[:, cat.reshape(-1).long()]
        return out


class ArmBatchNorm(nn.Module):
    """Batch normalisation with separate statistics and affine parameters per arm and feature."""

    def __init__(self, n_arms: int, n_features: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(n_arms * n_features, momentum=0.01, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` of shape ``(A, B, F)`` over the cells of the minibatch."""
        return formulation("arm_batch_norm", _native_batch_norm)(self.bn, x)


class ArmMLP(nn.Module):
    """Per-arm fully connected network: ``n_layers`` x (linear, batch norm, ReLU, dropout).

    Parameters
    ----------
    n_arms
        Number of arms.
    n_in
        Input features.
    n_hidden
        Width of every hidden layer (the output width too).
    n_layers
        Number of hidden layers (>= 1).
    n_cat
        Categories of a covariate injected into every layer (0 for none).
    dropout_rate
        Dropout after each activation.
    batch_norm
        Whether to batch-normalise each hidden layer.
    """

    def __init__(
        self,
        n_arms: int,
        n_in: int,
        n_hidden: int,
        n_layers: int = 2,
        n_cat: int = 0,
        dropout_rate: float = 0.1,
        batch_norm: bool = True,
    ):
        super().__init__()
        widths = [n_in] + [n_hidden] * n_layers
        self.linears = nn.ModuleList(
            ArmLinear(n_arms, w_in, w_out, n_cat)
            for w_in, w_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.norms = nn.ModuleList(
            ArmBatchNorm(n_arms, n_hidden) if batch_norm else nn.Identity() for _ in self.linears
        )
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()

    def forward(
        self, x: torch.Tensor, cat: torch.Tensor | None = None, dropout: bool = True
    ) -> torch.Tensor:
        """Map ``x`` of shape ``(A, B, n_in)`` to ``(A, B, n_hidden)``; ``dropout=False`` skips
        the dropout layers (in training mode too)."""
        for linear, norm in zip(self.linears, self.norms, strict=True):
            x = torch.relu(norm(linear(x, cat)))
            if dropout:
                x = self.dropout(x)
        return x


def _affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ weight + bias`` per arm (``baddbmm`` writes the bias first, then the product)."""
    return torch.baddbmm(bias, x, weight)


def _native_batch_norm(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """Batch norm of ``(A, B, F)`` through the native kernel on its ``(B, A * F)`` view."""
    n_arms, n_cells, n_feat = x.shape
    flat = x.transpose(0, 1).reshape(n_cells, n_arms * n_feat)
    return bn(flat).reshape(n_cells, n_arms, n_feat).transpose(0, 1)
