"""Information-maximising type terms: marginal entropy and the IMSAT-style coupling."""

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


def information_coupling(log_probs: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Information-maximising agreement of every unordered pair of arms (IMSAT-style).

    ``H(q_ab(c)) - (CE(q_a, q_b) + CE(q_b, q_a)) / 2`` where ``q_ab(c)`` is the two arms'
    aggregate posterior over the minibatch and ``CE(q_a, q_b) = -mean_i sum_k q_a(k|x_i^a)
    log q_b(k|x_i^b)`` the cross-entropy between the arms' posteriors of each cell. It is largest
    (``log K``) when both arms put each cell, with certainty, into the same category and use
    every category equally; unlike the mutual information it depends on the category ids, so
    the arms keep the same ids (Hu et al. 2017, IMSAT, with the augmented copy's posterior as
    the consistency target).

    Parameters
    ----------
    log_probs
        ``log q(c|x)`` of shape ``(A, B, K)`` (arms, cells, categories).
    eps
        Floor on the probabilities inside the cross-entropy's logarithm.

    Returns
    -------
    Tensor of shape ``(A * (A - 1) / 2,)``: the objective for each pair ``a < b`` (in
    ``torch.triu_indices`` order), in nats. Empty when ``A == 1``.
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must have shape (arms, cells, types), got {log_probs.shape}.")
    n_arms = log_probs.shape[0]
    first, second = torch.triu_indices(n_arms, n_arms, offset=1, device=log_probs.device)
    probs = log_probs.exp()
    floored = log_probs.clamp_min(math.log(eps))
    cross = -(probs[first] * floored[second]).sum(-1) - (probs[second] * floored[first]).sum(-1)
    pair = torch.stack([log_probs[first], log_probs[second]], dim=1)  # (P, 2, B, K)
    marginal = marginal_entropy(pair.flatten(1, 2))
    return marginal - 0.5 * cross.mean(-1)
