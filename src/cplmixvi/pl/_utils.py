"""Figures and the show/return conventions shared by every plot (those of ``scanpy.pl``)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import scanpy as sc
from matplotlib.figure import Figure

#: the ``show`` and ``return_fig`` entries of every plot's docstring (see :func:`show_params`)
SHOW_PARAMS = """show
        Show the figure and return ``None``; ``None`` follows ``scanpy.settings.autoshow``
        (true by default, so notebooks display the plot without further code).
    return_fig
        Return the :class:`~matplotlib.figure.Figure` instead (not shown)."""


def show_params(function):
    """Fill ``%(show_params)s`` in a plot's docstring with the ``show``/``return_fig`` entries."""
    function.__doc__ = function.__doc__.replace("%(show_params)s", SHOW_PARAMS)
    return function


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
