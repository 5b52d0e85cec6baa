"""Clustering metrics for comparing predicted clusters with reference labels.

All label-based functions accept any one-dimensional sequence of hashable
labels (strings, integers, pandas categoricals); the predicted clusters may
number more or fewer than the reference labels.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment
from scipy.special import rel_entr
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    normalized_mutual_info_score,
)

__all__ = [
    "arm_agreement",
    "categorical_kl",
    "clustering_scores",
    "hungarian_accuracy",
    "hungarian_mapping",
]


def _encode(labels: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Encode labels as integer codes.

    Parameters
    ----------
    labels
        One-dimensional sequence of hashable labels.
    name
        Argument name used in error messages.

    Returns
    -------
    codes
        Integer code of each element, shape ``(n,)``.
    uniques
        The distinct labels, ``uniques[codes]`` recovers the input.
    """
    values = np.asarray(labels, dtype=object)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}.")
    codes, uniques = pd.factorize(values, sort=False)
    if np.any(codes < 0):
        raise ValueError(f"{name} contains missing values.")
    return codes, np.asarray(uniques, dtype=object)


def _validate(
    labels_true: ArrayLike, labels_pred: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check that both label vectors are non-empty and of equal length, then encode them."""
    true_codes, true_classes = _encode(labels_true, "labels_true")
    pred_codes, pred_classes = _encode(labels_pred, "labels_pred")
    if true_codes.size == 0:
        raise ValueError("Labels must be non-empty.")
    if true_codes.size != pred_codes.size:
        raise ValueError(
            "labels_true and labels_pred must have the same length, "
            f"got {true_codes.size} and {pred_codes.size}."
        )
    return true_codes, true_classes, pred_codes, pred_classes


def _contingency(true_codes: np.ndarray, pred_codes: np.ndarray) -> np.ndarray:
    """Contingency matrix with reference labels as rows and predicted clusters as columns."""
    table = np.zeros((true_codes.max() + 1, pred_codes.max() + 1), dtype=np.int64)
    np.add.at(table, (true_codes, pred_codes), 1)
    return table


def _matched_pairs(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the one-to-one matching maximising the matched counts.

    ``min(n_rows, n_cols)`` pairs are returned, possibly including pairs with
    zero overlap when a cluster shares no cell with any label left to match.
    """
    return linear_sum_assignment(table, maximize=True)


def hungarian_accuracy(labels_true: ArrayLike, labels_pred: ArrayLike) -> float:
    """Clustering accuracy after optimal one-to-one matching of clusters to labels.

    Each predicted cluster is matched to at most one reference label (and
    vice versa) so as to maximise the number of agreeing cells, using the
    Hungarian algorithm on the contingency matrix. Cells in unmatched clusters
    count as errors, so predicting more clusters than there are labels is
    penalised.

    Parameters
    ----------
    labels_true
        Reference labels, shape ``(n_cells,)``.
    labels_pred
        Predicted cluster assignments, shape ``(n_cells,)``.

    Returns
    -------
    float
        Fraction of cells whose cluster is matched to their reference label.
    """
    true_codes, _, pred_codes, _ = _validate(labels_true, labels_pred)
    table = _contingency(true_codes, pred_codes)
    rows, cols = _matched_pairs(table)
    return float(table[rows, cols].sum() / true_codes.size)


def hungarian_mapping(labels_true: ArrayLike, labels_pred: ArrayLike) -> dict:
    """Optimal one-to-one mapping from predicted clusters to reference labels.

    Parameters
    ----------
    labels_true
        Reference labels, shape ``(n_cells,)``.
    labels_pred
        Predicted cluster assignments, shape ``(n_cells,)``.

    Returns
    -------
    dict
        ``{cluster: label}`` for every matched cluster. Every cluster is
        matched when there are no more clusters than labels (a cluster may
        then be matched to a label it shares no cell with); otherwise the
        clusters left unmatched are absent.
    """
    true_codes, true_classes, pred_codes, pred_classes = _validate(labels_true, labels_pred)
    rows, cols = _matched_pairs(_contingency(true_codes, pred_codes))
    return {pred_classes[c]: true_classes[r] for r, c in zip(rows, cols, strict=True)}


def categorical_kl(labels_true: ArrayLike, labels_pred: ArrayLike, eps: float = 1e-10) -> float:
    """KL divergence ``KL(q(c) || p(c))`` between cluster and label proportions.

    ``q`` is the aggregate distribution of predicted clusters and ``p`` the
    reference label distribution. Clusters are first put in correspondence
    with labels by Hungarian matching (see :func:`hungarian_mapping`). When
    there are more clusters than labels, the mass of the unmatched clusters
    is pooled in one extra category that has zero reference probability.
    Both distributions are smoothed by adding ``eps`` to every category and
    renormalising, so unmatched mass yields a large but finite penalty of
    about ``q_unmatched * log(q_unmatched / eps)``.
    Reference labels without a matched cluster contribute (almost) nothing,
    as ``q`` is zero there.

    Parameters
    ----------
    labels_true
        Reference labels, shape ``(n_cells,)``.
    labels_pred
        Predicted cluster assignments, shape ``(n_cells,)``.
    eps
        Smoothing added to each category probability; must be positive.

    Returns
    -------
    float
        KL divergence in nats; 0 when the matched proportions are identical.
    """
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}.")
    true_codes, true_classes, pred_codes, pred_classes = _validate(labels_true, labels_pred)
    table = _contingency(true_codes, pred_codes)
    rows, cols = _matched_pairs(table)
    n_labels = len(true_classes)
    cluster_sizes = table.sum(axis=0)
    # Category of each cluster: its matched label, or the extra category n_labels.
    category = np.full(len(pred_classes), n_labels)
    category[cols] = rows
    q = np.bincount(category, weights=cluster_sizes, minlength=n_labels + 1)
    p = np.append(table.sum(axis=1), 0.0)
    q = q / q.sum() + eps
    p = p / p.sum() + eps
    return float(rel_entr(q / q.sum(), p / p.sum()).sum())


