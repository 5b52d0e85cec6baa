"""Yao et al. 2021 (10x, mouse whole cortex and hippocampus) from the Allen Brain Map portal."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

__all__ = ["yao2021"]

MATRIX = "expression_matrix.hdf5"
METADATA = "metadata.csv"
#: Files of the portal release "Mouse Whole Cortex and Hippocampus 10x" (Yao et al. 2021).
URLS = {
    MATRIX: "https://idk-etl-prod-download-bucket.s3.amazonaws.com/aibs_mouse_ctx-hpf_10x/"
    "expression_matrix.hdf5",
    METADATA: "https://idk-etl-prod-download-bucket.s3.amazonaws.com/aibs_mouse_ctx-hpf_10x/"
    "metadata.csv",
}
#: SHA-256 of the files; ``None`` until a download on a connected machine records them.
SHA256: dict[str, str | None] = {MATRIX: None, METADATA: None}
NEURON_CLASSES = ("GABAergic", "Glutamatergic")
#: Metadata items given as ``<item>_label``, ``<item>_order`` and ``<item>_color`` columns.
_ITEMS = ("class", "subclass", "cluster", "neighborhood", "region")


def yao2021(
    path: str | Path,
    region: str | Sequence[str] | None = "MOp",
    neurons_only: bool = True,
    *,
    genes: Sequence[str] | None = None,
    download: bool = False,
    chunk_cells: int = 4096,
) -> AnnData:
    """Yao et al. 2021 10x data of one cortical region, raw UMI counts and published labels.

    Reads the Allen Brain Map portal release "Mouse Whole Cortex and Hippocampus 10x" from
    ``path``, which holds its two files:

    - ``expression_matrix.hdf5``: group ``/data`` with ``counts`` (UMI counts, stored
      genes x cells, about 31 000 x 1.17 million), ``gene`` (gene symbols), ``samples`` (cell
      ids) and ``shape``;
    - ``metadata.csv``: one row per cell, ``sample_name`` (and ``exp_component_name``) plus,
      for each item (``class``, ``subclass``, ``cluster``, ``region``, ...), the columns
      ``<item>_label``, ``<item>_order`` and ``<item>_color``.

    Only the metadata is read whole. The cells are chosen there (``region_label`` in
    ``region``, ``class_label`` GABAergic or Glutamatergic) and only their columns of the count
    matrix are read from the HDF5 file, ``chunk_cells`` at a time, each block stored sparse: a
    region of the 1.1-million-cell release loads in the memory of its own cells. Cells of the
    matrix without a metadata row (about a hundred in the release) are never selected. Cells are
    matched by ``sample_name`` or, where the matrix names cells differently,
    ``exp_component_name``, whichever matches more of them.

    What was verified: the file names, their download addresses and the layouts above (HDF5
    datasets, their genes x cells orientation as h5py reads it, the metadata columns) come
    from the portal's public readme of the release and from public code that reads it (h5py,
    rhdf5); the package's tests write files in that layout. The label values used for the
    defaults (``region_label`` ``"MOp"``, ``class_label`` ``"GABAergic"`` / ``"Glutamatergic"``)
    are the release's as used by that code. Checksums are not on record (``SHA256`` is
    ``None``). The full release (about 30 GB of HDF5) was not available where this package is
    developed, so the loader has not been run on it.

    Parameters
    ----------
    path
        Folder with ``expression_matrix.hdf5`` and ``metadata.csv``; the download target.
    region
        ``region_label`` value(s) to keep (``"MOp"`` by default); ``None`` keeps every region.
        The release's labels can be listed with ``pd.read_csv(path/"metadata.csv",
        usecols=["region_label"]).region_label.unique()``.
    neurons_only
        Keep only GABAergic and Glutamatergic cells (``class_label``).
    genes
        Gene symbols to keep, in this order; ``None`` keeps all.
    download
        Download missing files from the portal into ``path`` first (tens of GB).
    chunk_cells
        Cells read from the HDF5 file per block.

    Returns
    -------
    AnnData
        Cells x genes, in the matrix's cell order. ``.X`` and ``layers["counts"]``: UMI counts
        (float32 CSR); ``obs``: the cell's metadata row (indexed by the matrix's cell id), with
        ``cluster_label``, ``subclass_label``, ``class_label`` and ``region_label`` categorical in
        the release's display order (``<item>_order``); ``uns["<item>_label_colors"]``: the
        release's colours of those categories (scanpy's convention); ``uns["yao2021"]``: the
        filters applied.

    Raises
    ------
    FileNotFoundError
        If a file is missing (the message names the download option).
    ValueError
        If no cell matches the filters (the message lists the available regions) or the files
        do not fit together.

    Examples
    --------
    >>> adata = cplmixvi.data.yao2021("data/yao2021", region="MOp")
    >>> cplmixvi.CplMixVI.setup_anndata(adata, layer="counts")
    >>> model = cplmixvi.CplMixVI(adata, n_types=adata.obs["cluster_label"].nunique())
    """
    folder = Path(path)
    if download:
        from ._download import download as fetch

        for name, url in URLS.items():
            fetch(url, folder / name, SHA256[name])
    for name in (MATRIX, METADATA):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"No {name} in {str(folder)!r}: put the portal's release files there, or pass "
                f"download=True to fetch them from {URLS[name]}."
            )
    metadata = pd.read_csv(folder / METADATA, low_memory=False)
    selected = _select_cells(metadata, region, neurons_only)
    import h5py

    with h5py.File(folder / MATRIX, "r") as handle:
        data = _data_group(handle)
        samples = _strings(data["samples"][:])
        gene_names = _strings(data["gene"][:])
        column, position = _match_cells(samples, selected)
        gene_rows = _gene_rows(gene_names, genes)
        counts = _read_columns(data["counts"], position, gene_rows, chunk_cells)
    obs = selected.set_index(column, drop=False).loc[samples[position]]
    obs.index = pd.Index(samples[position].astype(str), name=None)
    var = pd.DataFrame(index=pd.Index(gene_names[gene_rows].astype(str), name=None))
    adata = AnnData(X=counts, obs=obs, var=var)
    adata.layers["counts"] = adata.X.copy()
    _order_labels(adata)
    regions = None if region is None else [region] if isinstance(region, str) else list(region)
    adata.uns["yao2021"] = {"regions": regions or "all", "neurons_only": bool(neurons_only)}
    return adata


def _select_cells(
    metadata: pd.DataFrame, region: str | Sequence[str] | None, neurons_only: bool
) -> pd.DataFrame:
    required = ["region_label", "class_label"]
    missing = [column for column in required if column not in metadata]
    if missing or "sample_name" not in metadata:
        raise ValueError(
            f"{METADATA} lacks the columns {missing or ['sample_name']} (it has "
            f"{list(metadata.columns)[:12]}...); is it the portal's 10x release?"
        )
    keep = np.ones(len(metadata), dtype=bool)
    if region is not None:
        regions = [region] if isinstance(region, str) else list(region)
        keep &= metadata["region_label"].isin(regions).to_numpy()
    if neurons_only:
        keep &= metadata["class_label"].isin(NEURON_CLASSES).to_numpy()
    if not keep.any():
        raise ValueError(
            f"No cell of {METADATA} has region_label in {region!r}"
            + (" and a neuronal class_label" if neurons_only else "")
            + f"; the regions are {sorted(metadata['region_label'].dropna().unique())}."
        )
    return metadata.loc[keep]


def _data_group(handle):
    if "data" not in handle or not all(key in handle["data"] for key in ("counts", "gene")):
        raise ValueError(
            f"{MATRIX} has no /data/counts and /data/gene datasets (top level: "
            f"{list(handle.keys())}); is it the portal's 10x release?"
        )
    return handle["data"]


def _strings(values: np.ndarray) -> np.ndarray:
    return np.array(
        [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values], dtype=object
    )


def _match_cells(samples: np.ndarray, selected: pd.DataFrame) -> tuple[str, np.ndarray]:
    """Metadata column naming the matrix's cells, and the sorted matrix columns selected."""
    best, best_hits = "sample_name", np.zeros(len(samples), dtype=bool)
    for column in ("sample_name", "exp_component_name"):
        if column in selected:
            hits = pd.Index(selected[column].astype(str)).get_indexer(samples) >= 0
            if hits.sum() > best_hits.sum():
                best, best_hits = column, hits
    if not best_hits.any():
        raise ValueError(
            f"None of the selected cells of {METADATA} is a sample of {MATRIX} (matched by "
            "sample_name and exp_component_name): the files do not belong together."
        )
    return best, np.flatnonzero(best_hits)


