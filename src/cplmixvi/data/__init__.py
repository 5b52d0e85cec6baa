"""Loaders for real datasets.

- :func:`pbmc68k_reduced`: 700 PBMCs with 10 reference cell types, bundled with scanpy (offline).
- :func:`simulate`: counts with planted types and a type-dependent continuous state.
- :func:`read`: any ``.h5ad`` (AnnData) or ``.h5mu`` (MuData) file, with clear errors.
"""

from ._demo import pbmc68k_reduced, read
from ._simulate import simulate

__all__ = ["pbmc68k_reduced", "read", "simulate"]
