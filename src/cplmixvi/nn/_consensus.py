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
