"""Opt-in fast training (issue 7): compiled step, fused Adam and their compile-only code paths."""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pytest
import scvi
import torch
import torch.nn.functional as F
from conftest import make_counts_adata
from torch.distributions import Normal, kl_divergence

from cplmixvi import CplMixVI
from cplmixvi.augment import GeneDropout
from cplmixvi.augment._counts import keep_mask16
from cplmixvi.module import CplMixVAE
from cplmixvi.nn import ArmBatchNorm, gumbel_softmax, normal_kl
from cplmixvi.train import CplMixTrainingPlan
from cplmixvi.train._epoch_metrics import EpochMetricsMixin


def _trained_norm(training: bool) -> ArmBatchNorm:
    torch.manual_seed(0)
    norm = ArmBatchNorm(2, 5)
    with torch.no_grad():
        norm.bn.weight.uniform_(0.5, 1.5)
        norm.bn.bias.uniform_(-1, 1)
    norm(torch.randn(2, 30, 5) * 3 + 1)  # non-trivial running statistics
    return norm.train(training)


@pytest.mark.parametrize("training", [True, False])
def test_arm_major_batch_norm_matches_native(training):
    native, arm_major = _trained_norm(training), _trained_norm(training)
    x = torch.randn(2, 40, 5) * 2 - 1
    np.testing.assert_allclose(
        arm_major._forward_arm_major(x).detach().numpy(), native(x).detach().numpy(), atol=1e-5
    )
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(
            getattr(arm_major.bn, name).numpy(),
            getattr(native.bn, name).numpy(),
            rtol=1e-5,
            atol=1e-7,
        )


def test_keep_mask16_rate_shape_and_seed():
    torch.manual_seed(1)
    mask = keep_mask16(torch.Size([2, 300, 1001]), 0.1, torch.device("cpu"))
    torch.manual_seed(1)
    again = keep_mask16(torch.Size([2, 300, 1001]), 0.1, torch.device("cpu"))
    assert mask.shape == (2, 300, 1001) and mask.dtype == torch.bool
    assert torch.equal(mask, again)
    assert abs(1 - mask.float().mean().item() - 0.1) < 3e-3  # 600 600 draws: s.d. 4e-4
    assert keep_mask16(torch.Size([50, 7]), 0.0, torch.device("cpu")).all()


def test_normal_kl_is_torch_distributions_bit_for_bit():
    torch.manual_seed(2)
    qm, pm = torch.randn(3, 4), torch.randn(3, 4)
    qs, ps = torch.rand(3, 4) + 0.1, torch.rand(3, 4) + 0.1
    assert torch.equal(normal_kl(qm, qs, pm, ps), kl_divergence(Normal(qm, qs), Normal(pm, ps)))


def test_eager_gumbel_softmax_is_torch_bit_for_bit():
    logits = torch.randn(2, 10, 6)
    torch.manual_seed(3)
    ours = gumbel_softmax(logits, torch.tensor(0.7))
    torch.manual_seed(3)
    assert torch.equal(ours, F.gumbel_softmax(logits, tau=torch.tensor(0.7), hard=False))


@pytest.mark.parametrize("fused", [False, True])
def test_fused_optimizer_option(fused):
    module = CplMixVAE(20, 3, n_hidden=8, n_layers=1)
    plan = CplMixTrainingPlan(module, fused_optimizer=fused, lr=2e-3)
    optimizer = plan.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.Adam)
    assert bool(optimizer.defaults["fused"]) is fused
    assert optimizer.defaults["lr"] == 2e-3


def test_pruned_flag_follows_the_mask_through_a_state_dict():
    module = CplMixVAE(20, 4, n_hidden=8, n_layers=1)
    assert not module.is_pruned
    module.remove_types([1])
    assert module.is_pruned
    fresh = CplMixVAE(20, 4, n_hidden=8, n_layers=1)
    fresh.load_state_dict(copy.deepcopy(module.state_dict()))
    assert fresh.is_pruned and not fresh.type_mask[1]


def _fit(compile: bool, epochs: int = 3) -> CplMixVI:
    adata = make_counts_adata(n_cells=240, n_genes=30, n_batches=1)
    adata.layers["log"] = np.log1p(np.asarray(adata.layers["counts"], dtype=np.float32))
    CplMixVI.setup_anndata(adata, layer="log")
    scvi.settings.seed = 0
    model = CplMixVI(
        adata,
        n_types=3,
        n_hidden=16,
        n_layers=1,
        gene_likelihood="normal",
        augmentation=GeneDropout(0.1),
    )
    model.train(
        max_epochs=epochs,
        batch_size=100,
        compile=compile,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return model


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile needs a C++ compiler")
def test_compiled_training_is_reproducible_and_close_to_eager():
    eager, compiled, again = _fit(False), _fit(True), _fit(True)
    state, state_again = compiled.module.state_dict(), again.module.state_dict()
    assert all(torch.equal(state[key], state_again[key]) for key in state)  # one seed, one model
    loss_eager = eager.history["elbo_train"].to_numpy(dtype=float).ravel()
    loss_compiled = compiled.history["elbo_train"].to_numpy(dtype=float).ravel()
    assert np.isfinite(loss_compiled).all()
    # another dropout stream and rounding: the same training curve within a few percent
    np.testing.assert_allclose(loss_compiled, loss_eager, rtol=0.03)
    assert loss_compiled[-1] < loss_compiled[0]
    # inference stays eager: a distribution over types for every cell
    probs = compiled.get_type_probabilities()
    assert probs.shape == (240, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def _history(adata) -> dict:
    scvi.settings.seed = 0
    model = CplMixVI(adata, n_types=3, n_hidden=16, n_layers=1)
    model.train(
        max_epochs=3,
        batch_size=64,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return model.history


def test_epoch_logging_gives_scvi_tools_history_values(adata, monkeypatch):
    CplMixVI.setup_anndata(adata, layer="counts")
    lean = _history(adata)
    monkeypatch.delattr(EpochMetricsMixin, "training_step")  # scvi-tools' own training step
    scvi_tools = _history(adata)
    assert set(lean) == set(scvi_tools)
    for key in ("train_loss", "elbo_train", "reconstruction_loss_train", "kl_local_train"):
        np.testing.assert_allclose(
            lean[key].to_numpy(dtype=float), scvi_tools[key].to_numpy(dtype=float), rtol=1e-6
        )
    # logged only where Lightning writes step logs: the same rows as logging at every step
    assert lean["kl_weight"].index.equals(scvi_tools["kl_weight"].index)
    assert len(lean["kl_weight"]) >= 1
