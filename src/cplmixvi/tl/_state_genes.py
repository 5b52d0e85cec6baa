"""State-regulated genes from a latent traversal: strength, monotonicity, type-dependence."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

__all__ = ["check_flat", "rank_state_genes", "state_gene_type_dependence", "top_state_genes"]

_GROUP = ["type", "arm", "state_dim"]
_TRAV_COLUMNS = {"type", "arm", "state_dim", "step", "state", "gene", "expression"}


def rank_state_genes(traversal: pd.DataFrame, pseudocount: float = 1.0) -> pd.DataFrame:
    """Rank genes by how strongly and how monotonically a state dimension moves them.

    For every (type, arm, state dimension, gene) of a traversal from
    :meth:`cplmixvi.CplMixVI.traverse`, with ``y = log2(expression + pseudocount)`` (normalised
    expression; the decoded values themselves for likelihoods that are not counts):

    - ``log2fc``: ``y`` at the last step minus ``y`` at the first (signed strength);
    - ``log2_range``: ``max(y) - min(y)`` over the grid (unsigned, also for non-monotone genes);
    - ``spearman``: Spearman correlation of the expression with the state value (monotonicity;
      0 for a gene that does not change);
    - ``score``: ``|log2fc| * |spearman|``, the ranking key: large for genes that change a lot
      and in one direction;
    - ``rank``: 1 for the highest score within its (type, arm, state_dim).

    A traversal along the types' principal axes (``traverse(state_dim="pc1")``) is ranked the
    same way, with ``state_dim == "pc1"``: one direction per type that holds the type's main
    state variation even when it is spread over several state dimensions.

    Parameters
    ----------
    traversal
        Output of :meth:`~cplmixvi.CplMixVI.traverse` (at least 3 steps).
    pseudocount
        Added before the log for normalised counts (counts per 10 000 by default).

    Returns
    -------
    One row per (type, arm, state_dim, gene), with ``mean_expression`` and the columns above,
    sorted by type, arm, state_dim and rank.

    Examples
    --------
    >>> scores = cplmixvi.tl.rank_state_genes(model.traverse(n_steps=11))
    >>> scores[scores["rank"] <= 10]
    >>> along = cplmixvi.tl.rank_state_genes(model.traverse(state_dim="pc1", grid="cells"))
    """
    wide, state = _wide(traversal)
    y = wide.to_numpy(np.float64)
    if traversal.attrs.get("expression", "normalized") == "normalized":
        y = np.log2(y + pseudocount)
    ranks = rankdata(y, axis=1)
    step_ranks = rankdata(state.to_numpy(), axis=1)
    scores = wide.index.to_frame(index=False)
    scores["mean_expression"] = wide.to_numpy().mean(axis=1)
    scores["log2fc"] = y[:, -1] - y[:, 0]
    scores["log2_range"] = y.max(axis=1) - y.min(axis=1)
    scores["spearman"] = _row_corr(ranks, step_ranks)
    scores["score"] = scores["log2fc"].abs() * scores["spearman"].abs()
    scores = scores.sort_values([*_GROUP, "score"], ascending=[True] * 3 + [False])
    scores["rank"] = scores.groupby(_GROUP, observed=True).cumcount() + 1
    return scores.reset_index(drop=True)


def top_state_genes(
    scores: pd.DataFrame, n_genes: int = 10, arm: int | None = None
) -> dict[str, list[str]]:
    """The ``n_genes`` highest-scoring genes of each type, over its state dimensions.

    Parameters
    ----------
    scores
        Output of :func:`rank_state_genes`.
    n_genes
        Genes per type.
    arm
        Only this arm; ``None`` pools all arms.

    Returns
    -------
    ``{type: [genes]}``, each list ordered by the gene's best score over state dimensions.
    """
    table = scores if arm is None else scores[scores["arm"] == arm]
    best = table.groupby(["type", "gene"], observed=True)["score"].max().reset_index()
    best = best.sort_values(["type", "score"], ascending=[True, False], kind="stable")
    return {
        str(t): group["gene"].astype(str).head(n_genes).tolist()
        for t, group in best.groupby("type", observed=True, sort=False)
    }


def state_gene_type_dependence(
    scores: pd.DataFrame,
    min_log2fc: float = 1.0,
    min_spearman: float = 0.8,
    min_specificity: float = 0.5,
) -> pd.DataFrame:
    """Flag genes whose response to the state depends on the type.

    A type's state space has its own axes: dimension ``d`` of one type need not mean what it
    means in another, and the sign of an axis is arbitrary. So each gene's response in a type is
    summarised by its strongest state dimension: ``|log2fc|`` of the dimension with the highest
    score, and the gene counts as *responding* there when ``|log2fc| >= min_log2fc`` and
    ``|spearman| >= min_spearman``. Across types, ``specificity = 1 - min / max`` of those
    ``|log2fc|`` (0: the same strength in every type; 1: flat in some type). With a traversal
    along the principal axes (``state_dim="pc1"``) each type has one direction to begin with.

    Parameters
    ----------
    scores
        Output of :func:`rank_state_genes` (with at least two types for a meaningful flag).
    min_log2fc, min_spearman
        When a gene responds in a type.
    min_specificity
        ``type_dependent`` needs at least this specificity.

    Returns
    -------
    One row per (arm, gene): ``n_types``, ``n_responding``, ``responding_types`` (labels joined
    by ``","``), ``max_abs_log2fc``, ``min_abs_log2fc``, ``specificity`` and ``type_dependent``
    (responds in some type, with specificity >= ``min_specificity``), sorted by arm and
    decreasing ``max_abs_log2fc``.
    """
    best = scores.sort_values("score", ascending=False, kind="stable")
    best = best.drop_duplicates(["type", "arm", "gene"]).copy()
    best["abs_log2fc"] = best["log2fc"].abs()
    best["responding"] = (best["abs_log2fc"] >= min_log2fc) & (
        best["spearman"].abs() >= min_spearman
    )
    grouped = best.groupby(["arm", "gene"], observed=True)
    table = grouped.agg(
        n_types=("type", "nunique"),
        n_responding=("responding", "sum"),
        max_abs_log2fc=("abs_log2fc", "max"),
        min_abs_log2fc=("abs_log2fc", "min"),
    )
    table["responding_types"] = grouped.apply(
        lambda g: ",".join(g.loc[g["responding"], "type"].astype(str)), include_groups=False
    )
    table["specificity"] = 1.0 - table["min_abs_log2fc"] / table["max_abs_log2fc"].clip(1e-12)
    table["type_dependent"] = (table["n_responding"] > 0) & (
        table["specificity"] >= min_specificity
    )
    table = table.reset_index().sort_values(["arm", "max_abs_log2fc"], ascending=[True, False])
    return table.reset_index(drop=True)


def check_flat(
    traversal: pd.DataFrame,
    genes: Sequence[str],
    max_log2_range: float = 0.5,
    pseudocount: float = 1.0,
) -> pd.DataFrame:
    """Check that given genes (e.g. markers) stay flat along the state in every type.

    Parameters
    ----------
    traversal
        Output of :meth:`~cplmixvi.CplMixVI.traverse`, or already its
        :func:`rank_state_genes` scores.
    genes
        Genes that should not respond to the state.
    max_log2_range
        Largest ``log2_range`` (log2 of max / min over the grid) that counts as flat.
    pseudocount
        As in :func:`rank_state_genes`.

    Returns
    -------
    One row per (type, arm, state_dim, gene) of the given genes with ``log2_range``,
    ``log2fc``, ``spearman``, ``rank`` (among all traversed genes) and ``flat``. All given genes
    are flat when ``result["flat"].all()``.
    """
    scores = (
        rank_state_genes(traversal, pseudocount)
        if _TRAV_COLUMNS.issubset(traversal.columns)
        else traversal
    )
    genes = [genes] if isinstance(genes, str) else [str(g) for g in genes]
    known = set(scores["gene"].astype(str))
    missing = [g for g in genes if g not in known]
    if missing:
        raise KeyError(
            f"{len(missing)} gene(s) are not in the traversal: {missing[:10]}; traverse with "
            "genes=None or include them."
        )
    table = scores[scores["gene"].astype(str).isin(genes)]
    columns = [*_GROUP, "gene", "log2_range", "log2fc", "spearman", "rank"]
    table = table[columns].copy()
    table["flat"] = table["log2_range"] <= max_log2_range
    return table.reset_index(drop=True)


def _wide(traversal: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Expression and state value as (type, arm, state_dim, gene) x step tables."""
    missing = _TRAV_COLUMNS.difference(traversal.columns)
    if missing:
        raise ValueError(
            f"traversal lacks the columns {sorted(missing)}; pass the DataFrame returned by "
            "CplMixVI.traverse."
        )
    if traversal["step"].nunique() < 3:
        raise ValueError("The traversal needs at least 3 steps to measure monotonicity.")
    index = [*_GROUP, "gene"]
    wide = traversal.pivot_table(
        index=index, columns="step", values="expression", observed=True, sort=True
    )
    state = traversal.pivot_table(
        index=index, columns="step", values="state", observed=True, sort=True
    )
    return wide, state.loc[wide.index]


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows; 0 where a row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a**2).sum(axis=1) * (b**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (a * b).sum(axis=1) / denom
    return np.where(denom > 1e-12, corr, 0.0)
