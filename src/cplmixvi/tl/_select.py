"""Choosing the number of types from a pruning history."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["pruning_history", "select_n_types"]

_COLUMNS = ("n_types", "mean_agreement", "min_agreement", "n_empty")


def pruning_history(source, key_prefix: str = "cplmixvi") -> pd.DataFrame:
    """The pruning history of a model, of an AnnData it was written to, or the table itself.

    Parameters
    ----------
    source
        A pruned :class:`~cplmixvi.CplMixVI` (``pruning_history_``), an AnnData with
        ``uns[key_prefix]["pruning_history"]`` (see :meth:`~cplmixvi.CplMixVI.write_results`)
        or a history DataFrame.
    key_prefix
        Prefix the results were written with (AnnData only).
    """
    if isinstance(source, pd.DataFrame):
        history = source
    elif hasattr(source, "uns"):
        history = source.uns.get(key_prefix, {}).get("pruning_history")
    else:
        history = getattr(source, "pruning_history_", None)
    if history is None:
        raise ValueError(
            "No pruning history found; run model.prune() first (and model.write_results(adata) "
            "to copy it into adata.uns)."
        )
    missing = [col for col in _COLUMNS if col not in history.columns]
    if missing or len(history) == 0:
        raise ValueError(
            f"A pruning history needs rows and the columns {_COLUMNS}; missing {missing}."
        )
    return history


def select_n_types(
    source,
    threshold: float = 0.5,
    criterion: Literal["min", "mean"] = "min",
    key_prefix: str = "cplmixvi",
) -> int:
    """Number of types chosen from the consensus curve of a pruning history.

    In words: the most types for which the arms agree on every category. It is the largest
    K at which no category is empty and the agreement between arms of every category
    (``criterion="min"``) reaches ``threshold``; ``"mean"`` asks it of their average instead.
    With :meth:`~cplmixvi.CplMixVI.prune`'s defaults this is the K where pruning stopped (the
    same threshold, 0.5: every category's cells are put there by both arms more often than
    not); a stricter threshold reads a smaller K off the same history. When no round passes,
    the K whose agreement is highest (the largest such K on ties).

    Parameters
    ----------
    source
        A pruned model, an AnnData with its results, or its history (see
        :func:`pruning_history`).
    threshold
        Agreement to reach.
    criterion
        ``"min"`` or ``"mean"`` agreement over categories.
    key_prefix
        Prefix the results were written with (AnnData only).

    Returns
    -------
    The selected number of types.
    """
    if criterion not in ("min", "mean"):
        raise ValueError(f"criterion must be 'min' or 'mean', got {criterion!r}.")
    history = pruning_history(source, key_prefix)
    score = history[f"{criterion}_agreement"].to_numpy(dtype=float)
    n_types = history["n_types"].to_numpy()
    passing = (score >= threshold) & (history["n_empty"].to_numpy() == 0)
    if passing.any():
        return int(n_types[passing].max())
    best = np.flatnonzero(score == np.nanmax(score))
    return int(n_types[best].max())
