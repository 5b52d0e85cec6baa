"""UMAP of the inferred cell types, scanpy style."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from cplmixvi.metrics import hungarian_mapping


def types_umap(
    adata: AnnData, labels_key: str | None = None, seed: int = 0, key_prefix: str = "cplmixvi"
) -> list[Axes]:
    """UMAP of inferred types, beside the reference labels when given.

    Computes the neighbour graph and UMAP (into ``adata.obsp`` / ``obsm["X_umap"]``) on the
    fused type probabilities plus 0.1 x the standardised states of all arms, as written by
    :meth:`cplmixvi.CplMixVI.write_results`. Each inferred type is coloured like the reference
    label it is matched to (Hungarian matching), so the panels can be compared at a glance.

    Parameters
    ----------
    adata
        AnnData with the model's results.
    labels_key
        Optional ``obs`` column of reference labels, drawn in a second panel.
    seed
        Random state of the neighbour graph and UMAP.
    key_prefix
        Prefix the results were written with.

    Returns
    -------
    The Axes of the panels, on a new figure (no pyplot state is touched).
    """

    # The type probabilities separate the types; the arms' states spread each type out.
    rep = np.concatenate(
        [
            adata.obsm[f"{key_prefix}_type_probs"],
            0.1 * _scaled(adata.obsm[f"X_{key_prefix}_state_arms"]),
        ],
        axis=1,
    )
    adata.obsm["X_cplmixvi_umap_input"] = rep.astype(np.float32)
    sc.pp.neighbors(adata, use_rep="X_cplmixvi_umap_input", n_neighbors=15, random_state=seed)
    sc.tl.umap(adata, random_state=seed)
    del adata.obsm["X_cplmixvi_umap_input"]
    type_key = f"{key_prefix}_type"
    keys = [type_key] + ([labels_key] if labels_key is not None else [])
    # no pyplot: no global state; constrained layout keeps long legends off the next panel
    widths = [4.5 + _legend_width(adata.obs[key]) for key in keys]
    fig = Figure(figsize=(sum(widths), 5), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False, width_ratios=widths)
    title = "CplMixVI type"
    if labels_key is not None:
        labels = adata.obs[labels_key]
        if not isinstance(labels.dtype, pd.CategoricalDtype):  # numeric codes: plot as categories
            adata.obs[labels_key] = pd.Categorical(labels.astype(str))
        # Reference first, so that its colours exist; each type takes its matched label's colour.
        sc.pl.umap(adata, color=labels_key, ax=axes[0, 1], show=False, frameon=False)
        _match_colors(adata, labels_key, type_key)
        title += f"\n(coloured as the matched {labels_key})"
    sc.pl.umap(adata, color=type_key, ax=axes[0, 0], show=False, frameon=False, title=title)
    return list(axes[0])


def _match_colors(adata: AnnData, labels_key: str, type_key: str) -> None:
    """Colour each inferred type like the reference label it is matched to (Hungarian)."""
    reference = adata.obs[labels_key].astype("category")
    palette = adata.uns.get(f"{labels_key}_colors")
    if palette is None or len(palette) != len(reference.cat.categories):
        return
    ref_colors = dict(zip(reference.cat.categories.astype(str), palette, strict=True))
    mapping = hungarian_mapping(reference.astype(str), adata.obs[type_key].astype(str))
    spare = iter(["#7f7f7f", "#bcbd22", "#17becf", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5"])
    colors = []
    for name in adata.obs[type_key].cat.categories:
        matched = mapping.get(str(name))
        color = ref_colors.get(matched) if matched is not None else None
        colors.append(to_hex(color) if color is not None else next(spare, "#aaaaaa"))
    adata.uns[f"{type_key}_colors"] = colors


def _legend_width(labels: pd.Series) -> float:
    """Approximate width in inches of scanpy's right-margin legend for these labels."""
    names = pd.Series(labels).astype(str).unique()
    n_cols = 1 if len(names) <= 14 else 2 if len(names) <= 30 else 3  # scanpy's rule
    return n_cols * (0.45 + 0.075 * max(len(name) for name in names))


def _scaled(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return (values - values.mean(axis=0)) / (values.std(axis=0) + 1e-8)
