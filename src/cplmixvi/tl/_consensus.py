"""Consensus of the arms: per-category agreement, fused labels and per-cell confidence.

All functions take the per-arm type probabilities ``(n_arms, n_cells, n_types)`` returned by
:meth:`cplmixvi.CplMixVI.get_type_probabilities` with ``per_arm=True`` (computed on every cell).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cplmixvi.model._results import assignments, fuse

__all__ = ["category_agreement", "co_assignment", "consensus"]


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
