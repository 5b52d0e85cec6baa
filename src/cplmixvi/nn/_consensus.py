"""Consensus self-training of the arms' type heads (DEC-style sharpened target)."""

from __future__ import annotations

import torch


def sharpened_target(log_probs: torch.Tensor) -> torch.Tensor:
    """The arms' common type target ``p``: their fused posterior, sharpened and re-balanced.

    The fused posterior ``q`` is the normalised geometric mean of the arms' ``q(c|x)`` (the
    label :func:`cplmixvi.tl.consensus` gives); the target is DEC's ``p_ik = q_ik^2 / f_k``,
    renormalised over ``k``, with ``f_k = sum_i q_ik`` the minibatch frequency of type ``k``
    (Xie et al. 2016). Squaring sharpens confident assignments; dividing by ``f`` keeps large
    types from absorbing small ones. No gradient flows into the target.

    Parameters
    ----------
    log_probs
        ``log q(c|x)`` of shape ``(A, B, K)`` (arms, cells, categories).

    Returns
    -------
    Tensor of shape ``(B, K)``: the target distribution of each cell.
    """
    log_probs = log_probs.detach()
    fused = torch.log_softmax(log_probs.mean(0), dim=-1)
    log_freq = torch.logsumexp(fused, dim=0, keepdim=True)
    return torch.softmax(2 * fused - log_freq, dim=-1)


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


def centroid_logits(
    weight: torch.Tensor, bias: torch.Tensor, centroids: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear type head whose softmax is a Gaussian assignment to centroids of its clr space.

    With the head's centred logits ``z = (W h + b) P`` (``P`` removes the mean over
    categories, so ``z`` is the clr of ``q(c|x)``), the new logits are
    ``beta (2 mu_k . z - |mu_k|^2)``, so that ``softmax`` is ``exp(-beta |z - mu_k|^2)``
    normalised: an isotropic Gaussian mixture posterior around the centroids ``mu``. The map
    stays linear in ``h``, so the head keeps its shape.

    Parameters
    ----------
    weight, bias
        The head's parameters, shapes ``(A, H, K)`` and ``(A, 1, K)``.
    centroids
        ``(A, K, K)``: for each arm, ``K`` centroids in its clr space.
    beta
        Precision ``1 / (2 sigma^2)`` of the assignment.

    Returns
    -------
    New weight ``(A, H, K)`` and bias ``(A, 1, K)``.
    """
    centre = weight.mean(-1, keepdim=True), bias.mean(-1, keepdim=True)
    w, b = weight - centre[0], bias - centre[1]
    proj = 2 * beta * centroids.transpose(1, 2)  # (A, K_clr, K_new)
    new_w = torch.bmm(w, proj)
    new_b = torch.bmm(b, proj) - beta * centroids.pow(2).sum(-1)[:, None, :]
    return new_w, new_b
