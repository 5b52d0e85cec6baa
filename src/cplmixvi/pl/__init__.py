"""Plots: take AnnData (or a result table) first and only draw (what they need is computed by
:mod:`cplmixvi.tl`); like ``scanpy.pl``, they show the figure by default (``show=None``:
``scanpy.settings.autoshow``), return the Axes with ``show=False`` and the figure with
``return_fig=True``."""

from ._confusion import confusion
from ._pruning import pruning_curve
from ._states import state_distributions
from ._traversal import traversal_heatmap
from ._umap import types_umap

__all__ = ["confusion", "pruning_curve", "state_distributions", "traversal_heatmap", "types_umap"]
