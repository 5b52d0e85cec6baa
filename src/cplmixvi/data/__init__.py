"""Loaders for real datasets.

- :func:`pbmc68k_reduced`: 700 PBMCs with 10 reference cell types, bundled with scanpy (offline).
- :func:`read`: any ``.h5ad`` (AnnData) or ``.h5mu`` (MuData) file, with clear errors.
"""

from ._demo import pbmc68k_reduced, read

__all__ = ["pbmc68k_reduced", "read"]
