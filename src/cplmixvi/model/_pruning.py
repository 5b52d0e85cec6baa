"""Pruning the categories of a trained model, one at a time, with fine-tuning in between."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


def least_consistent(table: pd.DataFrame) -> tuple[int, str]:
    """The category to remove next and why: an empty one first, else the lowest agreement.

    Empty categories (no cell with that fused label) go in order of their mean fused
    probability; the others by agreement, then number of cells, then mean probability.
    """
    empty = table[table["n_cells"] == 0]
    if len(empty):
        return int(empty["mean_prob"].idxmin()), "empty"
    order = table.sort_values(["agreement", "n_cells", "mean_prob"], kind="stable")
    return int(order.index[0]), "least consistent"


def summary_row(round_: int, table: pd.DataFrame, epochs: int) -> dict:
    """One row of the pruning history for the agreement table of a round."""
    return {
        "round": round_,
        "n_types": len(table),
        "mean_agreement": float(table["agreement"].mean()),
        "min_agreement": float(table["agreement"].min()),
        "n_empty": int((table["n_cells"] == 0).sum()),
        "epochs": epochs,
        "removed": pd.NA,
        "reason": "",
    }


def prune_types(
    model,
    threshold: float,
    min_types: int,
    epochs_per_round: int,
    max_rounds: int | None,
    batch_size: int | None,
    train_kwargs: dict,
    on_round: Callable[[list, list, int, int], None] | None = None,
    start: tuple[list, list, int, int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the pruning rounds on ``model`` (see :meth:`cplmixvi.CplMixVI.prune`).

    Returns the per-round history and the per-round, per-category agreement (wide, NaN once a
    category is removed), both continuing any earlier pruning of the model. ``on_round(rows,
    agreement, epochs, n_removed)`` is called after each round's fine-tuning (e.g. to write a
    checkpoint); ``start``, such a call's arguments, continues from that point.
    """
    from cplmixvi.tl import category_agreement  # tl reads models; imported late to avoid cycles

    module = model.module
    rows, agreement, epochs, n_removed = _previous(model) if start is None else start
    limit = np.inf if max_rounds is None else max_rounds
    round_ = len(rows)
    while True:
        active = np.flatnonzero(module.type_mask.cpu().numpy())
        probs = model.get_type_probabilities(per_arm=True, batch_size=batch_size)
        table = category_agreement(probs, types=active)
        row = summary_row(round_, table, epochs)
        rows.append(row)
        agreement.append(table["agreement"].reindex(range(module.n_types)).rename(round_))
        logger.info(
            "pruning round %d: K=%d, min agreement %.3f", round_, len(active), row["min_agreement"]
        )
        if row["n_empty"] == 0 and row["min_agreement"] >= threshold:
            row["reason"] = "stop: threshold reached"
            break
        if len(active) <= min_types:
            row["reason"] = "stop: min_types reached"
            break
        if n_removed >= limit:
            row["reason"] = "stop: max_rounds reached"
            break
        removed, reason = least_consistent(table)
        row["removed"], row["reason"] = removed, f"removed {reason}"
        module.remove_types([removed])
        model.train(max_epochs=epochs_per_round, **train_kwargs)
        epochs, n_removed, round_ = epochs_per_round, n_removed + 1, round_ + 1
        if on_round is not None:
            on_round(rows, agreement, epochs, n_removed)
    return history_frames(rows, agreement)


def history_frames(rows: list[dict], agreement: list[pd.Series]) -> tuple[pd.DataFrame, ...]:
    """The pruning history and the per-round agreement table from the rounds' rows."""
    history = pd.DataFrame(rows).astype({"removed": "Int64"})
    return history, pd.DataFrame(agreement).rename_axis(index="round", columns="type")


def _previous(model) -> tuple[list[dict], list[pd.Series], int, int]:
    """Rows of an earlier pruning of the model, so that a second call continues the history.

    The last round of the earlier call was where it stopped; this call measures it again.
    """
    history = getattr(model, "pruning_history_", None)
    if history is None or len(history) == 0:
        return [], [], 0, 0
    rows = history.to_dict("records")
    agreement = [row.rename(idx) for idx, row in model.pruning_agreement_.iterrows()]
    return rows[:-1], agreement[:-1], int(rows[-1]["epochs"]), 0
