"""Category pruning: an exact mask in the module, the pruning loop, persistence; more arms."""

from __future__ import annotations

import numpy as np
import pytest
import scvi
import torch
from scvi import REGISTRY_KEYS

from cplmixvi import CplMixVI, tl
from cplmixvi.augment import Identity
from cplmixvi.data import simulate
from cplmixvi.module import CplMixVAE
from cplmixvi.train import latest_checkpoint

TRAIN = {
    "accelerator": "cpu",
    "devices": 1,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "batch_size": 64,
}
SMALL = {"n_hidden": 16, "n_layers": 1, "n_state": 2}
N_CELLS = 301  # not a multiple of the batch sizes: the last partial batch must be used


# ----- the module's mask is exact ---------------------------------------------------------------
def _module(n_types: int, **kwargs) -> CplMixVAE:
    params = {
        "n_input": 12,
        "n_arms": 3,
        "n_hidden": 16,
        "n_layers": 1,
        "dropout_rate": 0.0,
        "augmenter": Identity(),
        "objective": "paper",
        **kwargs,
    }
    return CplMixVAE(n_types=n_types, **params)


def _sliced_copy(module: CplMixVAE, keep: list[int]) -> CplMixVAE:
    """A module with only the categories ``keep``, weights copied from ``module``."""
    small = _module(len(keep))
    n_hidden, n_state = 16, module.n_state
    state = {k: v.clone() for k, v in module.state_dict().items() if k != "type_mask"}
    idx = torch.tensor(keep)
    state["type_head.weight"] = state["type_head.weight"][..., idx]
    state["type_head.bias"] = state["type_head.bias"][..., idx]
    rows = torch.cat([torch.arange(n_hidden), n_hidden + idx])
    state["state_head.weight"] = state["state_head.weight"][:, rows]
    rows = torch.cat([torch.arange(n_state), n_state + idx])
    state["decoder.linears.0.weight"] = state["decoder.linears.0.weight"][:, rows]
    state["prior_mean"] = state["prior_mean"][:, idx]
    state["prior_logvar"] = state["prior_logvar"][:, idx]
    small.load_state_dict({**state, "type_mask": torch.ones(len(keep), dtype=torch.bool)})
    return small


def _counts(n_cells: int = 40) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.poisson(3.0 * torch.rand(n_cells, 12, generator=gen) + 0.5, generator=gen)
    return {REGISTRY_KEYS.X_KEY: x}


def _run(module: CplMixVAE, tensors):
    inf = module.inference(**module._get_inference_input(tensors))
    gen = module.generative(**module._get_generative_input(tensors, inf))
    return inf, module.loss(tensors, inf, gen)


def test_masked_module_equals_a_module_with_only_the_survivors():
    torch.manual_seed(0)
    module = _module(5)
    module.type_head.bias.data[:, :, 1] += 3.0  # a removed type that many cells preferred
    module.remove_types([1, 3])
    small = _sliced_copy(module, [0, 2, 4])
    tensors = _counts()
    for train in (False, True):
        module.train(train), small.train(train)
        torch.manual_seed(2)
        inf, out = _run(module, tensors)
        torch.manual_seed(2)
        inf_s, out_s = _run(small, tensors)
        torch.testing.assert_close(inf["log_probs"][..., [0, 2, 4]], inf_s["log_probs"])
        assert torch.isneginf(inf["log_probs"][..., [1, 3]]).all()
        # the entropy sees the survivors only, in training (batch statistics) and at
        # inference; so does the coupling of the argmax types (the training samples draw
        # Gumbel noise for every category, so they differ between the two modules)
        for key in ("type_entropy",) if train else ("coupling", "type_entropy"):
            torch.testing.assert_close(out.extra_metrics[key], out_s.extra_metrics[key])
        if not train:  # argmax types: state posterior, prior and decoder too, so the whole loss
            torch.testing.assert_close(out.loss, out_s.loss)
            torch.testing.assert_close(inf["qs_mean"], inf_s["qs_mean"])
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)


def test_gumbel_sample_puts_no_mass_on_removed_types():
    torch.manual_seed(1)
    module = _module(6)
    module.type_head.bias.data[:, :, 5] += 10.0
    module.remove_types([5, 0])
    module.train()
    inf, out = _run(module, _counts())
    assert (inf["c"][..., [0, 5]] == 0).all()
    torch.testing.assert_close(inf["c"].sum(-1), torch.ones(3, 40))
    assert torch.isfinite(out.loss)
    module.eval()
    inf, _ = _run(module, _counts())
    assert not np.isin(inf["c"].argmax(-1).numpy(), [0, 5]).any()


