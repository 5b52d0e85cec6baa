"""Plots: take AnnData first, return matplotlib Axes."""

from ._umap import types_umap

__all__ = ["types_umap"]
