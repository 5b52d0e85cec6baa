"""Confusion matrix of inferred types against reference labels, in taxonomy order."""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cplmixvi.pl._utils import finish, new_figure, show_params
from cplmixvi.tl import confusion_table


@show_params
def confusion(
    adata: AnnData,
    type_key: str = "cplmixvi_type",
    labels_key: str = "cell_type",
    order: Literal["tree", "cluster"] | None = "cluster",
    tree: str | os.PathLike | pd.DataFrame | None = None,
    normalize: Literal["row", "column"] | None = "row",
    ax: Axes | None = None,
    cmap: str = "Blues",
    *,
    show: bool | None = None,
    return_fig: bool = False,
) -> Axes | Figure | None:
    """Heatmap of reference labels (rows) against inferred types (columns).

    Rows follow a taxonomy (``order="tree"`` with ``tree``, e.g. the Allen Institute's
    ``tree_Mouse_ALM-VISp_2018.csv``), a hierarchical clustering (``"cluster"``) or the label
    categories (``None``); each inferred type is placed at the label it is matched to by
    Hungarian matching, so a good result is near-diagonal. See
    :func:`cplmixvi.tl.confusion_table`, which computes the table drawn here.

    Parameters
    ----------
    adata
        AnnData with ``obs[type_key]`` and ``obs[labels_key]``.
    type_key, labels_key
        Inferred types and reference labels.
    order, tree, normalize
        As in :func:`cplmixvi.tl.confusion_table`.
    ax
        Axes to draw into; a new figure sized to the table by default.
    cmap
        Colour map.
    %(show_params)s

    Returns
    -------
    The Axes (with ``show=False``), the figure (``return_fig=True``) or ``None`` (shown).
    """
    table = confusion_table(adata, type_key, labels_key, order, tree, normalize)
    n_rows, n_cols = table.shape
    if ax is None:
        size = (max(4.5, 2.5 + 0.16 * n_cols), max(3.5, 1.8 + 0.16 * n_rows))
        ax = new_figure(size).subplots()
    image = ax.imshow(table.to_numpy(np.float64), aspect="auto", cmap=cmap, vmin=0)
    size = float(np.clip(260 / max(n_rows, n_cols, 1), 4, 9))
    ax.set_yticks(range(n_rows), table.index.astype(str), fontsize=size)
    ax.set_xticks(range(n_cols), table.columns.astype(str), fontsize=size, rotation=90)
    ax.set_ylabel(labels_key)
    ax.set_xlabel(type_key)
    label = {"row": "fraction of label", "column": "fraction of type", None: "cells"}[normalize]
    ax.figure.colorbar(image, ax=ax, shrink=0.5, pad=0.01, label=label)
    return finish(ax.figure, ax, show, return_fig)
