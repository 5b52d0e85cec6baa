"""Pruning the categories of a trained model, in rounds, and the options of those rounds."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from cplmixvi.metrics import category_agreement

logger = logging.getLogger(__name__)


#: a default fit of ``n_types="auto"`` starts from ``n_cells // CELLS_PER_TYPE`` categories,
#: within ``AUTO_TYPES`` (``auto_upper_bound``)
CELLS_PER_TYPE = 100
AUTO_TYPES = (30, 100)


def auto_upper_bound(n_cells: int) -> int:
    """The categories a ``n_types="auto"`` model starts with: ``n_cells // 100`` in [30, 100].

    An upper bound, not a guess: pruning removes the categories the arms do not find, and a
    type needs cells of its own (at most ``n_cells / 2`` categories).
    """
    low, high = AUTO_TYPES
    return int(min(max(n_cells // CELLS_PER_TYPE, low), high, max(n_cells // 2, 2)))


#: the ``train`` options that pruning rounds started by ``train(prune=...)`` train with too
ROUND_OPTIONS = (
    "lr",
    "batch_size",
    "train_size",
    "validation_size",
    "accelerator",
    "devices",
    "strategy",
    "compile",
    "plan_kwargs",
    "datasplitter_kwargs",
)


def round_options(call: dict) -> dict:
    """The options of a ``train`` call (see :func:`call_arguments`) for its pruning rounds.

    The trainer's options (``enable_progress_bar``, callbacks, ...) and the device, batch and
    optimiser settings reach every round; the epochs, temperatures and checkpoints are the
    pruning's own.
    """
    return {key: call[key] for key in ROUND_OPTIONS if key in call} | call["trainer_kwargs"]


def weak_types(table: pd.DataFrame, threshold: float, min_cells: int) -> list[int]:
    """The clearly empty or inconsistent categories of an agreement table, worst first.

    A category is empty when fewer than ``min_cells`` cells have it as their fused label, and
    inconsistent when its agreement between arms is below ``threshold``. Empty ones come first,
    each group ordered by agreement, number of cells and mean fused probability.
    """
    empty = table["n_cells"] < min_cells
    weak = table.assign(filled=~empty)[empty | (table["agreement"] < threshold)]
    order = weak.sort_values(["filled", "agreement", "n_cells", "mean_prob"], kind="stable")
    return [int(i) for i in order.index]


def summary_row(round_: int, table: pd.DataFrame, epochs: int, min_cells: int) -> dict:
    """One row of the pruning history for the agreement table of a round."""
    return {
        "round": round_,
        "n_types": len(table),
        "mean_agreement": float(table["agreement"].mean()),
        "min_agreement": float(table["agreement"].min()),
        "n_empty": int((table["n_cells"] < min_cells).sum()),
        "epochs": epochs,
        "removed": "",
        "reason": "",
    }


def prune_types(
    model,
    threshold: float,
    min_cells: int,
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
    agreement, epochs, n_rounds)`` is called after each round and its fine-tuning (e.g. to write a
    checkpoint); ``start``, such a call's arguments, continues from that point.
    """
    module = model.module
    rows, agreement, epochs, n_rounds = _previous(model) if start is None else start
    limit = np.inf if max_rounds is None else max_rounds
    round_ = len(rows)
    while True:
        active = np.flatnonzero(module.type_mask.cpu().numpy())
        probs = model.get_type_probabilities(per_arm=True, batch_size=batch_size)
        table = category_agreement(probs, types=active)
        row = summary_row(round_, table, epochs, min_cells)
        rows.append(row)
        agreement.append(table["agreement"].reindex(range(module.n_types)).rename(round_))
        logger.info(
            "pruning round %d: K=%d, min agreement %.3f", round_, len(active), row["min_agreement"]
        )
        weak = weak_types(table, threshold, min_cells)
        if not weak:
            row["reason"] = "stop: threshold reached"
            break
        if len(active) <= min_types:
            row["reason"] = "stop: min_types reached"
            break
        if n_rounds >= limit:
            row["reason"] = "stop: max_rounds reached"
            break
        removed = weak[: len(active) - min_types]
        n_empty = int((table.loc[removed, "n_cells"] < min_cells).sum())
        row["removed"] = ",".join(map(str, removed))
        row["reason"] = f"removed {n_empty} empty, {len(removed) - n_empty} inconsistent"
        module.remove_types(removed)
        if epochs_per_round:
            model.train(max_epochs=epochs_per_round, **train_kwargs)
        epochs, n_rounds, round_ = epochs_per_round, n_rounds + 1, round_ + 1
        if on_round is not None:
            on_round(rows, agreement, epochs, n_rounds)
    return history_frames(rows, agreement)


def history_frames(rows: list[dict], agreement: list[pd.Series]) -> tuple[pd.DataFrame, ...]:
    """The pruning history and the per-round agreement table from the rounds' rows."""
    history = pd.DataFrame(rows).astype({"removed": str})
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
