"""Plots: take AnnData (or a result table) first, return matplotlib Axes."""

from ._confusion import confusion
from ._pruning import pruning_curve
from ._states import state_distributions
from ._traversal import traversal_heatmap
from ._umap import types_umap

__all__ = ["confusion", "pruning_curve", "state_distributions", "traversal_heatmap", "types_umap"]