def test_remove_types_rejects_bad_ids():
    module = _module(3)
    with pytest.raises(ValueError, match=r"in \[0, 2\]"):
        module.remove_types([3])
    with pytest.raises(ValueError, match="at least one must remain"):
        module.remove_types([0, 1, 2])
    assert module.type_mask.all()


def test_state_dict_without_mask_loads_with_every_type():
    module = _module(4)
    state = {k: v for k, v in module.state_dict().items() if k != "type_mask"}
    other = _module(4)
    other.remove_types([2])
    other.load_state_dict(state)
    assert other.type_mask.all()


# ----- the pruning loop on a model --------------------------------------------------------------
def _model(adata, n_types=6, n_arms=2, epochs=2, seed=0, **kwargs):
    CplMixVI.setup_anndata(adata, layer="counts")
    scvi.settings.seed = seed
    model = CplMixVI(adata, n_types=n_types, n_arms=n_arms, **SMALL, **kwargs)
    model.train(max_epochs=epochs, **TRAIN)
    return model


@pytest.fixture(scope="module")
def data(make_adata):
    return make_adata(n_cells=N_CELLS, n_genes=40, n_types=3)


def test_pruning_removes_the_empty_types_in_one_round(data, monkeypatch):
    """Planted posteriors: the arms agree on types 0-3; 4 and 5 hold no cell, 5 more mass."""
    model = _model(data.copy(), n_types=6)
    labels = np.arange(N_CELLS) % 4
    planted = np.full((2, N_CELLS, 6), 0.01)
    planted[:, np.arange(N_CELLS), labels] = 0.9
    planted[..., 5] = 0.04

    def fake(*args, **kwargs):  # respects the model's mask like the real accessor
        probs = planted * model.module.type_mask.numpy()
        return probs / probs.sum(-1, keepdims=True)

    monkeypatch.setattr(model, "get_type_probabilities", fake)
    history = model.prune(min_cells=1, epochs_per_round=1, **TRAIN)
    assert list(history["removed"]) == ["4,5", ""]
    assert list(history["reason"]) == ["removed 2 empty, 0 inconsistent", "stop: threshold reached"]
    assert list(history["n_empty"]) == [2, 0]
    assert list(model.active_types) == [0, 1, 2, 3]
    assert list(history["n_types"]) == [6, 4]
    # fine-tuning went through train(): one more epoch in the training history
    assert len(model.history["elbo_train"]) == 3


def test_a_round_removes_every_weak_category_down_to_min_types(data):
    model = _model(data.copy(), n_types=6)
    table = tl.category_agreement(model.get_type_probabilities(per_arm=True))
    weak = table[(table["agreement"] < 1.0) | (table["n_cells"] < 10)]
    assert len(weak) >= 2  # two epochs of a 3-type set in 6 categories
    epochs = len(model.history["elbo_train"])
    history = model.prune(threshold=1.0, min_types=4, **TRAIN)
    assert list(history["n_types"]) == [6, 4]
    # no fine-tuning by default: the removed categories' cells go to their next category
    assert len(model.history["elbo_train"]) == epochs and list(history["epochs"]) == [0, 0]
    assert not set(model.get_type_assignments()["type"]) - set(model.active_types)
    removed = [int(i) for i in history["removed"].iloc[0].split(",")]
    worst = table.assign(filled=table["n_cells"] >= 10).loc[weak.index]
    expected = worst.sort_values(["filled", "agreement", "n_cells", "mean_prob"]).index[:2]
    assert removed == list(expected)
    assert history["reason"].iloc[-1] == "stop: min_types reached"


def test_train_option_prunes_after_training(data):
    CplMixVI.setup_anndata(adata := data.copy(), layer="counts")
    scvi.settings.seed = 0
    model = CplMixVI(adata, n_types=6, **SMALL)
    prune = {"threshold": 1.0, "min_types": 4, "epochs_per_round": 1, **TRAIN}
    model.train(max_epochs=2, prune=prune, **TRAIN)
    history = model.pruning_history_
    assert list(history["n_types"]) == [6, 4]
    assert len(model.active_types) == 4
    assert len(model.history["elbo_train"]) == 3  # 2 epochs, then one pruning round


