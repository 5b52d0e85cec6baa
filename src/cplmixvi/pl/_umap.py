"""UMAP of the inferred cell types, named and coloured by their matched reference labels."""

from __future__ import annotations

import pandas as pd
import scanpy as sc
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from cplmixvi.metrics import hungarian_mapping
from cplmixvi.pl._utils import finish, new_figure, show_params

_SPARE = ("#7f7f7f", "#bcbd22", "#17becf", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5")


@show_params
def types_umap(
    adata: AnnData,
    labels_key: str | None = None,
    key_prefix: str = "cplmixvi",
    basis: str = "cplmixvi_umap",
    *,
    show: bool | None = None,
    return_fig: bool = False,
) -> list[Axes] | Figure | None:
    """UMAP of the inferred types, beside the reference labels when given.

    Draws the embedding :func:`cplmixvi.tl.types_umap` computed; ``adata`` is not changed.
    With ``labels_key``, each inferred type is named after the reference label it is matched
    to by Hungarian matching (:func:`cplmixvi.metrics.hungarian_mapping`), e.g.
    ``"CD14+ Monocyte (3)"`` for type 3, and drawn in that label's colour, so that the panels
    can be compared at a glance; unmatched types keep their id and get a grey-ish colour.

    Parameters
    ----------
    adata
        AnnData with the model's results and ``obsm[f"X_{basis}"]``.
    labels_key
        Optional ``obs`` column of reference labels, drawn in a second panel.
    key_prefix
        Prefix the results were written with.
    basis
        The ``key_added`` of :func:`cplmixvi.tl.types_umap`.
    %(show_params)s

    Returns
    -------
    The Axes of the panels on a new figure (with ``show=False``), the figure
    (``return_fig=True``) or ``None`` (shown).
    """
    if f"X_{basis}" not in adata.obsm:
        raise KeyError(
            f"adata.obsm['X_{basis}'] is missing; compute it first with "
            f"cplmixvi.tl.types_umap(adata, key_added={basis!r})."
        )
    type_key = f"{key_prefix}_type"
    keys = [type_key] + ([labels_key] if labels_key is not None else [])
    # scanpy's plots add colours and categories to what they draw: draw a copy
    view = AnnData(
        obs=pd.DataFrame(
            {key: _categorical(adata.obs[key]) for key in keys}, index=adata.obs_names
        ),
        obsm={"X_umap": adata.obsm[f"X_{basis}"]},
    )
    title = "CplMixVI type"
    if labels_key is not None and f"{labels_key}_colors" in adata.uns:
        view.uns[f"{labels_key}_colors"] = list(adata.uns[f"{labels_key}_colors"])
    # constrained layout keeps long legends off the next panel
    widths = [4.5 + _legend_width(view.obs[key]) for key in keys]
    if labels_key is not None:
        matched = _name_by_match(view, labels_key, type_key)
        widths[0] = 4.5 + _legend_width(view.obs[type_key])
        title += f"\n(named after the matched {labels_key})"
    fig = new_figure((sum(widths), 5))
    axes = fig.subplots(1, len(keys), squeeze=False, width_ratios=widths)[0]
    if labels_key is not None:
        sc.pl.umap(view, color=labels_key, ax=axes[1], show=False, frameon=False)
        _match_colors(view, labels_key, type_key, matched)
    sc.pl.umap(view, color=type_key, ax=axes[0], show=False, frameon=False, title=title)
    return finish(fig, list(axes), show, return_fig)


def _categorical(values: pd.Series) -> pd.Categorical:
    """Categories as scanpy draws them (numeric codes become string categories)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return pd.Categorical(values)
    return pd.Categorical(values.astype(str))


def _name_by_match(view: AnnData, labels_key: str, type_key: str) -> dict[str, str | None]:
    """Rename each inferred type ``"<matched label> (<type>)"`` (unmatched ones ``"<type>"``);
    return ``{new name: matched label or None}``."""
    types = view.obs[type_key]
    mapping = hungarian_mapping(view.obs[labels_key].astype(str), types.astype(str))
    names = {
        t: f"{mapping[str(t)]} ({t})" if str(t) in mapping else str(t) for t in types.cat.categories
    }
    view.obs[type_key] = types.cat.rename_categories(names)
    return {names[t]: mapping.get(str(t)) for t in types.cat.categories}


def _match_colors(
    view: AnnData, labels_key: str, type_key: str, matched: dict[str, str | None]
) -> None:
    """Colour each inferred type like the reference label it is matched to."""
    categories = view.obs[labels_key].cat.categories.astype(str)
    palette = view.uns.get(f"{labels_key}_colors")
    if palette is None or len(palette) != len(categories):
        return
    ref_colors = dict(zip(categories, palette, strict=True))
    spare = iter(_SPARE)
    colors = []
    for name in view.obs[type_key].cat.categories:
        label = matched.get(name)
        color = ref_colors.get(label) if label is not None else None
        colors.append(to_hex(color) if color is not None else next(spare, "#aaaaaa"))
    view.uns[f"{type_key}_colors"] = colors


def _legend_width(labels: pd.Series) -> float:
    """Approximate width in inches of scanpy's right-margin legend for these labels."""
    names = pd.Series(labels).astype(str).unique()
    n_cols = 1 if len(names) <= 14 else 2 if len(names) <= 30 else 3  # scanpy's rule
    return n_cols * (0.45 + 0.075 * max(len(name) for name in names))
