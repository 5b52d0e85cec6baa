"""Opt-in fast training (issue 7): compiled step, fused Adam and their compile-only code paths."""

from __future__ import annotations

import copy
import shutil
import sys

import numpy as np
import pytest
import scvi
import torch
import torch.nn.functional as F
from conftest import make_counts_adata
from torch.distributions import Normal, kl_divergence

from cplmixvi import CplMixVI
from cplmixvi.augment import BinomialThinning, GeneDropout
from cplmixvi.module import CplMixVAE
from cplmixvi.nn import ArmBatchNorm, gaussian_nll, gumbel_softmax, normal_kl
from cplmixvi.train import CplMixTrainingPlan
from cplmixvi.train._allocator import release_freed_memory, retain_freed_memory
from cplmixvi.train._compile import INDUCTOR_OPTIONS
from cplmixvi.train._compiled_forms import GaussianNLL, arm_batch_norm
from cplmixvi.train._epoch_metrics import EpochMetricsMixin
from cplmixvi.train._random import bits_to_uniform, hashed_bits, hashed_uniform


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
        arm_batch_norm(arm_major.bn, x).detach().numpy(), native(x).detach().numpy(), atol=1e-5
    )
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(
            getattr(arm_major.bn, name).numpy(),
            getattr(native.bn, name).numpy(),
            rtol=1e-5,
            atol=1e-7,
        )


needs_compiler = pytest.mark.skipif(
    shutil.which("g++") is None, reason="torch.compile needs a C++ compiler"
)


def test_hashed_bits_are_seeded_uniform_and_independent():
    shape = torch.Size([2, 300, 1001])
    torch.manual_seed(1)
    bits = hashed_bits(shape, torch.device("cpu"))
    torch.manual_seed(1)
    again = hashed_bits(shape, torch.device("cpu"))
    other = hashed_bits(shape, torch.device("cpu"))  # the next key
    assert bits.shape == shape and bits.dtype == torch.int32
    assert torch.equal(bits, again) and not torch.equal(bits, other)
    assert bits.min() >= 0 and bits.max() < 2**24
    u = hashed_uniform(shape, torch.device("cpu")).double()
    assert 0 < u.min() and u.max() < 1
    # 600 600 uniforms: 16 equal bins within 5 s.d. of their expected count
    counts = torch.bincount((u.flatten() * 16).long(), minlength=16).double()
    expected = u.numel() / 16
    assert (counts - expected).abs().max() < 5 * (expected * 15 / 16) ** 0.5
    # no correlation between neighbouring genes, neighbouring cells, arms or draws (s.d. 1.3e-3)
    v = (bits.double() / 2**24 - 0.5).flatten(0, 1)
    w = (other.double() / 2**24 - 0.5).flatten(0, 1)
    for a, b in [(v[:, 1:], v[:, :-1]), (v[1:], v[:-1]), (v[:300], v[300:]), (v, w)]:
        assert abs(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]) < 6e-3


def test_hashed_uniform_stays_inside_zero_one_at_the_extremes():
    extremes = bits_to_uniform(torch.tensor([0, 1, 2**24 - 2, 2**24 - 1], dtype=torch.int32))
    assert extremes.dtype == torch.float32
    assert 0 < extremes.min() and extremes.max() < 1  # float32 (2^24 - 1/2) 2^-24 would be 1
    assert torch.isfinite(-torch.log(-torch.log(extremes))).all()  # finite Gumbel noise


@needs_compiler
def test_hashed_bits_compiled_equal_eager_and_give_the_dropout_rate():
    shape = torch.Size([3, 257, 129])  # odd sizes: vectorised loops and their scalar tails
    torch.manual_seed(4)
    eager = hashed_bits(shape, torch.device("cpu"))
    torch.manual_seed(4)
    compiled = torch.compile(hashed_bits, options=INDUCTOR_OPTIONS)(shape, torch.device("cpu"))
    assert torch.equal(eager, compiled)  # int32 arithmetic wraps the same way in C++

    def drop(x):
        return GeneDropout(0.1)(x, 2)

    kept = torch.compile(drop, options=INDUCTOR_OPTIONS)(torch.ones(1000, 301)) > 0
    assert abs(kept.float().mean().item() - 0.9) < 3e-3  # 602 000 draws: s.d. 4e-4
    assert not torch.equal(kept[0], kept[1])  # each arm has its own mask


@needs_compiler
def test_binomial_thinning_compiles_into_one_graph():
    torch.manual_seed(0)
    counts = torch.poisson(torch.full((400, 50), 20.0))

    def thin(x):
        return BinomialThinning(0.5)(x, 2)

    # fullgraph: a graph break would raise (aten.binomial has no fake-tensor kernel for
    # symbolic sizes, which the compiled step gets when the last minibatch is smaller)
    compiled = torch.compile(thin, fullgraph=True, dynamic=True, options=INDUCTOR_OPTIONS)
    copies = compiled(counts)
    assert copies.shape == (2, 400, 50)
    assert torch.equal(copies, copies.round()) and (copies >= 0).all()
    assert (copies <= counts).all()  # thinning never adds UMIs
    kept = (copies.sum() / (2 * counts.sum())).item()
    assert abs(kept - 0.75) < 0.02  # p ~ U(0.5, 1) per copy and cell: s.d. of the mean 0.005
    assert not torch.equal(copies[0], copies[1])