def test_train_options_reach_the_pruning_rounds(data, monkeypatch):
    """``train(prune=True, enable_progress_bar=False, ...)``: every round trains with them."""
    CplMixVI.setup_anndata(adata := data.copy(), layer="counts")
    scvi.settings.seed = 0
    model = CplMixVI(adata, n_types=6, **SMALL)
    calls = []
    real_train = CplMixVI.train

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(CplMixVI, "train", spy)
    prune = {"threshold": 1.0, "max_rounds": 2, "min_types": 2, "epochs_per_round": 1}
    model.train(max_epochs=2, prune=prune, lr=2e-3, **TRAIN)
    rounds = calls[1:]
    assert len(rounds) == len(model.pruning_history_) - 1 >= 1
    for kwargs in rounds:
        assert kwargs["enable_progress_bar"] is False and kwargs["enable_model_summary"] is False
        assert kwargs["lr"] == 2e-3 and kwargs["batch_size"] == 64
        assert kwargs["accelerator"] == "cpu" and kwargs["max_epochs"] == 1  # the round's own


def test_pruning_removes_the_planted_inconsistent_type(data, monkeypatch):
    """Planted posteriors: arms agree on types 0-2 except that they split type 2's cells."""
    model = _model(data.copy(), n_types=4)
    labels = np.repeat(np.arange(3), N_CELLS // 3 + 1)[:N_CELLS]
    other = labels.copy()
    moved = np.flatnonzero(labels == 2)[:40]
    other[moved] = 3  # arm 1 moves 40 cells of type 2 to type 3, its second choice being 2
    planted = np.full((2, N_CELLS, 4), 0.01)
    planted[0, np.arange(N_CELLS), labels] = 0.97
    planted[1, np.arange(N_CELLS), other] = 0.97
    planted[1, moved, 2] = 0.02

    def fake(*args, **kwargs):  # respects the model's mask like the real accessor
        probs = planted * model.module.type_mask.numpy()
        return probs / probs.sum(-1, keepdims=True)

    monkeypatch.setattr(model, "get_type_probabilities", fake)
    history = model.prune(epochs_per_round=1, **TRAIN)
    # type 3 (agreement 0) goes, type 2 (0.6) stays; then arm 1's cells return to type 2
    assert [ids for ids in history["removed"] if ids] == ["3"]
    assert history["reason"].iloc[-1] == "stop: threshold reached"
    assert history["min_agreement"].iloc[-1] == 1.0
    assert list(model.active_types) == [0, 1, 2]
    n_two = (labels == 2).sum()
    assert model.pruning_agreement_.loc[0, 2] == pytest.approx((n_two - 40) / n_two)
    np.testing.assert_allclose(model.pruning_agreement_.loc[1].dropna(), 1.0)
    assert np.isnan(model.pruning_agreement_.loc[1, 3])


def test_pruned_model_saves_loads_and_predicts_only_survivors(data, tmp_path):
    adata = data.copy()
    model = _model(adata, n_types=5)
    model.prune(threshold=1.0, min_types=3, epochs_per_round=1, **TRAIN)
    survivors = model.active_types
    assert len(survivors) == 3
    assert tl.select_n_types(model, threshold=1.0) in model.pruning_history_["n_types"].values
    before = model.get_type_assignments()
    model.save(tmp_path / "pruned")
    loaded = CplMixVI.load(tmp_path / "pruned", adata)
    np.testing.assert_array_equal(loaded.active_types, survivors)
    assert loaded.pruning_history_.equals(model.pruning_history_)
    assert loaded.pruning_agreement_.equals(model.pruning_agreement_)
    after = loaded.get_type_assignments()
    np.testing.assert_array_equal(after["type"], before["type"])
    assert set(after["type"]) <= set(survivors)
    probs = loaded.get_type_probabilities(per_arm=True)
    assert probs.shape == (2, N_CELLS, 5)
    removed = np.setdiff1d(np.arange(5), survivors)
    assert (probs[..., removed] == 0).all()
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    fused = tl.consensus(probs, obs_names=adata.obs_names)  # the model's labels, from the arrays
    np.testing.assert_array_equal(fused["type"], after["type"])
    np.testing.assert_allclose(fused["confidence"], after["confidence"], rtol=1e-5)
    # results in AnnData: every cell, survivors only, agreement per type, history
    loaded.write_results(adata)
    assert set(adata.obs["cplmixvi_type"].cat.categories) <= {str(k) for k in survivors}
    agreement = adata.uns["cplmixvi"]["type_agreement"]
    assert list(agreement.index) == [str(k) for k in survivors]
    assert agreement["n_cells"].sum() == N_CELLS
    expected = tl.category_agreement(probs, types=survivors)
    np.testing.assert_allclose(agreement["agreement"], expected["agreement"])
    assert len(adata.uns["cplmixvi"]["pruning_history"]) == len(model.pruning_history_)
    adata.write_h5ad(tmp_path / "pruned.h5ad")  # what write_results stores can be written


def test_prune_rejects_bad_calls(data):
    CplMixVI.setup_anndata(data, layer="counts")
    untrained = CplMixVI(data, n_types=3, **SMALL)
    with pytest.raises(RuntimeError, match="Train the model before pruning"):
        untrained.prune()
    single = _model(data.copy(), n_types=3, n_arms=1, epochs=1)
    with pytest.raises(ValueError, match="n_arms >= 2"):
        single.prune()
    model = _model(data.copy(), n_types=3, epochs=1)
    with pytest.raises(ValueError, match="threshold"):
        model.prune(threshold=1.5)
    with pytest.raises(ValueError, match="min_types"):
        model.prune(min_types=4)


# ----- more than two arms -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_arms(data):
    return _model(data.copy(), n_types=4, n_arms=2, epochs=1)


@pytest.mark.parametrize("n_arms", [3, 5])
def test_more_arms_train_with_the_shapes_of_two(data, two_arms, n_arms):
    two = two_arms
    many = _model(data.copy(), n_types=4, n_arms=n_arms, epochs=2)
    for key in ("elbo_train", "consensus_kl_train"):
        assert np.isfinite(many.history[key].dropna().to_numpy(dtype=float)).all()
    for name in ("get_type_probabilities", "get_latent_representation"):
        assert getattr(many, name)().shape == getattr(two, name)().shape
    assert many.get_type_assignments().shape == two.get_type_assignments().shape
    per_arm = many.get_type_probabilities(per_arm=True)
    assert per_arm.shape == (n_arms, N_CELLS, 4)
    # every cell, whatever the batch size (301 = 4 x 64 + 45: the last partial batch is kept)
    np.testing.assert_allclose(
        many.get_type_probabilities(per_arm=True, batch_size=64), per_arm, rtol=1e-5, atol=1e-7
    )
    assert many.get_latent_representation(arm=n_arms - 1).shape == (N_CELLS, 2)
    # one batched coupling computation for all A (A - 1) / 2 pairs
    tensors = next(iter(many._make_data_loader(adata=many.adata, batch_size=32)))
    many.module.train()
    inf = many.module.inference(**many.module._get_inference_input(tensors))
    assert inf["log_probs"].shape == (n_arms, 32, 4)
    table = tl.category_agreement(per_arm)
    assert table["n_cells"].sum() == N_CELLS


# ----- the number of types, in one call ---------------------------------------------------------
@pytest.mark.parametrize(("n_planted", "seed"), [(6, 0), (10, 1)])
def test_auto_types_recover_the_planted_number(n_planted, seed):
    """``n_types="auto"``: 30 categories, pruned in ``train`` to the planted types (>= 2 %)."""
    adata = simulate(n_cells=1500, n_genes=200, n_types=n_planted, imbalance=10.0, seed=seed)
    truth = adata.obs["cell_type"].to_numpy()
    sizes = adata.obs["cell_type"].value_counts(normalize=True)
    assert sizes.min() >= 0.02
    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata, layer="counts")
    model = CplMixVI(adata, n_types="auto")
    assert model.module.n_types == 30
    quiet = {k: v for k, v in TRAIN.items() if k != "batch_size"}
    model.train(max_epochs=60, **quiet)  # the CI budget; the default length is 200 epochs
    history = model.pruning_history_
    assert history["n_types"].iloc[0] == 30
    assert abs(len(model.active_types) - n_planted) <= 1
    assert history["reason"].iloc[-1] == "stop: threshold reached"
    assert tl.select_n_types(model) == len(model.active_types)
    labels = model.get_type_assignments()["type"].to_numpy()
    for planted in sizes.index:  # every planted type is the majority of one category
        in_type = truth == planted
        best = np.bincount(labels[in_type]).argmax()
        assert (labels[in_type] == best).mean() > 0.9
        assert (truth[labels == best] == planted).mean() > 0.9


def test_auto_types_keep_pruning_in_their_checkpoints(tmp_path, monkeypatch):
    """A resumed ``n_types="auto"`` fit prunes too: its checkpoint records ``prune=True``."""
    adata = simulate(n_cells=300, n_genes=60, n_types=3, n_markers=10, seed=0)
    scvi.settings.seed = 0
    CplMixVI.setup_anndata(adata, layer="counts")
    model = CplMixVI(adata, n_types="auto", **SMALL)
    pruned = []
    monkeypatch.setattr(CplMixVI, "prune", lambda self, **kwargs: pruned.append(kwargs))
    model.train(max_epochs=4, checkpoint_dir=str(tmp_path), **TRAIN)  # checkpoints at 1, 2
    assert len(pruned) == 1 and pruned[0]["enable_progress_bar"] is False
    saved = torch.load(f"{latest_checkpoint(tmp_path)}/resume.pt", weights_only=False)
    assert saved["kind"] == "train" and saved["call"]["prune"] is True
