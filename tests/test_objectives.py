"""The type objectives, one function each (``cplmixvi.module._objectives``)."""

from types import SimpleNamespace

import pytest
import torch

from cplmixvi.module._objectives import OBJECTIVES, consensus, info, paper
from cplmixvi.nn import (
    consensus_kl,
    information_coupling,
    perturbed_aitchison_sq,
    sharpened_target,
)


def _terms(n_arms: int = 3, n_cells: int = 16, n_types: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    elbo = torch.rand(n_arms, n_cells, generator=gen) * 10
    log_probs = torch.log_softmax(torch.randn(n_arms, n_cells, n_types, generator=gen), -1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    c = torch.softmax(torch.randn(n_arms, n_cells, n_types, generator=gen), -1)
    return elbo, entropy, log_probs, c


def _module(n_arms: int = 3, **kw):
    options = dict(coupling_weight=0.7, entropy_weight=0.5)
    options.update(coupling_min_prob=1e-2, coupling_min_sigma=1e-2)
    return SimpleNamespace(n_arms=n_arms, **(options | kw))


def test_registry_names_every_objective_of_the_model():
    assert set(OBJECTIVES) == {"consensus", "paper", "info"}


def test_consensus_is_the_elbo_plus_the_kl_to_the_common_target():
    elbo, entropy, log_probs, c = _terms()
    metrics = {}
    loss = consensus(_module(), elbo, entropy, log_probs, c, metrics)
    kl = consensus_kl(log_probs, sharpened_target(log_probs))
    torch.testing.assert_close(loss, (elbo + kl).sum(0).mean())
    assert set(metrics) == {"consensus_kl"}
    # the weights of the other objectives do not enter it
    other = consensus(_module(coupling_weight=9.0, entropy_weight=-3.0), *_terms(), {})
    torch.testing.assert_close(other, loss)


def test_paper_is_eq7_with_arm_weight_and_coupling():
    elbo, entropy, log_probs, c = _terms()
    module, metrics = _module(), {}
    loss = paper(module, elbo, entropy, log_probs, c, metrics)
    d2 = perturbed_aitchison_sq(c, log_probs.exp(), 1e-2, 1e-2)
    expected = (2 * (elbo - 0.5 * entropy).sum(0)).mean() + 0.7 * d2.sum(0).mean()
    torch.testing.assert_close(loss, expected)
    assert set(metrics) == {"coupling"}


def test_paper_with_one_arm_has_no_coupling():
    elbo, entropy, log_probs, c = _terms(n_arms=1)
    metrics = {}
    loss = paper(_module(n_arms=1), elbo, entropy, log_probs, c, metrics)
    torch.testing.assert_close(loss, (elbo - 0.5 * entropy).sum(0).mean())
    assert metrics == {}


@pytest.mark.parametrize("n_arms", [2, 3])
def test_info_subtracts_the_information_coupling(n_arms):
    elbo, entropy, log_probs, c = _terms(n_arms=n_arms)
    metrics = {}
    loss = info(_module(n_arms=n_arms), elbo, entropy, log_probs, c, metrics)
    weighted = ((n_arms - 1) * (elbo - 0.5 * entropy).sum(0)).mean()
    torch.testing.assert_close(loss, weighted - 0.7 * information_coupling(log_probs).sum())
    assert set(metrics) == {"information_coupling"}
