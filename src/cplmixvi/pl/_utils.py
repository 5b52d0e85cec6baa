"""Figures and the show/return conventions shared by every plot (those of ``scanpy.pl``)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import scanpy as sc
from matplotlib.figure import Figure


def new_figure(figsize: tuple[float, float], layout: str | None = "constrained") -> Figure:
    """A pyplot figure, so that notebooks display it and ``plt.show()`` shows it."""
    return plt.figure(figsize=figsize, layout=layout)


def finish(fig: Figure, axes: Any, show: bool | None, return_fig: bool) -> Any:
    """Return the figure, or show it, or return the Axes, as ``scanpy.pl`` functions do.

    ``return_fig=True`` returns ``fig`` (not shown). Otherwise ``show`` (``None``:
    ``scanpy.settings.autoshow``, true by default) shows the figure and returns ``None``; with
    ``show=False`` the Axes are returned to be drawn on further.
    """
    if return_fig:
        return fig
    if sc.settings.autoshow if show is None else show:
        plt.show()
        return None
    return axes
