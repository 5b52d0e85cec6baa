"""Entropy of the minibatch's aggregate type posterior (the anti-collapse term of IMSAT / IIC)."""

from __future__ import annotations

import math

import torch


def marginal_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Entropy ``H(q(c))`` of each arm's aggregate posterior over the cells of a minibatch.

    ``q(c) = mean_i q(c|x_i)``. Its entropy is largest (``log K``) when every category is used
    equally often and 0 when all cells fall into one category. Maximising it together with a
    confident ``q(c|x)`` maximises the mutual information ``I(x; c) = H(q(c)) - E H(q(c|x))``
    (information-maximising clustering: IMSAT, Hu et al. 2017; IIC, Ji et al. 2019).

    Parameters
    ----------
    log_probs
        ``log q(c|x)`` of shape ``(A, B, K)`` (arms, cells, categories).

    Returns
    -------
    Tensor of shape ``(A,)``: ``H(q(c))`` of each arm, in nats.
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must have shape (arms, cells, types), got {log_probs.shape}.")
    log_marginal = torch.logsumexp(log_probs, dim=1) - math.log(log_probs.shape[1])
    return -(log_marginal.exp() * log_marginal).sum(-1)
