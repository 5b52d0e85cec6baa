"""Cheaper equivalents of two per-step computations of the module.

- :func:`gumbel_softmax_sample` draws the Gumbel noise as ``-log(-log U)`` from uniforms:
  on CPU, ``torch.Tensor.exponential_`` (what :func:`torch.nn.functional.gumbel_softmax` uses) is
  several times slower than ``torch.rand`` for the same number of draws, and a temperature
  given as a tensor needs no host synchronisation.
- :func:`gaussian_nll` is the negative log-density of a Gaussian with per-feature standard
  deviations, summed over features, in four passes over the data instead of the dozen of
  :class:`torch.distributions.Normal` (and without its argument validation).
"""

from __future__ import annotations

import math

import torch


def gumbel_softmax_sample(logits: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """A relaxed one-hot sample ``softmax((logits + g) / temperature)``, ``g ~ Gumbel(0, 1)``.

    Same distribution as ``torch.nn.functional.gumbel_softmax(logits, tau, hard=False)``; the
    uniforms are kept away from 0 so the noise is always finite.
    """
    uniform = torch.rand_like(logits).clamp_(min=torch.finfo(logits.dtype).tiny)
    gumbel = -torch.log(-torch.log(uniform))
    return torch.softmax((logits + gumbel) / temperature, dim=-1)


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
    z = (x - mean) * torch.exp(-log_std)
    constant = log_std.sum(-1) + 0.5 * x.shape[-1] * math.log(2 * math.pi)
    return 0.5 * z.square().sum(-1) + constant
