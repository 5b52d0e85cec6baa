"""CplMixVI end to end on small synthetic data: training, accessors, results, persistence."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scvi
import torch

from cplmixvi import CplMixVI

TRAIN = {
    "accelerator": "cpu",
    "devices": 1,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}
SMALL = {"n_hidden": 16, "n_layers": 1}
N_CELLS, N_GENES, N_TYPES = 300, 50, 3
# every model in this file passes these explicitly so they do not depend on defaults
EXPLICIT = {
    "coupling_weight": 1.0,
    "objective": "paper",
    "state_prior": "type",
    "dropout_rate": 0.1,
}


def _train(model, max_epochs=2, **kwargs):
    model.train(max_epochs=max_epochs, batch_size=64, **TRAIN, **kwargs)
    return model


def _fit(adata, n_arms=2, seed=0, max_epochs=2, layer="counts", batch_key=None, **kwargs):
    CplMixVI.setup_anndata(adata, layer=layer, batch_key=batch_key)
    scvi.settings.seed = seed
    params = {
        "n_types": N_TYPES,
        "n_state": 2,
        "n_arms": n_arms,
        "gene_likelihood": "nb",
        **SMALL,
        **EXPLICIT,
    }
    params.update(kwargs)
    return _train(CplMixVI(adata, **params), max_epochs=max_epochs)


@pytest.fixture(scope="module")
def trained(make_adata):
    """Two arms, batch-aware, trained 3 epochs with validation every epoch."""
    adata = make_adata(n_cells=N_CELLS, n_genes=N_GENES, n_types=N_TYPES)
    CplMixVI.setup_anndata(adata, layer="counts", batch_key="batch")
    scvi.settings.seed = 0
    model = CplMixVI(
        adata,
        n_types=N_TYPES,
        n_state=2,
        n_arms=2,
        gene_likelihood="nb",
        augmentation="thinning",
        **SMALL,
        **EXPLICIT,
    )
    _train(
        model,
        max_epochs=3,
        check_val_every_n_epoch=1,
        temperature_start=1.0,
        temperature_end=0.5,
    )
    return model, adata


# ----- training history -----------------------------------------------------------------------


def test_history_has_every_loss_term_per_epoch(trained):
    model, _ = trained
    history = model.history
    keys = [
        "reconstruction_train",
        "kl_state_train",
        "type_entropy_train",
        "coupling_train",
        "arm_agreement_train",
        "temperature_train",
        "elbo_train",
        "train_loss",
        "elbo_validation",
        "reconstruction_validation",
        "kl_state_validation",
        "type_entropy_validation",
        "coupling_validation",
        "arm_agreement_validation",
        "validation_loss",
    ]
    missing = [k for k in keys if k not in history]
    assert not missing, f"missing from history: {missing}; have {sorted(history)}"
    for key in keys:
        values = history[key].to_numpy(dtype=float).ravel()
        assert len(values) == 3, key
        assert np.all(np.isfinite(values)), key
    agreement = history["arm_agreement_train"].to_numpy(dtype=float)
    assert np.all((agreement >= 0) & (agreement <= 1))
    assert np.all(history["type_entropy_train"].to_numpy(dtype=float) >= 0)
    assert np.all(history["coupling_train"].to_numpy(dtype=float) >= 0)


def test_temperature_is_annealed(trained):
    model, _ = trained
    temps = model.history["temperature_train"].to_numpy(dtype=float).ravel()
    assert temps[0] == pytest.approx(1.0)
    assert temps[-1] == pytest.approx(0.5)
    assert temps[0] > temps[1] > temps[2]


def test_model_is_trained_and_in_eval_mode(trained):
    model, _ = trained
    assert model.is_trained
    assert not model.module.training


# ----- accessors ------------------------------------------------------------------------------


def test_type_probabilities(trained):
    model, adata = trained
    fused = model.get_type_probabilities()
    assert fused.shape == (N_CELLS, N_TYPES)
    assert np.all(fused >= 0)
    np.testing.assert_allclose(fused.sum(1), 1.0, rtol=1e-5)
    per_arm = model.get_type_probabilities(per_arm=True)
    assert per_arm.shape == (2, N_CELLS, N_TYPES)
    np.testing.assert_allclose(per_arm.sum(-1), 1.0, rtol=1e-5)
    # fused = softmax of the arms' mean log-probability (normalised geometric mean), whose
    # argmax is that of the product of the arms' posteriors
    log_mean = np.log(per_arm.astype(np.float64)).mean(0)
    geometric = np.exp(log_mean) / np.exp(log_mean).sum(1, keepdims=True)
    np.testing.assert_allclose(fused, geometric, atol=1e-5)
    np.testing.assert_array_equal(fused.argmax(1), per_arm.prod(0).argmax(1))
    # indices select rows; repeated calls are deterministic
    sub = model.get_type_probabilities(indices=[5, 0, 17])
    np.testing.assert_allclose(sub, fused[[5, 0, 17]], rtol=1e-6)
    np.testing.assert_array_equal(model.get_type_probabilities(), fused)
    # a different adata with the same genes works too
    other = model.get_type_probabilities(adata.copy())
    np.testing.assert_allclose(other, fused, rtol=1e-6)


def test_type_assignments(trained):
    model, adata = trained
    table = model.get_type_assignments()
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["type", "confidence", "arm_agreement"]
    assert table.index.equals(adata.obs_names)
    fused = model.get_type_probabilities()
    per_arm = model.get_type_probabilities(per_arm=True)
    np.testing.assert_array_equal(table["type"].to_numpy(), fused.argmax(1))
    rows = np.arange(N_CELLS)
    np.testing.assert_allclose(
        table["confidence"].to_numpy(), per_arm[:, rows, fused.argmax(1)].mean(0), rtol=1e-5
    )
    expected_agreement = (per_arm.argmax(-1) == fused.argmax(1)[None]).mean(0)
    np.testing.assert_allclose(table["arm_agreement"].to_numpy(), expected_agreement)
    assert set(np.unique(table["arm_agreement"])) <= {0.0, 0.5, 1.0}
    sub = model.get_type_assignments(indices=[3, 1])
    assert list(sub.index) == [adata.obs_names[3], adata.obs_names[1]]


def test_latent_representation(trained):
    model, _ = trained
    z0 = model.get_latent_representation()
    assert z0.shape == (N_CELLS, 2)
    assert np.all(np.isfinite(z0))
    z1 = model.get_latent_representation(arm=1)
    assert z1.shape == (N_CELLS, 2)
    assert not np.allclose(z0, z1)  # each arm has its own state space
    np.testing.assert_array_equal(model.get_latent_representation(arm=0), z0)  # deterministic
    for bad in (2, -1):
        with pytest.raises(ValueError, match="arm must be in"):
            model.get_latent_representation(arm=bad)


def test_accessors_need_training(make_adata):
    adata = make_adata(n_cells=60)
    CplMixVI.setup_anndata(adata, layer="counts")
    model = CplMixVI(adata, n_types=3, **SMALL)
    with pytest.raises(RuntimeError):
        model.get_type_probabilities()


# ----- write_results --------------------------------------------------------------------------


def test_write_results(trained, tmp_path):
    model, adata = trained
    target = adata.copy()
    model.write_results(target)
    obs_keys = ["cplmixvi_type", "cplmixvi_confidence", "cplmixvi_arm_agreement"]
    for key in obs_keys:
        assert key in target.obs
    labels = target.obs["cplmixvi_type"]
    assert isinstance(labels.dtype, pd.CategoricalDtype)
    assert set(labels.cat.categories) <= {str(k) for k in range(N_TYPES)}
    table = model.get_type_assignments()
    np.testing.assert_array_equal(labels.astype(str).to_numpy(), table["type"].astype(str))
    for key in obs_keys[1:]:
        assert np.issubdtype(target.obs[key].dtype, np.floating)
        assert target.obs[key].between(0, 1).all()
    probs = target.obsm["cplmixvi_type_probs"]
    assert probs.shape == (N_CELLS, N_TYPES) and np.issubdtype(probs.dtype, np.floating)
    np.testing.assert_allclose(probs, model.get_type_probabilities(), rtol=1e-6)
    state = target.obsm["X_cplmixvi_state"]
    assert state.shape == (N_CELLS, 2) and np.issubdtype(state.dtype, np.floating)
    np.testing.assert_allclose(state, model.get_latent_representation(arm=0), rtol=1e-6)
    arms = target.obsm["X_cplmixvi_state_arms"]
    assert arms.shape == (N_CELLS, 2 * 2)
    np.testing.assert_allclose(arms[:, 2:], model.get_latent_representation(arm=1), rtol=1e-6)
    uns = target.uns["cplmixvi"]
    assert uns["params"]["n_types"] == N_TYPES and uns["params"]["n_arms"] == 2
    assert uns["arm_agreement"] == pytest.approx(table["arm_agreement"].mean())
    # the results survive a round trip through h5ad
    path = tmp_path / "results.h5ad"
    target.write_h5ad(path)
    back = anndata.read_h5ad(path)
    np.testing.assert_array_equal(back.obsm["cplmixvi_type_probs"], probs)
    assert back.uns["cplmixvi"]["params"]["gene_likelihood"] == "nb"


def test_write_results_key_prefix(trained):
    model, adata = trained
    target = adata.copy()
    model.write_results(target, key_prefix="cpl")
    assert "cpl_type" in target.obs and "cpl_type_probs" in target.obsm
    assert "X_cpl_state" in target.obsm and "cpl" in target.uns
    assert "cplmixvi_type" not in target.obs


# ----- persistence ----------------------------------------------------------------------------


def test_save_load_round_trip(trained, tmp_path):
    model, adata = trained
    model.save(tmp_path / "model", overwrite=True)
    fresh = adata.copy()
    loaded = CplMixVI.load(tmp_path / "model", adata=fresh)
    np.testing.assert_array_equal(
        loaded.get_type_probabilities(per_arm=True), model.get_type_probabilities(per_arm=True)
    )
    np.testing.assert_array_equal(loaded.get_type_probabilities(), model.get_type_probabilities())
    for arm in (0, 1):
        np.testing.assert_array_equal(
            loaded.get_latent_representation(arm=arm), model.get_latent_representation(arm=arm)
        )
    assert loaded.module.n_arms == 2 and loaded.module.n_types == N_TYPES


def test_models_saved_with_every_option_named_still_load(trained, tmp_path):
    """Saves from when every option was a named argument of CplMixVI still load."""
    model, adata = trained
    model.save(tmp_path / "model", overwrite=True)
    path = tmp_path / "model" / "model.pt"
    saved = torch.load(path, weights_only=False)
    params = saved["attr_dict"]["init_params_"]
    params["non_kwargs"].update(params["kwargs"].pop("model_kwargs"))
    assert {"coupling_weight", "state_prior"} <= set(params["non_kwargs"])
    torch.save(saved, path)
    loaded = CplMixVI.load(tmp_path / "model", adata=adata.copy())
    assert loaded.module.coupling_weight == 1.0 and loaded.module.state_prior == "type"
    np.testing.assert_array_equal(loaded.get_type_probabilities(), model.get_type_probabilities())


def test_unknown_model_argument_names_the_valid_ones(make_adata):
    adata = make_adata(n_cells=60, n_genes=20, n_types=2)
    CplMixVI.setup_anndata(adata, layer="counts")
    with pytest.raises(TypeError, match="unknown arguments \\['min_prob'\\].*coupling_min_prob"):
        CplMixVI(adata, n_types=2, min_prob=0.1)
    model = CplMixVI(adata, n_types=2, coupling_min_prob=0.05, coupling_min_sigma=0.2)
    assert (model.module.coupling_min_prob, model.module.coupling_min_sigma) == (0.05, 0.2)


def test_load_rejects_other_genes(trained, tmp_path):
    model, adata = trained
    model.save(tmp_path / "model", overwrite=True)
    renamed = adata.copy()
    renamed.var_names = [f"other{j}" for j in range(N_GENES)]
    with pytest.raises(ValueError, match="genes"):
        CplMixVI.load(tmp_path / "model", adata=renamed)
    subset = adata[:, : N_GENES - 5].copy()
    with pytest.raises(ValueError, match="genes"):
        CplMixVI.load(tmp_path / "model", adata=subset)
    reordered = adata[:, ::-1].copy()
    with pytest.raises(ValueError, match="genes"):
        CplMixVI.load(tmp_path / "model", adata=reordered)


def test_load_missing_directory(adata, tmp_path):
    with pytest.raises(FileNotFoundError):
        CplMixVI.load(tmp_path / "nothing", adata=adata)


# ----- batches --------------------------------------------------------------------------------


def test_batch_key_adds_covariate(trained, make_adata):
    model, adata = trained
    assert model.summary_stats.n_batch == 2
    assert "2 batch(es)" in model._model_summary_string
    for mlp in (model.module.encoder, model.module.decoder):
        for linear in mlp.linears:
            assert linear.cat_weight is not None
            assert linear.cat_weight.shape[:2] == (2, 2)  # (arms, batches)
    # the batch code changes the encoding
    x = torch.as_tensor(adata.layers["counts"][:20])
    batch0 = torch.zeros(20, 1, dtype=torch.long)
    with torch.no_grad():
        out0 = model.module.inference(x, batch0, deterministic=True)
        out1 = model.module.inference(x, batch0 + 1, deterministic=True)
    assert not torch.allclose(out0["log_probs"], out1["log_probs"])

    plain = make_adata(n_cells=60)
    CplMixVI.setup_anndata(plain, layer="counts")
    no_batch = CplMixVI(plain, n_types=3, **SMALL)
    assert "1 batch(es)" in no_batch._model_summary_string
    assert all(lin.cat_weight is None for lin in no_batch.module.encoder.linears)


# ----- seeding --------------------------------------------------------------------------------


def test_same_seed_same_result_different_seed_different(make_adata):
    runs = {}
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        adata = make_adata(n_cells=200, n_genes=30)
        model = _fit(adata, seed=seed, max_epochs=2)
        runs[name] = (model.get_type_probabilities(), model.get_latent_representation())
    np.testing.assert_array_equal(runs["a"][0], runs["b"][0])
    np.testing.assert_array_equal(runs["a"][1], runs["b"][1])
    assert not np.allclose(runs["a"][0], runs["c"][0])


# ----- numbers of arms and other configurations -----------------------------------------------


@pytest.mark.parametrize("n_arms", [1, 3])
def test_other_numbers_of_arms_train(make_adata, n_arms):
    adata = make_adata(n_cells=200, n_genes=30)
    model = _fit(adata, n_arms=n_arms, augmentation="auto")
    per_arm = model.get_type_probabilities(per_arm=True)
    assert per_arm.shape == (n_arms, 200, N_TYPES)
    assert model.get_type_probabilities().shape == (200, N_TYPES)
    assert model.get_latent_representation(arm=n_arms - 1).shape == (200, 2)
    history = model.history
    assert np.all(np.isfinite(history["train_loss"].to_numpy(dtype=float)))
    if n_arms == 1:
        assert "coupling_train" not in history
        np.testing.assert_array_equal(history["arm_agreement_train"].to_numpy(dtype=float), 1.0)
        np.testing.assert_array_equal(model.get_type_assignments()["arm_agreement"], 1.0)
    else:
        assert np.all(np.isfinite(history["coupling_train"].to_numpy(dtype=float)))
        model.write_results(adata)
        assert adata.obsm["X_cplmixvi_state_arms"].shape == (200, 2 * n_arms)


def test_normal_likelihood_on_lognormalised_data(make_adata):
    adata = make_adata(n_cells=200, n_genes=30)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    model = _fit(
        adata,
        layer=None,
        gene_likelihood="normal",
        state_prior="normal",
        augmentation="dropout",
    )
    assert np.all(np.isfinite(model.history["train_loss"].to_numpy(dtype=float)))
    assert np.all(model.module.prior_mean.detach().numpy() == 0)  # fixed N(0, I) prior
    np.testing.assert_allclose(model.get_type_probabilities().sum(1), 1.0, rtol=1e-5)


def test_zinb_trains(make_adata):
    adata = make_adata(n_cells=200, n_genes=30)
    model = _fit(adata, gene_likelihood="zinb", batch_key="batch", max_epochs=1)
    assert np.all(np.isfinite(model.history["train_loss"].to_numpy(dtype=float)))


# ----- MuData ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mudata_trained(make_adata, tmp_path_factory):
    """A two-arm model trained on a MuData, saved to disk."""
    mudata = pytest.importorskip("mudata")
    rna = make_adata(n_cells=200, n_genes=30)
    mdata = mudata.MuData({"rna": rna})
    CplMixVI.setup_mudata(mdata, rna_layer="counts", modalities={"rna_layer": "rna"})
    scvi.settings.seed = 0
    model = CplMixVI(mdata, n_types=N_TYPES, n_arms=2, gene_likelihood="nb", **SMALL, **EXPLICIT)
    _train(model, max_epochs=2)
    path = tmp_path_factory.mktemp("mudata_model")
    model.save(path, overwrite=True)
    return model, mdata, path


def test_mudata_trains_and_writes_results(mudata_trained):
    model, mdata, _ = mudata_trained
    probs = model.get_type_probabilities()
    assert probs.shape == (200, N_TYPES)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    model.write_results(mdata)
    assert "cplmixvi_type" in mdata.obs
    assert mdata.obsm["cplmixvi_type_probs"].shape == (200, N_TYPES)
    assert mdata.obsm["X_cplmixvi_state"].shape == (200, 2)
    np.testing.assert_allclose(mdata.obsm["cplmixvi_type_probs"], probs, rtol=1e-6)


def test_mudata_save_load_round_trip(mudata_trained, make_adata):
    import mudata

    model, _, path = mudata_trained
    fresh = mudata.MuData({"rna": make_adata(n_cells=200, n_genes=30)})
    loaded = CplMixVI.load(path, adata=fresh)
    np.testing.assert_array_equal(loaded.get_type_probabilities(), model.get_type_probabilities())
    np.testing.assert_array_equal(
        loaded.get_latent_representation(), model.get_latent_representation()
    )


def test_mudata_batch_key_in_modality(make_adata):
    mudata = pytest.importorskip("mudata")
    mdata = mudata.MuData({"rna": make_adata(n_cells=120, n_genes=20)})
    CplMixVI.setup_mudata(
        mdata,
        rna_layer="counts",
        batch_key="batch",
        modalities={"rna_layer": "rna", "batch_key": "rna"},
    )
    model = CplMixVI(mdata, n_types=N_TYPES, n_arms=2, **SMALL, **EXPLICIT)
    assert model.summary_stats.n_batch == 2
    assert model.module.encoder.linears[0].cat_weight is not None


def test_mudata_load_rejects_other_genes(mudata_trained, make_adata):
    import mudata

    _, _, path = mudata_trained
    rna = make_adata(n_cells=200, n_genes=30)
    rna.var_names = [f"other{j}" for j in range(30)]
    with pytest.raises(ValueError, match="genes"):
        CplMixVI.load(path, adata=mudata.MuData({"rna": rna}))


# ----- known failure modes --------------------------------------------------------------------


def test_last_minibatch_of_one_cell(make_adata):
    adata = make_adata(n_cells=1138, n_genes=10)  # ceil(0.9 * 1138) = 1025 = 4 * 256 + 1
    CplMixVI.setup_anndata(adata, layer="counts")
    model = CplMixVI(adata, n_types=N_TYPES, n_arms=2, **SMALL, **EXPLICIT)
    model.train(max_epochs=1, batch_size=256, **TRAIN)
    assert model.is_trained


def test_early_stopping_stops_on_validation_elbo(make_adata):
    adata = make_adata(n_cells=300, n_genes=20)
    scvi.settings.seed = 0
    CplMixVI.setup_anndata(adata, layer="counts")
    model = CplMixVI(adata, n_types=N_TYPES, n_arms=2, **SMALL, **EXPLICIT)
    # with a learning rate of 0 only noise moves elbo_validation, so training stops early
    model.train(max_epochs=50, lr=0.0, early_stopping=True, early_stopping_patience=2, **TRAIN)
    elbo = model.history["elbo_validation"].iloc[:, 0].to_numpy()
    assert len(elbo) < 50
    # it stopped because the last `patience` epochs did not improve on the best before them
    assert elbo[-2:].min() >= elbo[:-2].min()