def _gene_rows(gene_names: np.ndarray, genes: Sequence[str] | None) -> np.ndarray:
    if genes is None:
        return np.arange(len(gene_names))
    lookup = pd.Series(np.arange(len(gene_names)), index=gene_names.astype(str))
    lookup = lookup[~lookup.index.duplicated(keep="first")]
    rows = lookup.reindex([str(gene) for gene in genes])
    if rows.isna().any():
        missing = rows.index[rows.isna()].tolist()
        raise ValueError(f"{len(missing)} requested genes are not in {MATRIX}: {missing[:5]}.")
    return rows.to_numpy(dtype=np.int64)


def _read_columns(
    counts, position: np.ndarray, gene_rows: np.ndarray, chunk_cells: int
) -> sparse.csr_matrix:
    """Read the given (sorted) cell columns of the genes x cells dataset, cells x genes CSR."""
    n_genes = counts.shape[0]
    if n_genes < len(gene_rows) or counts.shape[1] <= position.max():
        raise ValueError(f"/data/counts has shape {counts.shape}, too small for its names.")
    blocks = []
    for start in range(0, len(position), chunk_cells):
        columns = position[start : start + chunk_cells]
        block = counts[:, columns]  # h5py reads increasing column indices
        block = np.asarray(block)[gene_rows].T.astype(np.float32)
        blocks.append(sparse.csr_matrix(block))
    return sparse.vstack(blocks, format="csr")


def _order_labels(adata: AnnData) -> None:
    """Categorical labels in the release's display order, with its colours in uns."""
    obs = adata.obs
    for item in _ITEMS:
        label = f"{item}_label"
        if label not in obs:
            continue
        values = obs[label].astype(str)
        order_col, color_col = f"{item}_order", f"{item}_color"
        if order_col in obs:
            table = (
                pd.DataFrame({"label": values, "order": obs[order_col]})
                .drop_duplicates("label")
                .sort_values(["order", "label"])
            )
            categories = table["label"].tolist()
        else:
            categories = sorted(values.unique())
        obs[label] = pd.Categorical(values, categories=categories)
        if color_col in obs:
            colours = pd.Series(obs[color_col].astype(str).to_numpy(), index=values.to_numpy())
            colours = colours[~colours.index.duplicated(keep="first")]
            adata.uns[f"{label}_colors"] = [colours[c] for c in categories]
