"""A cheaper Gaussian likelihood for the module's training step.

:func:`gaussian_nll` is the negative log-density of a Gaussian with per-feature standard
deviations, summed over features, in four passes over the data instead of the dozen of
:class:`torch.distributions.Normal` (and without its argument validation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cplmixvi.nn._random import hashed_uniform


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """``-log N(x | mean, exp(log_std)^2)`` summed over the last (feature) dimension.

    Parameters
    ----------
    x, mean
        Observations and means, broadcastable to ``(..., B, G)``.
    log_std
        Log standard deviation per feature, broadcastable to ``(..., 1, G)``.

    Returns
    -------
    Tensor of shape ``(..., B)``.
    """
    if torch.compiler.is_compiling():
        return _GaussianNLL.apply(x, mean, log_std)
    z = (x - mean) * torch.exp(-log_std)
    constant = log_std.sum(-1) + 0.5 * x.shape[-1] * math.log(2 * math.pi)
    return 0.5 * z.square().sum(-1) + constant


class _GaussianNLL(torch.autograd.Function):
    """:func:`gaussian_nll` with a hand-written backward pass, for ``torch.compile``.

    The forward pass keeps only the standardised residual ``z = (x - mean) / std``, in the
    precision of ``mean`` (bfloat16 under bf16 autocast, where the gradient reaching the
    output layer is bfloat16 anyway), and the backward pass reads it once:
    ``d mean = -g z / std`` and ``d log_std = sum_cells g (1 - z^2)``. Autograd's own graph
    saves the residual in float32 and reads it in several passes.
    """

    @staticmethod
    def forward(ctx, x, mean, log_std):
        inv_std = torch.exp(-log_std)
        z = (x - mean) * inv_std
        ctx.save_for_backward(z.to(mean.dtype), inv_std)
        ctx.shapes = (x.shape, mean.shape, log_std.shape)
        constant = log_std.sum(-1) + 0.5 * x.shape[-1] * math.log(2 * math.pi)
        return 0.5 * z.square().sum(-1) + constant

    @staticmethod
    def backward(ctx, grad):
        z, inv_std = ctx.saved_tensors
        x_shape, mean_shape, log_std_shape = ctx.shapes
        g = grad.unsqueeze(-1)
        z = z.float()
        grad_x = grad_mean = grad_log_std = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            dx = g * z * inv_std
            grad_x = dx.sum_to_size(x_shape) if ctx.needs_input_grad[0] else None
            grad_mean = (-dx).sum_to_size(mean_shape) if ctx.needs_input_grad[1] else None
        if ctx.needs_input_grad[2]:
            grad_log_std = (g * (1.0 - z.square())).sum_to_size(log_std_shape)
        return grad_x, grad_mean, grad_log_std


def normal_kl(
    q_mean: torch.Tensor, q_std: torch.Tensor, p_mean: torch.Tensor, p_std: torch.Tensor
) -> torch.Tensor:
    """``KL(N(q_mean, q_std^2) || N(p_mean, p_std^2))`` elementwise (not summed).

    The arithmetic of :func:`torch.distributions.kl_divergence` for two ``Normal`` (same
    numbers, bit for bit) without its dispatch, which ``torch.compile`` cannot trace.
    """
    var_ratio = (q_std / p_std).pow(2)
    t1 = ((q_mean - p_mean) / p_std).pow(2)
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())


def gumbel_softmax(logits: torch.Tensor, tau: torch.Tensor | float) -> torch.Tensor:
    """Relaxed one-hot sample ``softmax((logits + g) / tau)``, ``g`` standard Gumbel noise.

    Eager: :func:`torch.nn.functional.gumbel_softmax` (``hard=False``), the same numbers.
    Under ``torch.compile`` the noise is ``-log(-log(u))`` of counter-based uniforms
    (:func:`~cplmixvi.nn._random.hashed_uniform`), which the compiler fuses into the softmax
    (the same distribution, another stream).
    """
    if not torch.compiler.is_compiling():
        return F.gumbel_softmax(logits, tau=tau, hard=False)
    gumbels = -torch.log(-torch.log(hashed_uniform(logits.shape, logits.device)))
    return torch.softmax((logits + gumbels) / tau, dim=-1)