def arm_agreement(type_probs: np.ndarray) -> float:
    """Mean pairwise agreement of the most likely category across arms.

    Parameters
    ----------
    type_probs
        Category probabilities (or logits) of shape ``(n_arms, n_cells, K)``.
        Category indices are assumed to be shared across arms (no matching).

    Returns
    -------
    float
        Fraction of cells on which two arms pick the same argmax category,
        averaged over all unordered pairs of arms; 1.0 for a single arm.
    """
    probs = np.asarray(type_probs)
    if probs.ndim != 3:
        raise ValueError(f"type_probs must have shape (n_arms, n_cells, K), got {probs.shape}.")
    if 0 in probs.shape:
        raise ValueError(f"type_probs must be non-empty, got shape {probs.shape}.")
    assignments = probs.argmax(axis=-1)
    if len(assignments) == 1:
        return 1.0
    pairs = combinations(range(len(assignments)), 2)
    return float(np.mean([np.mean(assignments[i] == assignments[j]) for i, j in pairs]))


def clustering_scores(labels_true: ArrayLike, labels_pred: ArrayLike) -> dict[str, float]:
    """Standard clustering scores of predicted clusters against reference labels.

    Parameters
    ----------
    labels_true
        Reference labels, shape ``(n_cells,)``.
    labels_pred
        Predicted cluster assignments, shape ``(n_cells,)``.

    Returns
    -------
    dict
        ``acc`` (:func:`hungarian_accuracy`), ``ari`` (adjusted Rand index),
        ``ami`` (adjusted mutual information), ``nmi`` (normalised mutual
        information, arithmetic mean) and ``kl`` (:func:`categorical_kl`).
    """
    true_codes, _, pred_codes, _ = _validate(labels_true, labels_pred)
    return {
        "acc": hungarian_accuracy(true_codes, pred_codes),
        "ari": float(adjusted_rand_score(true_codes, pred_codes)),
        "ami": float(adjusted_mutual_info_score(true_codes, pred_codes)),
        "nmi": float(normalized_mutual_info_score(true_codes, pred_codes)),
        "kl": categorical_kl(true_codes, pred_codes),
    }
