"""A test on the data for two neighbouring categories: is there a density valley between them?

Used by ``type_test.py`` (measured, not adopted: ``benchmarks/results/type_test.md``).

Two cell types are two modes of expression; two pieces of one type, or of a continuum, are not.
Projected on the axis that best separates them (a linear discriminant fitted on other cells than
the ones it projects), the cells of two types leave a valley of low density between their
medians; the two halves of one mode do not. The valley ratio measures it: the lowest density
between the two medians over the lower density at them (1: no dip at all). Noisy, shallow data
blur the projection, so the evidence needed adapts to the data's depth by itself.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import issparse
from scipy.stats import gaussian_kde
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import StratifiedKFold, cross_val_predict

#: cells read per category (evenly spaced over the category), principal components per pair,
#: cross-fitting folds and grid points between the medians
MAX_CELLS, N_COMPONENTS, N_FOLDS, N_GRID = 500, 20, 5, 64


def valley_ratio(xa: np.ndarray, xb: np.ndarray) -> float:
    """Lowest density between two groups of cells over the lower density at their medians.

    The cells (rows, e.g. log-normalised expression) of both groups are reduced to their
    leading principal components; each cell is projected on a shrinkage linear discriminant
    fitted on the other folds; the projections' density (Gaussian kernels, each group weighted
    to half the mass) is read between the groups' medians. Deterministic.

    Returns
    -------
    A ratio in ``[0, 1]``: near 0 for well separated modes, 1 when the density never dips.
    """
    features = np.vstack([xa, xb]).astype(np.float64)
    groups = np.r_[np.zeros(len(xa)), np.ones(len(xb))]
    n_folds = min(N_FOLDS, len(xa), len(xb))
    if n_folds < 2:
        return 1.0
    n_comp = min(N_COMPONENTS, len(groups) - 1, features.shape[1])
    features = PCA(n_comp, random_state=0).fit_transform(features)
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=0)
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    proj = cross_val_predict(lda, features, groups, cv=folds, method="decision_function")
    weights = np.where(groups == 0, 0.5 / len(xa), 0.5 / len(xb))
    med_a, med_b = np.median(proj[groups == 0]), np.median(proj[groups == 1])
    if med_a == med_b or np.ptp(proj) == 0:
        return 1.0
    density = gaussian_kde(proj, weights=weights)(np.linspace(med_a, med_b, N_GRID))
    return float(min(density.min() / min(density[0], density[-1]), 1.0))


def neighbour_pairs(fused: np.ndarray, labels: np.ndarray, n_neighbours: int = 3) -> list:
    """Pairs of categories to test: for each, the ``n_neighbours`` that its cells (and theirs)
    most often hold as second choice in the fused posterior ``(n_cells, K)``."""
    n_types = fused.shape[1]
    second = np.argsort(fused, axis=1)[:, -2]
    shared = np.bincount(labels * n_types + second, minlength=n_types * n_types)
    shared = shared.reshape(n_types, n_types)
    shared = shared + shared.T
    np.fill_diagonal(shared, 0)
    pairs = set()
    for k in np.unique(labels):
        for j in np.argsort(-shared[k], kind="stable")[:n_neighbours]:
            if shared[k, j] > 0 and j in labels:
                pairs.add((min(k, j), max(k, j)))
    return sorted(pairs)


def valley_merges(
    expression, fused: np.ndarray, threshold: float, log_normalise: bool, cache: dict
) -> tuple[list[int], float]:
    """Categories to remove because a neighbour shows no density valley against them.

    Pairs of :func:`neighbour_pairs` with a :func:`valley_ratio` of at least ``threshold`` are
    taken from the highest ratio down, each category in one pair at most; the smaller category
    of each pair is returned (its cells go to their next category, mostly the partner).

    Parameters
    ----------
    expression
        The registered data, cells x features (dense, sparse or backed rows).
    fused
        Fused type probabilities ``(n_cells, K)``; removed categories have probability 0.
    threshold
        Valley ratio from which two categories are one.
    log_normalise
        Read counts as ``log1p`` of counts per 10^4 (what the type encoder sees).
    cache
        Ratios of earlier rounds, keyed by the pairs' members; updated in place.

    Returns
    -------
    The categories to remove and the highest ratio found.
    """
    labels = fused.argmax(axis=1)
    members = {k: np.flatnonzero(labels == k) for k in np.unique(labels)}
    ratios = {}
    for a, b in neighbour_pairs(fused, labels):
        key = (_signature(members[a]), _signature(members[b]))
        if key not in cache:
            xa, xb = (_rows(expression, members[k], log_normalise) for k in (a, b))
            cache[key] = valley_ratio(xa, xb)
        ratios[a, b] = cache[key]
    removed, used = [], set()
    for (a, b), ratio in sorted(ratios.items(), key=lambda item: -item[1]):
        if ratio < threshold or a in used or b in used:
            continue
        used.update((a, b))
        removed.append(int(a if len(members[a]) < len(members[b]) else b))
    return removed, max(ratios.values(), default=0.0)


def _signature(cells: np.ndarray) -> tuple[int, int]:
    return len(cells), int(cells.sum())


def _rows(expression, cells: np.ndarray, log_normalise: bool) -> np.ndarray:
    """Evenly spaced rows of a category, dense (``MAX_CELLS`` at most)."""
    take = cells[np.linspace(0, len(cells) - 1, min(MAX_CELLS, len(cells))).astype(int)]
    rows = expression[np.sort(take)]
    rows = np.asarray(rows.toarray() if issparse(rows) else rows, dtype=np.float64)
    if log_normalise:
        totals = rows.sum(axis=1, keepdims=True)
        rows = np.log1p(rows / np.maximum(totals, 1e-12) * 1e4)
    return rows
