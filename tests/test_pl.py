"""Plots return Axes and draw a non-empty image."""

from __future__ import annotations

import scvi
from matplotlib.axes import Axes

import cplmixvi


def test_types_umap_returns_axes_and_draws(make_adata, tmp_path):
    adata = make_adata(n_cells=200, n_genes=30)
    scvi.settings.seed = 0
    cplmixvi.CplMixVI.setup_anndata(adata, layer="counts")
    model = cplmixvi.CplMixVI(adata, n_types=3, n_hidden=16, n_layers=1)
    model.train(max_epochs=2, accelerator="cpu", enable_progress_bar=False)
    model.write_results(adata)

    axes = cplmixvi.pl.types_umap(adata, labels_key="cell_type")

    assert len(axes) == 2 and all(isinstance(ax, Axes) for ax in axes)
    assert adata.obsm["X_umap"].shape == (adata.n_obs, 2)
    # every inferred type is coloured like its matched reference label or a spare colour
    assert len(adata.uns["cplmixvi_type_colors"]) == adata.obs["cplmixvi_type"].nunique()
    path = tmp_path / "umap.png"
    axes[0].figure.savefig(path)
    assert path.stat().st_size > 10_000
