"""The coupling distance between the categorical assignments of arms (paper Sec. 3.2-3.3)."""

from __future__ import annotations

import torch


def perturbed_aitchison_sq(
    c: torch.Tensor,
    probs: torch.Tensor | None = None,
    min_prob: float = 1e-2,
    min_sigma: float = 1e-2,
) -> torch.Tensor:
    """Perturbed Aitchison distance ``d_sigma^2`` between every unordered pair of arms.

    ``d_sigma^2(c_a, c_b) = sum_k (log c_ak / sigma_ak - log c_bk / sigma_bk)^2``, where
    ``sigma_ak^2`` is the minibatch variance of category ``k`` in arm ``a``. Categories with low
    dispersion (collapsed or empty) get a large weight ``1 / sigma``, which is what resists mode
    collapse. Unlike the reference code, both ends are bounded so the loss stays finite:
    ``log c`` is clamped below at ``log(min_prob)`` and ``sigma = sqrt(var + min_sigma^2)``.

    Parameters
    ----------
    c
        Categorical vectors of shape ``(A, B, K)`` (points of the simplex, one per arm and cell):
        relaxed samples or posterior probabilities.
    probs
        The posterior probabilities ``q(c|x)`` whose minibatch variance gives ``sigma`` (as in
        the reference code); ``c`` itself when ``None``. Taking the dispersion of the posterior
        rather than of noisy samples makes a soft, undecided posterior expensive, which pushes
        the arms towards confident assignments.
    min_prob
        Floor on ``c`` inside the logarithm.
    min_sigma
        Smooth floor on the minibatch standard deviation.

    Returns
    -------
    Tensor of shape ``(A * (A - 1) / 2, B)``: the distance for each pair ``a < b`` (in
    ``torch.triu_indices`` order) and each cell. Empty when ``A == 1``.
    """
    n_arms = c.shape[0]
    spread = c if probs is None else probs
    sigma = spread.var(dim=1, keepdim=True, unbiased=False).add(min_sigma**2).sqrt()
    scaled = c.clamp_min(min_prob).log() / sigma
    first, second = torch.triu_indices(n_arms, n_arms, offset=1, device=c.device)
    return (scaled[first] - scaled[second]).pow(2).sum(dim=-1)
