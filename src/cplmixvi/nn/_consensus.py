"""Consensus self-training of the arms' type heads towards a shared sharpened target."""

from __future__ import annotations

import torch


def sharpened_target(log_probs: torch.Tensor) -> torch.Tensor:
    """The arms' common type target ``p``: their fused posterior, squared and renormalised.

    The fused posterior ``q`` is the normalised geometric mean of the arms' ``q(c|x)`` (the
    label :func:`cplmixvi.tl.consensus` gives); the target is ``p_ik = q_ik^2 / sum_j q_ij^2``,
    DEC's sharpened target (Xie et al. 2016) without its division by the type frequency:
    that division favours equal-sized types and split the large types of imbalanced data
    (MOp: ARI 0.43 with it, 0.90 without; ``docs/model.md``). No gradient flows into ``p``.

    Parameters
    ----------
    log_probs
        ``log q(c|x)`` of shape ``(A, B, K)`` (arms, cells, categories).

    Returns
    -------
    Tensor of shape ``(B, K)``: the target distribution of each cell.
    """
    return torch.softmax(2 * log_probs.detach().mean(0), dim=-1)


def consensus_kl(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``KL(p || q_a)`` of each arm's posterior from the common target, per cell.

    Parameters
    ----------
    log_probs
        ``log q(c|x)`` of shape ``(A, B, K)``.
    target
        ``p`` of shape ``(B, K)`` (:func:`sharpened_target`).

    Returns
    -------
    Tensor of shape ``(A, B)``, in nats.
    """
    log_target = target.clamp_min(1e-12).log()
    return (target * (log_target - log_probs)).sum(-1)
