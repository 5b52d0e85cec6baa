"""Loaders for real datasets.

- :func:`pbmc68k_reduced`: 700 PBMCs with 10 reference cell types, bundled with scanpy (offline).
- :func:`mnist`: MNIST digits (70 000 x 784 pixels in ``[0, 1]``) from ``mnist.npz``.
- :func:`simulate`: counts with planted types and a type-dependent continuous state.
- :func:`read`: any ``.h5ad`` (AnnData) or ``.h5mu`` (MuData) file, with clear errors.
- :func:`tasic2018`: Tasic et al. 2018 Smart-seq VISp + ALM (Allen portal release), the paper's
  preprocessing; :func:`tasic2018_genes` and :func:`tasic2018_taxonomy`: its gene list and
  taxonomy, shipped with the package.
- :func:`yao2021`: Yao et al. 2021 10x cortex + hippocampus (Allen portal release), one region.
"""

from ._demo import pbmc68k_reduced, read
from ._mnist import mnist
from ._simulate import simulate
from ._tasic2018 import tasic2018, tasic2018_genes, tasic2018_taxonomy
from ._yao2021 import yao2021

__all__ = [
    "mnist",
    "pbmc68k_reduced",
    "read",
    "simulate",
    "tasic2018",
    "tasic2018_genes",
    "tasic2018_taxonomy",
    "yao2021",
]
