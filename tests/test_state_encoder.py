"""The state's own encoder (``state_encoder="separate"``, issue 5)."""

from __future__ import annotations

import pytest
import torch
from scvi import REGISTRY_KEYS

import cplmixvi
from cplmixvi.module import CplMixVAE
from cplmixvi.nn import perturbed_aitchison_sq


def _module(state_encoder: str) -> CplMixVAE:
    torch.manual_seed(0)
    return CplMixVAE(
        n_input=12, n_types=3, n_state=2, n_arms=2, n_hidden=16, n_layers=1,
        state_encoder=state_encoder,
    )  # fmt: skip


def _counts() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.poisson(3.0 * torch.rand(40, 12, generator=gen) + 0.5, generator=gen)


def _grad_norm(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("state_encoder", ["shared", "separate"])
def test_coupling_gradients_reach_the_state_only_through_a_shared_encoder(state_encoder):
    module = _module(state_encoder)
    inf = module.inference(_counts())
    coupling = perturbed_aitchison_sq(inf["c"], inf["log_probs"].exp(), 1e-2, 1e-2)
    coupling.sum().backward()
    assert _grad_norm(module.encoder) > 0  # the coupling trains the type encoder
    if state_encoder == "separate":
        assert _grad_norm(module.state_features) == 0.0  # but not the state's features
    else:
        assert not hasattr(module, "state_features")


def test_separate_state_encoder_is_trained_by_the_elbo():
    module = _module("separate")
    x = _counts()
    inf = module.inference(x)
    gen = module.generative(inf["s"], inf["c"], inf["library"])
    module.loss({REGISTRY_KEYS.X_KEY: x}, inf, gen).loss.backward()
    assert _grad_norm(module.state_features) > 0
    # the type encoder now only feeds the type head: its state-head input is the state features
    assert module.state_head.weight.shape == (2, 16 + 3, 4)


def test_shared_encoder_keeps_the_parameters_of_earlier_models():
    shared = {k for k in _module("shared").state_dict()}
    separate = {k for k in _module("separate").state_dict()}
    assert not any(k.startswith("state_features") for k in shared)
    assert shared < separate


def test_bad_state_encoder(make_adata):
    adata = make_adata(n_cells=40, n_genes=10)
    cplmixvi.CplMixVI.setup_anndata(adata, layer="counts")
    with pytest.raises(ValueError, match="state_encoder"):
        cplmixvi.CplMixVI(adata, n_types=2, state_encoder="own")
