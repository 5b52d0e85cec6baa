"""Plots: take AnnData first, return matplotlib Axes."""

from ._pruning import pruning_curve
from ._umap import types_umap

__all__ = ["pruning_curve", "types_umap"]
