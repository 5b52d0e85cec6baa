"""Per-type distributions of the inferred continuous state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cplmixvi.pl._utils import finish, new_figure, show_params


@show_params
def state_distributions(
    adata: AnnData,
    type_key: str = "cplmixvi_type",
    state_key: str = "X_cplmixvi_state",
    dims: Sequence[int] | None = None,
    types: Sequence[str] | None = None,
    type_names: Mapping[str, str] | None = None,
    min_cells: int = 5,
    *,
    show: bool | None = None,
    return_fig: bool = False,
) -> list[Axes] | Figure | None:
    """Violin plot of each state dimension per type (one panel per dimension).

    Parameters
    ----------
    adata
        AnnData with types in ``obs[type_key]`` and states in ``obsm[state_key]`` (as written
        by :meth:`cplmixvi.CplMixVI.write_results`).
    type_key, state_key
        Where the types and states are.
    dims
        State dimensions to draw; ``None`` for all.
    types
        Types to draw, in this order; ``None`` for all with at least ``min_cells`` cells, largest
        first.
    type_names
        Optional ``{type: tick label}`` (e.g. the matched reference labels).
    min_cells
        Smallest type drawn when ``types`` is ``None``.
    %(show_params)s

    Returns
    -------
    One Axes per state dimension on a new figure (with ``show=False``), the figure
    (``return_fig=True``) or ``None`` (shown).
    """
    if type_key not in adata.obs or state_key not in adata.obsm:
        raise KeyError(
            f"Need adata.obs[{type_key!r}] and adata.obsm[{state_key!r}]; run "
            "model.write_results(adata) first."
        )
    states = np.asarray(adata.obsm[state_key])
    dims = list(range(states.shape[1])) if dims is None else list(dims)
    labels = adata.obs[type_key].astype(str)
    if types is None:
        sizes = labels.value_counts()
        types = sizes.index[sizes >= min_cells].tolist()
    types = [str(t) for t in types]
    keep = labels.isin(types).to_numpy()
    names = [(type_names or {}).get(t, t) for t in types]
    fig = new_figure((max(4.0, 1.5 + 0.3 * len(types)), 2.6 * len(dims)))
    axes = fig.subplots(len(dims), 1, squeeze=False)[:, 0]
    for ax, d in zip(axes, dims, strict=True):
        frame = pd.DataFrame(
            {
                "type": labels[keep].map(dict(zip(types, names, strict=True))).to_numpy(),
                "state": states[keep, d],
            }
        )
        sns.violinplot(
            frame,
            x="type",
            y="state",
            order=names,
            ax=ax,
            density_norm="width",
            inner="quartile",
            linewidth=0.6,
            color="#9ecae1",
            cut=0,
        )
        ax.set_ylabel(f"state {d}")
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=90, labelsize=7)
    axes[-1].set_xlabel(type_key)
    return finish(fig, list(axes), show, return_fig)
