"""Confusion table of inferred types against reference labels, in taxonomy order."""

from __future__ import annotations

import os
import warnings
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering

from cplmixvi.metrics import hungarian_mapping

__all__ = ["confusion_table", "tree_leaf_order"]


def tree_leaf_order(tree: str | os.PathLike | pd.DataFrame) -> list[str]:
    """Leaf labels of a dendrogram table, left to right.

    Parameters
    ----------
    tree
        A table (or the path of its CSV) with one row per node and columns ``label``, ``leaf``
        (``TRUE`` for leaves) and ``x`` (horizontal position), like the Allen Institute's
        ``tree_Mouse_ALM-VISp_2018.csv``.

    Returns
    -------
    Leaf labels sorted by ``x``.
    """
    table = pd.read_csv(tree) if isinstance(tree, str | os.PathLike) else tree
    missing = {"label", "leaf", "x"}.difference(table.columns)
    if missing:
        raise ValueError(
            f"The tree table lacks the columns {sorted(missing)}; expected one row per node with "
            "'label', 'leaf' (TRUE for leaves) and 'x' (leaf position)."
        )
    leaf = table["leaf"].astype(str).str.upper().isin(["TRUE", "1", "T"])
    return table.loc[leaf].sort_values("x", kind="stable")["label"].astype(str).tolist()


def confusion_table(
    adata: AnnData,
    type_key: str = "cplmixvi_type",
    labels_key: str = "cell_type",
    order: Literal["tree", "cluster"] | None = "cluster",
    tree: str | os.PathLike | pd.DataFrame | None = None,
    normalize: Literal["row", "column"] | None = "row",
) -> pd.DataFrame:
    """Reference labels (rows) by inferred types (columns), rows in taxonomy order.

    Rows follow the leaves of ``tree`` (``order="tree"``), a hierarchical clustering of the
    rows' profiles (``order="cluster"``: average linkage on correlation distance with optimal
    leaf ordering) or the category order of ``labels_key`` (``None``). Columns follow the rows:
    each inferred type sits at the row of the label it is matched to by Hungarian matching
    (:func:`cplmixvi.metrics.hungarian_mapping`), unmatched types after the label they share
    the most cells with, so a good result is near-diagonal.

    Parameters
    ----------
    adata
        AnnData with both annotations in ``obs``.
    type_key
        Inferred types (e.g. written by :meth:`cplmixvi.CplMixVI.write_results`).
    labels_key
        Reference labels.
    order
        How to order the rows.
    tree
        Dendrogram for ``order="tree"`` (see :func:`tree_leaf_order`). Labels missing from the
        tree are appended at the end (with a warning).
    normalize
        ``"row"``: fraction of each label's cells in each type; ``"column"``: fraction of each
        type's cells with each label; ``None``: cell counts.

    Returns
    -------
    DataFrame of counts or fractions; ``attrs["matching"]`` holds the Hungarian matching
    ``{type: label}``.
    """
    for key in (type_key, labels_key):
        if key not in adata.obs:
            raise KeyError(f"{key!r} is not a column of adata.obs.")
    labels = adata.obs[labels_key].astype(str).to_numpy()
    types = adata.obs[type_key].astype(str).to_numpy()
    counts = pd.crosstab(pd.Series(labels, name=labels_key), pd.Series(types, name=type_key))
    rows = _row_order(counts, order, tree)
    counts = counts.loc[rows]
    matching = {str(k): str(v) for k, v in hungarian_mapping(labels, types).items()}
    counts = counts[_column_order(counts, matching)]
    table = _normalize(counts, normalize)
    table.attrs["matching"] = matching
    return table


def _row_order(counts: pd.DataFrame, order: str | None, tree) -> list[str]:
    labels = counts.index.astype(str).tolist()
    if order is None:
        return labels
    if order == "tree":
        if tree is None:
            raise ValueError("order='tree' needs tree= (a dendrogram table or its CSV path).")
        leaves = [leaf for leaf in tree_leaf_order(tree) if leaf in set(labels)]
        rest = [label for label in labels if label not in set(leaves)]
        if rest:
            warnings.warn(
                f"{len(rest)} label(s) are not leaves of the tree and go last: {rest[:5]}",
                stacklevel=3,
            )
        return leaves + rest
    if order == "cluster":
        if len(labels) < 3:
            return labels
        profiles = counts.to_numpy(np.float64)
        profiles = profiles / profiles.sum(axis=1, keepdims=True)
        profiles = profiles + 1e-9 * np.arange(profiles.shape[1])  # no constant rows
        links = linkage(profiles, method="average", metric="correlation")
        links = optimal_leaf_ordering(links, profiles, metric="correlation")
        return [labels[i] for i in leaves_list(links)]
    raise ValueError(f"order must be 'tree', 'cluster' or None, got {order!r}.")


def _column_order(counts: pd.DataFrame, matching: dict[str, str]) -> list[str]:
    position = {label: i for i, label in enumerate(counts.index.astype(str))}
    keys = []
    for column in counts.columns.astype(str):
        if column in matching:
            keys.append((position[matching[column]], 0, -counts[column].sum()))
        else:
            keys.append((int(np.argmax(counts[column].to_numpy())), 1, -counts[column].sum()))
    return [c for _, c in sorted(zip(keys, counts.columns, strict=True), key=lambda p: p[0])]


def _normalize(counts: pd.DataFrame, normalize: str | None) -> pd.DataFrame:
    if normalize is None:
        return counts
    if normalize == "row":
        return counts.div(counts.sum(axis=1), axis=0)
    if normalize == "column":
        return counts.div(counts.sum(axis=0), axis=1)
    raise ValueError(f"normalize must be 'row', 'column' or None, got {normalize!r}.")
