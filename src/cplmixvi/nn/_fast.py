"""A cheaper Gaussian likelihood for the module's training step.

:func:`gaussian_nll` is the negative log-density of a Gaussian with per-feature standard
deviations, summed over features, in four passes over the data instead of the dozen of
:class:`torch.distributions.Normal` (and without its argument validation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cplmixvi.nn._dispatch import formulation


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
    return formulation("gaussian_nll", _gaussian_nll)(x, mean, log_std)


def _gaussian_nll(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    z = (x - mean) * torch.exp(-log_std)
    constant = log_std.sum(-1) + 0.5 * x.shape[-1] * math.log(2 * math.pi)
    return 0.5 * z.square().sum(-1) + constant


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

    :func:`torch.nn.functional.gumbel_softmax` (``hard=False``), the same numbers; the compiled
    training step draws the noise from counter-based uniforms instead (the same distribution,
    another stream; ``train/_compiled_forms.py``).
    """
    return formulation("gumbel_softmax", _torch_gumbel_softmax)(logits, tau)


def _torch_gumbel_softmax(logits: torch.Tensor, tau: torch.Tensor | float) -> torch.Tensor:
    return F.gumbel_softmax(logits, tau=tau, hard=False)
