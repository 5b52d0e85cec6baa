"""Bad inputs raise early (at setup or model construction, before any training) and clearly."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scanpy as sc
from scipy import sparse

from cplmixvi import CplMixVI
from cplmixvi.model._validation import check_input_values

SMALL = {"n_hidden": 16, "n_layers": 1}


def _setup(adata, **kwargs):
    CplMixVI.setup_anndata(adata, **kwargs)
    return adata


def _model(adata, **kwargs):
    params = {"n_types": 3, **SMALL, **kwargs}
    return CplMixVI(adata, **params)


# ----- registration ---------------------------------------------------------------------------


def test_missing_layer(adata):
    with pytest.raises(KeyError, match="raw_counts"):
        CplMixVI.setup_anndata(adata, layer="raw_counts")


def test_missing_batch_key(adata):
    with pytest.raises(KeyError, match="sample_id"):
        CplMixVI.setup_anndata(adata, layer="counts", batch_key="sample_id")


@pytest.mark.parametrize("categorical", [False, True])
def test_batch_with_missing_values_names_them_and_the_fix(adata, categorical):
    batch = adata.obs["batch"].astype(object)
    batch.iloc[[3, 7]] = [None, np.nan]
    adata.obs["batch"] = batch.astype("category") if categorical else batch
    with pytest.raises(ValueError, match=r"'batch'\] has 2 missing values") as error:
        _setup(adata, batch_key="batch")
    message = str(error.value)
    assert adata.obs_names[3] in message and adata.obs_names[7] in message
    assert "fillna" in message and "notna()" in message
    # the suggested fix works
    adata.obs["batch"] = adata.obs["batch"].astype(object).fillna("unknown").astype("category")
    _model(_setup(adata, batch_key="batch"))


@pytest.mark.parametrize("layer", [None, "counts"])
def test_string_matrix_names_the_dtype_and_the_fix(adata, layer):
    text = np.asarray(adata.layers["counts"]).astype(str)
    if layer is None:
        adata.X = text
    else:
        adata.layers[layer] = text.astype(object)
    where = "adata.X" if layer is None else "adata.layers['counts']"
    with pytest.raises(TypeError, match=rf"{re.escape(where)} has dtype .* \(strings\)") as error:
        _setup(adata, layer=layer)
    assert "astype(np.float32)" in str(error.value)


def test_missing_layer_mudata(adata):
    mudata = pytest.importorskip("mudata")
    mdata = mudata.MuData({"rna": adata})
    with pytest.raises(KeyError, match="raw_counts"):
        CplMixVI.setup_mudata(mdata, rna_layer="raw_counts", modalities={"rna_layer": "rna"})
    with pytest.raises(KeyError, match="atac"):
        CplMixVI.setup_mudata(mdata, rna_layer="counts", modalities={"rna_layer": "atac"})
    adata.obs.loc[adata.obs_names[0], "batch"] = np.nan
    mdata = mudata.MuData({"rna": adata})
    modalities = {"rna_layer": "rna", "batch_key": "rna"}
    with pytest.raises(ValueError, match=r"mdata.mod\['rna'\].obs\['batch'\] has 1 missing"):
        CplMixVI.setup_mudata(mdata, rna_layer="counts", batch_key="batch", modalities=modalities)


# ----- values that do not suit the likelihood -------------------------------------------------


@pytest.mark.parametrize("likelihood", ["nb", "zinb"])
@pytest.mark.parametrize("as_sparse", [False, True])
def test_non_integer_counts(adata, likelihood, as_sparse):
    adata.layers["counts"] = adata.layers["counts"] + 0.5
    if as_sparse:
        adata.layers["counts"] = sparse.csr_matrix(adata.layers["counts"])
    _setup(adata, layer="counts")
    with pytest.raises(ValueError, match="non-integer"):
        _model(adata, gene_likelihood=likelihood)


@pytest.mark.parametrize("likelihood", ["nb", "zinb"])
def test_negative_counts(adata, likelihood):
    adata.layers["counts"][3, 4] = -1.0
    _setup(adata, layer="counts")
    with pytest.raises(ValueError, match="negative"):
        _model(adata, gene_likelihood=likelihood)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("likelihood", ["nb", "zinb", "normal", "bernoulli"])
def test_nan_and_inf(adata, bad, likelihood):
    x = adata.layers["counts"].copy()
    if likelihood == "bernoulli":
        x = (x > 2).astype(np.float32)
    x[5, 7] = bad
    adata.layers["counts"] = x
    _setup(adata, layer="counts")
    with pytest.raises(ValueError, match="NaN or infinite"):
        _model(adata, gene_likelihood=likelihood)


def test_nan_in_sparse_matrix(adata):
    x = adata.X.copy()
    x[0, 0] = np.nan
    adata.X = sparse.csr_matrix(x)
    _setup(adata)
    with pytest.raises(ValueError, match="NaN or infinite"):
        _model(adata, gene_likelihood="normal")


@pytest.mark.parametrize("likelihood", ["nb", "zinb"])
@pytest.mark.parametrize("as_sparse", [False, True])
def test_cells_with_zero_counts(adata, likelihood, as_sparse):
    x = adata.layers["counts"].copy()
    x[[2, 10], :] = 0.0
    adata.layers["counts"] = sparse.csr_matrix(x) if as_sparse else x
    _setup(adata, layer="counts")
    with pytest.raises(ValueError, match="2 cells with zero total counts"):
        _model(adata, gene_likelihood=likelihood)


def test_bernoulli_values_above_one(adata):
    _setup(adata, layer="counts")  # raw counts, many > 1
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        _model(adata, gene_likelihood="bernoulli")


def test_bernoulli_negative_values(adata):
    x = np.clip(adata.layers["counts"], 0, 1)
    x[0, 0] = -0.5
    adata.layers["counts"] = x
    _setup(adata, layer="counts")
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        _model(adata, gene_likelihood="bernoulli")


def test_check_input_values_names_the_data():
    x = np.array([[1.0, 2.5], [3.0, 4.0]])
    with pytest.raises(ValueError, match=r"adata\.layers\['counts'\]"):
        check_input_values(x, "nb", "adata.layers['counts']")
    check_input_values(x, "normal", "adata.X")  # fine for a continuous likelihood


def test_error_message_names_the_layer(adata):
    adata.layers["counts"] = adata.layers["counts"] + 0.25
    _setup(adata, layer="counts")
    with pytest.raises(ValueError, match=r"adata\.layers\['counts'\].*non-integer"):
        _model(adata, gene_likelihood="nb")


# ----- sizes and options ----------------------------------------------------------------------


def test_more_types_than_cells(adata):
    _setup(adata, layer="counts")
    with pytest.raises(ValueError, match="n_types=301.*number of cells"):
        _model(adata, n_types=301)


@pytest.mark.parametrize("n_arms", [0, -2])
def test_n_arms_below_one(adata, n_arms):
    _setup(adata, layer="counts")
    with pytest.raises(ValueError, match="n_arms must be >= 1"):
        _model(adata, n_arms=n_arms)


def test_too_few_types_or_state_dims(adata):
    _setup(adata, layer="counts")
    with pytest.raises(ValueError, match="n_types must be >= 2"):
        _model(adata, n_types=1)
    with pytest.raises(ValueError, match="n_state must be >= 1"):
        _model(adata, n_state=0)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("gene_likelihood", "poisson"),
        ("gene_likelihood", "NB"),
        ("state_prior", "gmm"),
        ("objective", "dec"),
    ],
)
def test_bad_option_strings(adata, option, value):
    _setup(adata, layer="counts")
    with pytest.raises(ValueError, match=f"{option} must be one of.*{value}"):
        _model(adata, **{option: value})


def test_bad_augmentation(adata):
    _setup(adata, layer="counts")
    with pytest.raises(ValueError, match="Unknown augmentation"):
        _model(adata, augmentation="mixup")
    adata.X = np.log1p(adata.X)
    _setup(adata)
    with pytest.raises(ValueError, match="thinning"):
        _model(adata, gene_likelihood="normal", augmentation="thinning")


def test_errors_come_before_training(adata, monkeypatch):
    """The checks run in the constructor: training is never reached."""

    def fail(*args, **kwargs):  # pragma: no cover - must not run
        raise AssertionError("training started")

    monkeypatch.setattr(CplMixVI, "train", fail)
    adata.layers["counts"] = adata.layers["counts"] + 0.5
    _setup(adata, layer="counts")
    with pytest.raises(ValueError, match="non-integer"):
        _model(adata).train()


# ----- what must be accepted ------------------------------------------------------------------


def test_lognormalised_data_with_normal_likelihood(adata):
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    assert not np.allclose(adata.X, np.round(adata.X))
    _setup(adata)
    model = _model(adata, gene_likelihood="normal")
    assert model.module.gene_likelihood == "normal"


def test_scaled_data_with_negative_values_and_normal_likelihood(adata):
    sc.pp.log1p(adata)
    sc.pp.scale(adata)
    assert adata.X.min() < 0
    _setup(adata)
    _model(adata, gene_likelihood="normal")


def test_sparse_counts_accepted(adata):
    adata.layers["counts"] = sparse.csr_matrix(adata.layers["counts"])
    _setup(adata, layer="counts")
    _model(adata, gene_likelihood="nb")


def test_binary_values_with_bernoulli(adata):
    adata.X = (adata.X > 2).astype(np.float32)
    adata.X[np.asarray(adata.X.sum(1)).ravel() == 0, 0] = 1.0
    _setup(adata)
    _model(adata, gene_likelihood="bernoulli")


def test_new_data_is_checked_before_inference(make_adata):
    adata = make_adata(n_cells=100, n_genes=10)
    CplMixVI.setup_anndata(adata, layer="counts")
    model = CplMixVI(adata, n_types=3, n_hidden=8, n_layers=1)
    model.train(max_epochs=1, accelerator="cpu", enable_progress_bar=False)
    other = adata.copy()
    other.layers["counts"][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.get_type_assignments(other)
