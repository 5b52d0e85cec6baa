"""The consensus curve of category pruning: agreement between arms against the number of types."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cplmixvi.pl._utils import finish, new_figure, show_params
from cplmixvi.tl import pruning_history


@show_params
def pruning_curve(
    source,
    threshold: float | None = 0.5,
    selected: int | None = None,
    agreement=None,
    ax: Axes | None = None,
    key_prefix: str = "cplmixvi",
    *,
    show: bool | None = None,
    return_fig: bool = False,
) -> Axes | Figure | None:
    """Mean and minimum per-category agreement between arms at each K of a pruning run.

    Each pruning round is one K; a category below the threshold is removed in that round, so
    the least consistent category's curve ends above it at the K where pruning stopped
    (:func:`cplmixvi.tl.select_n_types`).

    Parameters
    ----------
    source
        A pruned :class:`~cplmixvi.CplMixVI`, an AnnData with its results or its pruning
        history (see :func:`cplmixvi.tl.pruning_history`).
    threshold
        Draw the agreement threshold as a horizontal line (``None`` for none); 0.5 is
        :meth:`~cplmixvi.CplMixVI.prune`'s default.
    selected
        Mark a chosen K (e.g. :func:`cplmixvi.tl.select_n_types`) with a vertical line.
    agreement
        Per-round, per-category agreement (``model.pruning_agreement_``) to draw as points;
        taken from ``source`` when it is a model.
    ax
        Axes to draw on; a new figure when ``None``.
    key_prefix
        Prefix the results were written with (AnnData only).
    %(show_params)s

    Returns
    -------
    The Axes (with ``show=False``), the figure (``return_fig=True``) or ``None`` (shown).
    K decreases from left to right, as pruning proceeds.
    """
    history = pruning_history(source, key_prefix)
    if agreement is None:
        agreement = getattr(source, "pruning_agreement_", None)
    if ax is None:
        ax = new_figure((6, 4), layout=None).subplots()
    k = history["n_types"].to_numpy()
    if agreement is not None:
        values = agreement.to_numpy(dtype=float)
        rows = np.repeat(k[: len(values)], values.shape[1]).astype(float)
        keep = np.isfinite(values.ravel())
        ax.scatter(
            rows[keep],
            values.ravel()[keep],
            s=6,
            color="0.6",
            alpha=0.5,
            label="one category",
            zorder=1,
        )
    ax.plot(k, history["mean_agreement"], "o-", ms=3, label="mean over categories", zorder=3)
    ax.plot(k, history["min_agreement"], "s-", ms=3, label="least consistent category", zorder=3)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls=":", lw=1, label=f"threshold {threshold:g}")
    if selected is not None:
        ax.axvline(selected, color="C3", ls="--", lw=1, label=f"selected K = {selected}")
    ax.set_xlim(k.max() + 0.5, k.min() - 0.5)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("number of types K (pruning proceeds to the right)")
    ax.set_ylabel("agreement between arms")
    ax.legend(fontsize="small", loc="upper left", framealpha=0.9)  # curves rise to the right
    return finish(ax.figure, ax, show, return_fig)
