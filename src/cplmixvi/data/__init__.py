"""Loaders for real datasets.

- :func:`pbmc68k_reduced`: 700 PBMCs with 10 reference cell types, bundled with scanpy (offline).
- :func:`mnist`: MNIST digits (70 000 x 784 pixels in ``[0, 1]``) from ``mnist.npz``.
- :func:`read`: any ``.h5ad`` (AnnData) or ``.h5mu`` (MuData) file, with clear errors.
"""

from ._demo import pbmc68k_reduced, read
from ._mnist import mnist

__all__ = ["mnist", "pbmc68k_reduced", "read"]
