"""A small real demo dataset and a file reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anndata import AnnData
from scipy import sparse

__all__ = ["pbmc68k_reduced", "read"]


def pbmc68k_reduced() -> AnnData:
    """700 human PBMCs with 10 reference cell types, log-normalised, bundled with scanpy.

    A subsample of the 10x Genomics 68k PBMC data set (Zheng et al. 2017) that ships inside
    scanpy, so it loads offline. ``.X`` holds the log-normalised expression of all genes of the
    data set's ``.raw`` (not the scaled values scanpy keeps in its ``.X``), suitable for
    ``gene_likelihood="normal"``.

    Returns
    -------
    AnnData
        ``700 x 765`` cells x genes, float32 CSR ``.X`` of ``log1p`` normalised expression;
        ``obs["bulk_labels"]``: the 10 reference cell types (categorical; 240 down to 8 cells),
        plus scanpy's QC columns (``n_genes``, ``percent_mito``, ``n_counts``, ``phase``, ...);
        ``uns["bulk_labels_colors"]``: scanpy's colours for the reference types.

    Examples
    --------
    >>> adata = cplmixvi.data.pbmc68k_reduced()
    >>> cplmixvi.CplMixVI.setup_anndata(adata)
    >>> model = cplmixvi.CplMixVI(adata, n_types=10, gene_likelihood="normal")
    """
    import scanpy as sc

    source = sc.datasets.pbmc68k_reduced()
    raw = source.raw
    matrix = raw.X if raw is not None else source.X
    matrix = sparse.csr_matrix(matrix, dtype=np.float32)
    var = (raw.var if raw is not None else source.var).copy()
    adata = AnnData(X=matrix, obs=source.obs.copy(), var=var)
    if "bulk_labels_colors" in source.uns:
        adata.uns["bulk_labels_colors"] = list(source.uns["bulk_labels_colors"])
    return adata


def read(path: str | Path):
    """Read an ``.h5ad`` (AnnData) or ``.h5mu`` (MuData) file.

    Parameters
    ----------
    path
        Path to the file; the suffix selects the reader.

    Returns
    -------
    AnnData or MuData
        The object stored in the file, loaded into memory.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the suffix is neither ``.h5ad`` nor ``.h5mu``.

    Examples
    --------
    >>> adata = cplmixvi.data.read("pbmc.h5ad")
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file: {str(path)!r}; expected an .h5ad or .h5mu file.")
    if path.is_dir():
        raise FileNotFoundError(f"{str(path)!r} is a directory; expected an .h5ad or .h5mu file.")
    suffix = path.suffix.lower()
    if suffix == ".h5ad":
        import anndata

        return anndata.read_h5ad(path)
    if suffix == ".h5mu":
        import mudata

        return mudata.read_h5mu(path)
    raise ValueError(
        f"Cannot read {str(path)!r}: unknown file type {suffix or '(no suffix)'!r}; "
        "expected .h5ad (AnnData) or .h5mu (MuData)."
    )
