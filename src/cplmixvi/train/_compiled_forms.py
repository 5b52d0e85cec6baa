"""The compiled training step's formulations of the layers that need another one.

Each function replaces, while ``torch.compile`` traces, the eager formulation registered under
the same name (:func:`cplmixvi.nn._dispatch.formulation`); nothing else of the package knows of
them. Where they draw random numbers, they draw from the same distribution as the eager layer
with another stream (counter-based bits, :mod:`cplmixvi.train._random`, which the compiler
fuses into the consumer instead of drawing a tensor); ``tests/test_fast_training.py`` checks
each against its eager formulation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cplmixvi.nn._dispatch import register_compiled
from cplmixvi.train._random import N_BITS, hashed_bits, hashed_uniform


@register_compiled("arm_linear")
def arm_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``bmm`` then the bias: the add fuses into the consumer's loop (``baddbmm`` first copies
    the bias into the whole output)."""
    return torch.bmm(x, weight) + bias


@register_compiled("arm_batch_norm")
def arm_batch_norm(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """The same batch norm written on ``(A, B, F)`` directly, for ``torch.compile``.

    The ``(B, A * F)`` view that the native kernel needs becomes index arithmetic with
    scalar gathers in inductor's CPU code (several times slower than eager); reducing
    over dimension 1 keeps every loop contiguous. The statistics come from one Welford
    pass (:func:`torch.var_mean`) and the normalisation is one multiply-add per entry. Same
    statistics and running-average updates as :class:`torch.nn.BatchNorm1d`.
    """
    n_arms, n_cells, n_feat = x.shape
    x = x.float()  # statistics in fp32 also under bf16 autocast (as the native kernel)
    weight = bn.weight.view(n_arms, 1, n_feat)
    bias = bn.bias.view(n_arms, 1, n_feat)
    if not (bn.training or bn.running_mean is None):
        mean = bn.running_mean.view(n_arms, 1, n_feat)
        var = bn.running_var.view(n_arms, 1, n_feat)
        return (x - mean) * torch.rsqrt(var + bn.eps) * weight + bias
    var, mean = torch.var_mean(x, 1, keepdim=True, correction=0)  # one Welford pass
    if bn.running_mean is not None:
        with torch.no_grad():
            unbiased = var * (n_cells / max(n_cells - 1, 1))
            bn.running_mean.lerp_(mean.reshape(-1), bn.momentum)
            bn.running_var.lerp_(unbiased.reshape(-1), bn.momentum)
            bn.num_batches_tracked.add_(1)
    scale = torch.rsqrt(var + bn.eps) * weight
    return x * scale + (bias - mean * scale)


@register_compiled("gaussian_nll")
def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """:func:`cplmixvi.nn.gaussian_nll` with the hand-written backward of :class:`GaussianNLL`."""
    return GaussianNLL.apply(x, mean, log_std)


class GaussianNLL(torch.autograd.Function):
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


@register_compiled("gumbel_softmax")
def gumbel_softmax(logits: torch.Tensor, tau: torch.Tensor | float) -> torch.Tensor:
    """Gumbel noise ``-log(-log(u))`` of counter-based uniforms, fused into the softmax."""
    gumbels = -torch.log(-torch.log(hashed_uniform(logits.shape, logits.device)))
    return torch.softmax((logits + gumbels) / tau, dim=-1)


@register_compiled("dropout_keep")
def dropout_keep(x: torch.Tensor, strength: float) -> torch.Tensor:
    """Gene dropout's kept entries from counter-based bits (rate rounded to ``2^-24``)."""
    return hashed_bits(x.shape, x.device) >= round(strength * 2**N_BITS)


@register_compiled("binomial")
@torch.library.custom_op("cplmixvi::binomial", mutates_args=())
def binomial(count: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """``torch.binomial`` as an opaque operator, so that ``torch.compile`` keeps one graph.

    ``aten.binomial`` has no fake-tensor kernel for symbolic sizes, which the compiled training
    step gets once the minibatch size has changed (the last minibatch of an epoch). Without this
    wrapper the step then breaks into many graphs at the thinning, each compiled again.
    """
    return torch.binomial(count, prob)


@binomial.register_fake
def _(count: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(count)