def test_gaussian_nll_backward_is_autograd_s():
    torch.manual_seed(5)
    x = torch.randn(7, 6, dtype=torch.double, requires_grad=True)  # shared by the arms
    mean = torch.randn(3, 7, 6, dtype=torch.double, requires_grad=True)
    log_std = (0.3 * torch.randn(3, 1, 6, dtype=torch.double)).requires_grad_()
    assert torch.autograd.gradcheck(GaussianNLL.apply, (x, mean, log_std))
    np.testing.assert_allclose(
        GaussianNLL.apply(x, mean, log_std).detach(), gaussian_nll(x, mean, log_std).detach()
    )


def test_gaussian_nll_keeps_the_residual_in_the_output_precision():
    torch.manual_seed(6)
    x = torch.randn(50, 20)
    mean = torch.randn(2, 50, 20).bfloat16().requires_grad_()
    log_std = torch.zeros(2, 1, 20, requires_grad=True)
    GaussianNLL.apply(x, mean, log_std).sum().backward()
    fast = mean.grad.clone(), log_std.grad.clone()
    mean.grad = log_std.grad = None
    gaussian_nll(x, mean.float(), log_std).sum().backward()
    assert fast[0].dtype == torch.bfloat16
    np.testing.assert_allclose(fast[0].float(), mean.grad.float(), rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(fast[1], log_std.grad, rtol=2e-2, atol=0.5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_retain_freed_memory_takes_effect_on_glibc():
    assert retain_freed_memory() is True
    assert retain_freed_memory() is True  # idempotent
    assert release_freed_memory() is True


@pytest.mark.parametrize("compile_", [True, False])
def test_only_a_compiled_fit_changes_the_allocator_and_only_while_it_runs(monkeypatch, compile_):
    from lightning.pytorch import LightningModule

    from cplmixvi.train import _compile
    from cplmixvi.train._compile import FastTrainingMixin

    calls = []
    monkeypatch.setattr(_compile, "retain_freed_memory", lambda: calls.append("retain"))
    monkeypatch.setattr(_compile, "release_freed_memory", lambda: calls.append("release"))

    class Plan(FastTrainingMixin, LightningModule):
        pass

    plan = Plan()
    plan._init_fast(compile=compile_, fused_optimizer=False)
    assert calls == []  # building the plan changes nothing
    plan.on_fit_start()
    assert calls == (["retain"] if compile_ else [])
    plan.on_fit_end()
    assert calls == (["retain", "release"] if compile_ else [])


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


@needs_compiler
def test_compiled_training_is_reproducible_and_close_to_eager():
    eager, compiled, again = _fit(False), _fit(True), _fit(True)
    state, state_again = compiled.module.state_dict(), again.module.state_dict()
    # one seed, one model up to float rounding: in one process the second fit reuses the
    # graphs the first compiled (with dynamic sizes once the consensus phase recompiles them),
    # whose kernels round differently (measured: at most 3e-7)
    for key in state:
        torch.testing.assert_close(state[key], state_again[key], rtol=1e-4, atol=1e-5)
    loss_eager = eager.history["elbo_train"].to_numpy(dtype=float).ravel()
    loss_compiled = compiled.history["elbo_train"].to_numpy(dtype=float).ravel()
    assert np.isfinite(loss_compiled).all()
    # another dropout stream and rounding: the same training curve within a few percent
    np.testing.assert_allclose(loss_compiled, loss_eager, rtol=0.03)
    assert loss_compiled[-1] < loss_compiled[0]
    assert set(compiled.history) == set(eager.history)  # the same logged terms
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


def test_every_compiled_formulation_is_registered_and_used_only_when_compiling():
    from cplmixvi.nn._dispatch import _COMPILED, formulation

    names = {"arm_linear", "arm_batch_norm", "gaussian_nll", "gumbel_softmax", "binomial"}
    assert set(_COMPILED) == names | {"dropout_keep"}

    def eager():
        return "eager"

    assert all(formulation(name, eager) is eager for name in _COMPILED)


def test_compiled_formulations_agree_with_eager_in_distribution():
    from cplmixvi.augment._counts import _dropout_keep
    from cplmixvi.nn._arm_layers import _affine
    from cplmixvi.nn._fast import _torch_gumbel_softmax
    from cplmixvi.train import _compiled_forms as forms

    torch.manual_seed(0)
    x, w, b = torch.randn(2, 7, 5), torch.randn(2, 5, 3), torch.randn(2, 1, 3)
    torch.testing.assert_close(forms.arm_linear(x, w, b), _affine(x, w, b))
    # Gumbel-softmax: how often each category is the sample's argmax is softmax(logits)
    logits = torch.tensor([0.5, -1.0, 2.0, 0.0]).expand(40_000, 4)
    expected = torch.softmax(logits[0], -1)
    for sample in (forms.gumbel_softmax, _torch_gumbel_softmax):
        freq = torch.bincount(sample(logits, 0.5).argmax(-1), minlength=4) / 40_000
        torch.testing.assert_close(freq, expected, atol=0.01, rtol=0)
    # gene dropout keeps 1 - strength of the entries
    ones = torch.ones(200, 500)
    for keep in (forms.dropout_keep, _dropout_keep):
        assert abs(keep(ones, 0.3).float().mean().item() - 0.7) < 0.005
    # binomial thinning: the custom operator is torch.binomial
    counts, prob = torch.full((50_000,), 20.0), torch.full((50_000,), 0.25)
    for draw in (forms.binomial, torch.binomial):
        thinned = draw(counts, prob)
        assert abs(thinned.mean().item() - 5.0) < 0.05 and abs(thinned.var().item() - 3.75) < 0.15
