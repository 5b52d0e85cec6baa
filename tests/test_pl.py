"""Plots only draw (the UMAP is computed by tl), show like scanpy's, and leave adata unchanged."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scvi
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import cplmixvi


@pytest.fixture(scope="module")
def fitted(make_adata):
    adata = make_adata(n_cells=200, n_genes=30)
    scvi.settings.seed = 0
    cplmixvi.CplMixVI.setup_anndata(adata, layer="counts")
    model = cplmixvi.CplMixVI(adata, n_types=3, n_hidden=16, n_layers=1)
    model.train(max_epochs=2, accelerator="cpu", enable_progress_bar=False)
    model.write_results(adata)
    return adata


def _keys(adata):
    return {
        "obs": list(adata.obs.columns),
        "obsm": sorted(adata.obsm),
        "obsp": sorted(adata.obsp),
        "uns": sorted(adata.uns),
        "dtypes": adata.obs.dtypes.astype(str).tolist(),
    }


def test_tl_types_umap_writes_only_key_added(fitted):
    adata = fitted.copy()
    before = _keys(adata)
    cplmixvi.tl.types_umap(adata, key_added="my_umap")
    after = _keys(adata)
    assert adata.obsm["X_my_umap"].shape == (adata.n_obs, 2)
    assert set(after["obsm"]) - set(before["obsm"]) == {"X_my_umap"}
    assert set(after["obsp"]) - set(before["obsp"]) == {
        "my_umap_distances",
        "my_umap_connectivities",
    }
    assert set(after["uns"]) - set(before["uns"]) == {"my_umap"}
    assert after["obs"] == before["obs"] and "X_umap" not in adata.obsm
    # scanpy's layout of a neighbour graph: its tools can use it
    assert adata.uns["my_umap"]["connectivities_key"] == "my_umap_connectivities"
    with pytest.raises(KeyError, match="write_results"):
        cplmixvi.tl.types_umap(adata, key_prefix="other")


def test_pl_types_umap_draws_matched_names_without_changing_adata(fitted, tmp_path):
    adata = fitted.copy()
    with pytest.raises(KeyError, match="cplmixvi.tl.types_umap"):
        cplmixvi.pl.types_umap(adata, show=False)
    cplmixvi.tl.types_umap(adata)
    before, umap = _keys(adata), adata.obsm["X_cplmixvi_umap"].copy()

    axes = cplmixvi.pl.types_umap(adata, labels_key="cell_type", show=False)

    assert len(axes) == 2 and all(isinstance(ax, Axes) for ax in axes)
    assert _keys(adata) == before and np.array_equal(adata.obsm["X_cplmixvi_umap"], umap)
    # the legend names each inferred type after its matched reference label
    legend = [text.get_text() for text in axes[0].get_legend().get_texts()]
    mapping = cplmixvi.metrics.hungarian_mapping(
        adata.obs["cell_type"].astype(str), adata.obs["cplmixvi_type"].astype(str)
    )
    assert sorted(legend) == sorted(f"{label} ({t})" for t, label in mapping.items())
    path = tmp_path / "umap.png"
    axes[0].figure.savefig(path)
    assert path.stat().st_size > 10_000
    plt.close(axes[0].figure)


def test_plots_show_by_default_and_return_the_figure_on_request(fitted):
    adata = fitted.copy()
    cplmixvi.tl.types_umap(adata)
    n_open = len(plt.get_fignums())
    assert cplmixvi.pl.types_umap(adata) is None  # shown, as scanpy's plots are
    assert len(plt.get_fignums()) == n_open + 1  # a pyplot figure: notebooks display it
    fig = cplmixvi.pl.state_distributions(adata, return_fig=True)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    plt.close("all")
