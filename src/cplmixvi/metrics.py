"""Clustering metrics against reference labels, and the consensus of the arms.

All label-based functions accept any one-dimensional sequence of hashable
labels (strings, integers, pandas categoricals); the predicted clusters may
number more or fewer than the reference labels.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    "category_agreement",
    "co_assignment",
    "consensus",
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


# ----- consensus of the arms: per-category agreement, fused labels and per-cell confidence
# (the per-arm type probabilities ``(n_arms, n_cells, n_types)`` of
# ``CplMixVI.get_type_probabilities(per_arm=True)``)


def fuse(log_probs: np.ndarray) -> np.ndarray:
    """Normalised geometric mean of the arms' posteriors: softmax of the mean log-probability."""
    mean = log_probs.mean(axis=0)
    mean = mean - mean.max(axis=1, keepdims=True)
    probs = np.exp(mean)
    return probs / probs.sum(axis=1, keepdims=True)


def assignments(
    log_probs: np.ndarray, fused_probs: np.ndarray, obs_names: pd.Index
) -> pd.DataFrame:
    """Per cell: fused type, the arms' mean probability of it, and the fraction agreeing."""
    fused = fused_probs.argmax(axis=1)
    rows = np.arange(len(fused))
    arm_probs = np.exp(log_probs[:, rows, fused])
    agree = (log_probs.argmax(axis=2) == fused[None]).mean(axis=0)
    return pd.DataFrame(
        {"type": fused, "confidence": arm_probs.mean(axis=0), "arm_agreement": agree},
        index=obs_names,
    )


def _check_probs(type_probs: np.ndarray, min_arms: int = 1) -> np.ndarray:
    probs = np.asarray(type_probs, dtype=np.float64)
    if probs.ndim != 3 or 0 in probs.shape:
        raise ValueError(
            "type_probs must be a non-empty (n_arms, n_cells, n_types) array, as returned by "
            f"model.get_type_probabilities(per_arm=True); got shape {probs.shape}."
        )
    if probs.shape[0] < min_arms:
        raise ValueError(
            f"Agreement between arms needs at least {min_arms} arms, got {probs.shape[0]}; "
            "train a model with n_arms >= 2."
        )
    if np.any(probs < 0) or not np.all(np.isfinite(probs)):
        raise ValueError("type_probs must be finite probabilities (not log-probabilities).")
    return probs


def co_assignment(labels_a: np.ndarray, labels_b: np.ndarray, n_types: int) -> np.ndarray:
    """Arm-vs-arm co-assignment counts: cells that arm a puts in ``j`` and arm b in ``k``.

    Parameters
    ----------
    labels_a, labels_b
        Integer category of each cell in two arms, shape ``(n_cells,)``.
    n_types
        Number of categories ``K``.

    Returns
    -------
    ``(K, K)`` integer matrix.
    """
    flat = np.asarray(labels_a, dtype=np.int64) * n_types + np.asarray(labels_b, dtype=np.int64)
    return np.bincount(flat, minlength=n_types * n_types).reshape(n_types, n_types)


def category_agreement(
    type_probs: np.ndarray, types: Sequence[int] | np.ndarray | None = None
) -> pd.DataFrame:
    """Per-category agreement between arms, averaged over all pairs of arms ``a < b``.

    For a pair of arms with co-assignment counts ``N`` (:func:`co_assignment` of their argmax
    labels) the agreement of category ``k`` is the normalised diagonal
    ``N[k, k] / max(N[k, :].sum(), N[:, k].sum())``: the cells both arms put in ``k``, over the
    larger of the two arms' counts of ``k``. It is 1 when both arms assign exactly the same cells
    to ``k`` and 0 when neither uses ``k``. This is the normalisation of the reference code,
    taken over all pairs rather than arms 0 and 1 only.

    Parameters
    ----------
    type_probs
        Per-arm type probabilities, shape ``(n_arms, n_cells, n_types)``, ``n_arms >= 2``.
    types
        Category ids to report (default all); e.g. the surviving categories of a pruned model.

    Returns
    -------
    DataFrame indexed by category id (``type``) with columns ``agreement`` (mean over pairs),
    ``min_pair_agreement`` (worst pair), ``n_cells`` (cells whose fused consensus label is
    that category, see :func:`consensus`) and ``mean_prob`` (its mean fused probability, the
    aggregate posterior ``q(c)``).
    """
    probs = _check_probs(type_probs, min_arms=2)
    n_arms, n_cells, n_types = probs.shape
    labels = probs.argmax(axis=2)  # (A, n)
    # per-arm counts (A, K) and, per pair, the cells both arms put in the same category (P, K)
    offsets = np.arange(n_arms)[:, None] * n_types
    counts = np.bincount((labels + offsets).ravel(), minlength=n_arms * n_types)
    counts = counts.reshape(n_arms, n_types)
    first, second = np.triu_indices(n_arms, k=1)
    same = labels[first] == labels[second]  # (P, n)
    pair_offsets = np.arange(len(first))[:, None] * n_types
    both = np.bincount(
        (labels[first] + pair_offsets)[same], minlength=len(first) * n_types
    ).reshape(len(first), n_types)
    larger = np.maximum(counts[first], counts[second])
    per_pair = np.divide(both, larger, out=np.zeros(both.shape), where=larger > 0)
    fused = fuse(_safe_log(probs))
    table = pd.DataFrame(
        {
            "agreement": per_pair.mean(axis=0),
            "min_pair_agreement": per_pair.min(axis=0),
            "n_cells": np.bincount(fused.argmax(axis=1), minlength=n_types),
            "mean_prob": fused.mean(axis=0),
        },
        index=pd.RangeIndex(n_types, name="type"),
    )
    if types is not None:
        table = table.loc[_check_types(types, n_types)]
    return table


def consensus(type_probs: np.ndarray, obs_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Fused consensus label and per-cell confidence from the arms' posteriors.

    Parameters
    ----------
    type_probs
        Per-arm type probabilities, shape ``(n_arms, n_cells, n_types)``.
    obs_names
        Cell names for the index (default ``0 ... n_cells - 1``).

    Returns
    -------
    DataFrame with one row per cell: ``type`` (argmax of the normalised geometric mean of the
    arms' posteriors), ``confidence`` (the arms' mean posterior probability of that type) and
    ``arm_agreement`` (fraction of arms whose own argmax is that type), exactly as
    :meth:`cplmixvi.CplMixVI.get_type_assignments`.
    """
    probs = _check_probs(type_probs)
    log_probs = _safe_log(probs)
    index = pd.RangeIndex(probs.shape[1]) if obs_names is None else pd.Index(obs_names)
    if len(index) != probs.shape[1]:
        raise ValueError(f"Got {len(index)} obs_names for {probs.shape[1]} cells.")
    return assignments(log_probs, fuse(log_probs), index)


def _safe_log(probs: np.ndarray) -> np.ndarray:
    """``log`` floored at the smallest normal float, so that exact zeros (pruned categories,
    one-hot inputs) stay finite and arms that put zero on every other's choice still fuse."""
    return np.log(np.maximum(probs, np.finfo(np.float64).tiny))


def _check_types(types, n_types: int) -> np.ndarray:
    ids = np.asarray(types, dtype=np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= n_types):
        raise ValueError(f"types must be category ids in [0, {n_types - 1}], got {list(ids)}.")
    return ids
