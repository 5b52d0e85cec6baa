"""The latent traversal heatmap of the paper's Fig. 4: state value x gene, one panel per type."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cplmixvi.pl._utils import finish, new_figure, show_params

GeneSets = Sequence[str] | Mapping[str, Sequence[str]]


@show_params
def traversal_heatmap(
    traversal: pd.DataFrame,
    genes: GeneSets | None = None,
    types: Sequence[str] | None = None,
    state_dim: int | str | Mapping[str, int | str] = 0,
    arm: int = 0,
    type_names: Mapping[str, str] | None = None,
    pseudocount: float = 1.0,
    vmax: float | None = None,
    cmap: str = "RdBu_r",
    *,
    show: bool | None = None,
    return_fig: bool = False,
) -> list[Axes] | Figure | None:
    """Heatmap of the expression change along a state dimension, genes grouped by gene set.

    Each panel is one type: columns are the grid of the state value, rows the genes (grouped by
    gene set, with the set names on the left), colour the log2 fold change of the expression
    against the middle of the grid (the median of ``p(s|c)``), on one symmetric scale for all
    panels. Flat rows (e.g. markers) are white; state-regulated genes run from blue to red.

    Parameters
    ----------
    traversal
        Output of :meth:`cplmixvi.CplMixVI.traverse`.
    genes
        Genes as a list, or ``{gene set: genes}`` to group them; ``None`` for all traversed
        genes (keep it to a few dozen to stay readable).
    types
        Type labels to draw, one panel each, in this order; ``None`` for all in the traversal.
    state_dim
        State dimension of the traversal to draw (``"pc1"`` for a traversal along the types'
        principal axes), or ``{type: dimension}`` to draw each type along its own (a type's
        state axes need not mean what another type's do).
    arm
        Arm of the traversal to draw.
    type_names
        Optional ``{type label: panel title}`` (e.g. the matched reference labels).
    pseudocount
        Added before the log for normalised counts.
    vmax
        Colour limit in log2 fold change; default the largest absolute change (at least 0.5).
    cmap
        Diverging colour map.
    %(show_params)s

    Returns
    -------
    One Axes per type on a new figure (with ``show=False``), the figure (``return_fig=True``)
    or ``None`` (shown).

    Examples
    --------
    >>> trav = model.traverse(cell_type=["3", "7"], genes=state_genes + markers)
    >>> cplmixvi.pl.traversal_heatmap(trav, {"state": state_genes, "markers": markers})
    """
    sets = _gene_sets(genes, traversal)
    panel_types = _types(traversal, types)
    dims = {t: state_dim[t] if isinstance(state_dim, Mapping) else state_dim for t in panel_types}
    ordered = [g for members in sets.values() for g in members]
    panels = [_panel_matrix(traversal, t, dims[t], arm, ordered, pseudocount) for t in panel_types]
    limit = vmax or max(0.5, max(float(np.nanmax(np.abs(m.to_numpy()))) for m in panels))
    fig = new_figure((1.5 + 2.9 * len(panels), 1.2 + 0.22 * len(ordered)))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for i, (ax, t, matrix) in enumerate(zip(axes, panel_types, panels, strict=True)):
        image = ax.imshow(matrix.to_numpy(), aspect="auto", cmap=cmap, vmin=-limit, vmax=limit)
        _decorate(ax, matrix, sets, show_genes=i == 0)
        title = (type_names or {}).get(t, f"type {t}")
        axis = "principal axis (pc1)" if dims[t] == "pc1" else f"state dim {dims[t]}"
        ax.set_title(f"{title}\n{axis}", fontsize=9)
    colorbar = fig.colorbar(image, ax=list(axes), shrink=0.6, pad=0.02)
    colorbar.set_label("log2 fold change vs median state", fontsize=8)
    return finish(fig, list(axes), show, return_fig)


def _panel_matrix(
    traversal: pd.DataFrame,
    cell_type: str,
    state_dim: int | str,
    arm: int,
    genes: list[str],
    pseudocount: float,
) -> pd.DataFrame:
    """Genes x state values of one type: log2 fold change against the middle step."""
    rows = traversal[
        (traversal["type"].astype(str) == cell_type)
        & (traversal["state_dim"] == state_dim)
        & (traversal["arm"] == arm)
    ]
    if rows.empty:
        raise ValueError(
            f"The traversal has no rows for type {cell_type}, state_dim={state_dim}, arm={arm}."
        )
    wide = rows.pivot_table(index="gene", columns="state", values="expression", observed=True)
    wide = wide.loc[genes]
    values = wide.to_numpy(np.float64)
    if traversal.attrs.get("expression", "normalized") == "normalized":
        values = np.log2(values + pseudocount)
    middle = values[:, values.shape[1] // 2][:, None]
    return pd.DataFrame(values - middle, index=wide.index, columns=wide.columns)


def _decorate(ax: Axes, matrix: pd.DataFrame, sets: dict[str, list[str]], show_genes: bool):
    states = matrix.columns.to_numpy(np.float64)
    ticks = np.unique(np.linspace(0, len(states) - 1, min(len(states), 5)).round().astype(int))
    ax.set_xticks(ticks, [f"{states[t]:.2f}" for t in ticks], fontsize=7)
    ax.set_xlabel("state value", fontsize=8)
    ax.set_yticks(range(len(matrix)), matrix.index if show_genes else [], fontsize=7)
    ax.tick_params(axis="y", length=0 if not show_genes else 2)
    start = 0
    for name, members in sets.items():
        if start > 0:
            ax.axhline(start - 0.5, color="black", linewidth=1.0)
        if show_genes and len(sets) > 1:
            offset = 12 + 4.8 * max(len(g) for g in matrix.index)  # past the gene names
            ax.annotate(
                textwrap.fill(name, 14),
                xy=(0, 1 - (start + len(members) / 2) / len(matrix)),
                xycoords="axes fraction",
                xytext=(-offset, 0),
                textcoords="offset points",
                ha="right",
                va="center",
                fontsize=7,
                fontweight="bold",
            )
        start += len(members)


def _gene_sets(genes: GeneSets | None, traversal: pd.DataFrame) -> dict[str, list[str]]:
    if genes is None:
        sets = {"genes": [str(g) for g in traversal["gene"].unique()]}
    elif isinstance(genes, Mapping):
        sets = {str(k): [str(g) for g in v] for k, v in genes.items()}
    else:
        sets = {"genes": [str(g) for g in ([genes] if isinstance(genes, str) else genes)]}
    known = set(traversal["gene"].astype(str))
    missing = [g for members in sets.values() for g in members if g not in known]
    if missing:
        raise KeyError(f"Genes not in the traversal: {missing[:10]}; traverse them first.")
    flat = [g for members in sets.values() for g in members]
    if len(set(flat)) != len(flat):
        raise ValueError("A gene appears twice in genes; each gene can be drawn in one set only.")
    return sets


def _types(traversal: pd.DataFrame, types: Sequence[str] | None) -> list[str]:
    present = [str(t) for t in pd.unique(traversal["type"].astype(str))]
    if types is None:
        return present
    types = [str(t) for t in ([types] if isinstance(types, str | int) else types)]
    missing = [t for t in types if t not in present]
    if missing:
        raise KeyError(f"Types not in the traversal: {missing}; it has {present}.")
    return types
