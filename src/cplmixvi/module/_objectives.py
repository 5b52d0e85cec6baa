"""The type objectives of :class:`~cplmixvi.module.CplMixVAE`, one function each, by name.

Each objective turns the per-arm terms of a minibatch into its loss and adds the terms it
computed to ``metrics`` (the training history). ``elbo`` is each arm's negative state ELBO
``rec_a + kl_weight * KL_s,a`` of shape ``(A, B)``; ``log_probs`` and ``c`` are the arms'
log-posteriors and type samples over the surviving categories, ``(A, B, K)``. To add an
objective, write a function with this signature and register it in ``OBJECTIVES``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cplmixvi.nn import (
    consensus_kl,
    information_coupling,
    perturbed_aitchison_sq,
    sharpened_target,
)


def consensus(module, elbo, entropy, log_probs, c, metrics: dict) -> torch.Tensor:
    """``sum_a (rec_a + kl_weight * KL_s,a) + sum_a KL(p || q_a)`` with the arms' common
    sharpened target ``p`` (:func:`cplmixvi.nn.sharpened_target`); the type heads learn from
    the target alone (the type sample enters the ELBO detached)."""
    kl = consensus_kl(log_probs, sharpened_target(log_probs))
    metrics["consensus_kl"] = kl.mean().detach()
    return (elbo + kl).sum(0).mean()


def paper(module, elbo, entropy, log_probs, c, metrics: dict) -> torch.Tensor:
    """Eq. 7: ``sum_a w (rec_a + kl_weight * KL_s,a - H_a) + lambda * sum_{a<b}
    d_sigma^2(c_a, c_b)`` with ``w = A - 1`` (1 for a single arm, which has no coupling)."""
    loss = _weighted_elbo(module, elbo, entropy)
    if module.n_arms == 1:
        return loss
    coupling = perturbed_aitchison_sq(
        c, log_probs.exp(), module.coupling_min_prob, module.coupling_min_sigma
    )
    metrics["coupling"] = coupling.mean().detach()
    return loss + module.coupling_weight * coupling.sum(0).mean()


def info(module, elbo, entropy, log_probs, c, metrics: dict) -> torch.Tensor:
    """The paper's weighted ELBO and entropy terms minus ``lambda * sum_{a<b} (H(q_ab(c)) -
    CE_ab)`` (:func:`cplmixvi.nn.information_coupling`, the MNIST recipe)."""
    loss = _weighted_elbo(module, elbo, entropy)
    if module.n_arms == 1:
        return loss
    information = information_coupling(log_probs)
    metrics["information_coupling"] = information.mean().detach()
    return loss - module.coupling_weight * information.sum()


def _weighted_elbo(module, elbo, entropy) -> torch.Tensor:
    weight = max(module.n_arms - 1, 1)
    return (weight * (elbo - module.entropy_weight * entropy).sum(0)).mean()


#: the objectives by the name given as ``objective``
OBJECTIVES: dict[str, Callable[..., torch.Tensor]] = {
    "consensus": consensus,
    "paper": paper,
    "info": info,
}
