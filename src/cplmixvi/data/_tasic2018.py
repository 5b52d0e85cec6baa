"""Tasic et al. 2018 (Smart-seq, mouse VISp + ALM) from the Allen Brain Map portal release."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

__all__ = ["tasic2018", "tasic2018_genes", "tasic2018_taxonomy"]

RELEASE = "2018-06-14"
REGIONS = ("VISp", "ALM")
#: Portal downloads (``well_known_file_download`` ids), one zip archive per region.
URLS = {
    "VISp": "http://celltypes.brain-map.org/api/v2/well_known_file_download/694413985",
    "ALM": "http://celltypes.brain-map.org/api/v2/well_known_file_download/694413179",
}
#: SHA-256 of the archives; ``None`` until a download on a connected machine records them.
SHA256: dict[str, str | None] = {"VISp": None, "ALM": None}
NEURON_CLASSES = ("GABAergic", "Glutamatergic")
DROPPED_CLUSTERS = ("Low Quality", "CR Lhx5", "Meis2 Adamts19")
#: Region-specific names of two types that the paper (and the taxonomy) unify.
RENAMED_CLUSTERS = {
    "L6b VISp Col8a1 Rprm": "L6b Col8a1 Rprm",
    "L6 CT ALM Nxph2 Sla": "L6 CT Nxph2 Sla",
}
_ASSETS = files("cplmixvi.data") / "_assets"


def archive_name(region: str) -> str:
    """File name of a region's zip archive on the portal."""
    return f"mouse_{region}_gene_expression_matrices_{RELEASE}.zip"


def member_name(region: str, what: str) -> str:
    """File name of one CSV of a region (``exon-matrix``, ``samples-columns``, ``genes-rows``)."""
    return f"mouse_{region}_{RELEASE}_{what}.csv"


def tasic2018_genes() -> list[str]:
    """The 5 032 genes of the paper's Tasic 2018 analysis, in the paper's order.

    Shipped with the package (``genes_SS_ALM-VISp.csv`` of the reference code).

    Returns
    -------
    list of str
        Gene symbols.
    """
    with (_ASSETS / "genes_SS_ALM-VISp.csv").open("r") as handle:
        return pd.read_csv(handle)["genes"].astype(str).tolist()


def tasic2018_taxonomy() -> pd.DataFrame:
    """The published taxonomy (dendrogram) of the Tasic 2018 VISp + ALM types.

    One row per node of ``tree_Mouse_ALM-VISp_2018.csv``, shipped with the package: ``label``,
    ``parent``, ``leaf`` (``True`` for the 133 types, neuronal and not), ``col`` (the type's
    colour), ``x`` (left-to-right position: sort leaves by it for the paper's order),
    ``height``, ``members``.

    Returns
    -------
    pandas.DataFrame
        The tree, indexed by node label.

    Examples
    --------
    >>> tree = cplmixvi.data.tasic2018_taxonomy()
    >>> order = tree[tree["leaf"]].sort_values("x").index.tolist()
    """
    with (_ASSETS / "tree_Mouse_ALM-VISp_2018.csv").open("r") as handle:
        tree = pd.read_csv(handle)
    tree["leaf"] = tree["leaf"].eq(True)  # TRUE for leaves, NA for inner nodes
    return tree.set_index("label", drop=False)


def tasic2018(
    path: str | Path,
    download: bool = False,
    *,
    genes: Sequence[str] | None | str = "paper",
    neurons_only: bool = True,
    drop_clusters: Sequence[str] = DROPPED_CLUSTERS,
    regions: Sequence[str] = REGIONS,
    chunksize: int = 2000,
) -> AnnData:
    """Tasic et al. 2018 (Smart-seq, mouse VISp and ALM), preprocessed as in the cpl-mixVAE paper.

    Reads the Allen Brain Map portal release ("Cell Diversity in the Mouse Cortex - 2018",
    release 2018-06-14) from ``path``: for each region either the zip archive
    ``mouse_<REGION>_gene_expression_matrices_2018-06-14.zip`` or the CSVs extracted from it
    (anywhere below ``path``):

    - ``mouse_<REGION>_2018-06-14_exon-matrix.csv``: exon read counts, genes as rows (first
      column the gene's Entrez id, then one column per sample, named by ``sample_name``);
    - ``mouse_<REGION>_2018-06-14_samples-columns.csv``: one row per sample (``sample_name``,
      ``class``, ``subclass``, ``cluster``, ``brain_region``, ``seq_batch``, ...);
    - ``mouse_<REGION>_2018-06-14_genes-rows.csv``: one row per gene in the matrix's order
      (``gene_symbol``, ``gene_entrez_id``, ...).

    The exon matrix (about 45 000 genes x 15 000 samples per region) is read in chunks of
    ``chunksize`` genes, only the kept samples' columns are parsed, and each chunk is stored
    sparse, so the dense matrix is never held in memory.

    With the defaults the result is the paper's data set: neurons (``class`` GABAergic or
    Glutamatergic) without the clusters of ``DROPPED_CLUSTERS``, the two region-specific names
    of ``RENAMED_CLUSTERS`` unified and the 5 032 genes of :func:`tasic2018_genes`: 22 365
    cells and 115 types according to the paper.

    Verified: the download addresses, file names and CSV layouts agree across independent
    public readers of the release (Kobak & Berens' ``rna-seq-tsne``, a MMIDAS data-preparation
    script); the filters and renames are that script's. Not verified: the real archives were
    never read (no download where this was written) and their checksums are not on record
    (``SHA256`` is ``None``): a download is checked for completeness and its SHA-256 logged.

    Parameters
    ----------
    path
        Folder with the two archives or their extracted CSVs; the download target.
    download
        Download missing archives from the portal (about 300 MB each) into ``path`` first.
    genes
        ``"paper"``: the paper's 5 032 genes in its order (an error names any that are
        missing); ``None``: every gene of the release in the matrix's order; or a list of
        gene symbols.
    neurons_only
        Keep only GABAergic and Glutamatergic cells.
    drop_clusters
        Clusters to remove (the paper's three by default; ``()`` keeps all).
    regions
        Regions to read, in this order (``("VISp", "ALM")``).
    chunksize
        Genes per chunk when parsing an exon matrix.

    Returns
    -------
    AnnData
        Cells x genes. ``.X`` and ``layers["counts"]``: exon read counts (float32 CSR);
        ``obs``: every column of the samples table (indexed by ``sample_name``) plus
        ``region``, with ``cluster`` a categorical in taxonomy order; ``var``: ``gene_symbol``
        and ``gene_entrez_id``; ``uns["cluster_colors"]``: the taxonomy's colour of each cluster
        (scanpy's convention, so ``sc.pl.umap(adata, color="cluster")`` uses the paper's
        colours); ``uns["tasic2018"]``: the taxonomy order of the clusters, the regions and the
        filters applied.

    Raises
    ------
    FileNotFoundError
        If a region's archive or CSV is missing (the message names the file and the download
        option).
    ValueError
        If the files disagree (sample names, gene rows) or requested genes are missing.

    Examples
    --------
    >>> adata = cplmixvi.data.tasic2018("data/tasic2018")        # the two zip archives
    >>> adata.shape                                             # (22365, 5032) per the paper
    >>> cplmixvi.CplMixVI.setup_anndata(adata, layer="counts")
    """
    folder = Path(path)
    if download:
        from ._download import download as fetch

        for region in regions:
            if _find(folder, region) is None:
                fetch(URLS[region], folder / archive_name(region), SHA256.get(region))
    parts = [
        _read_region(folder, region, neurons_only, tuple(drop_clusters), chunksize)
        for region in regions
    ]
    var = parts[0][2]
    for region, part in zip(regions[1:], parts[1:], strict=True):
        if not part[2]["gene_symbol"].equals(var["gene_symbol"]):
            raise ValueError(
                f"The genes of {region} differ from those of {regions[0]}: the archives must "
                f"come from the same release ({RELEASE})."
            )
    counts = sparse.vstack([part[0] for part in parts], format="csr")
    obs = pd.concat([part[1] for part in parts])
    counts, var = _select_genes(counts, var, genes)
    return _assemble(counts, obs, var, regions, neurons_only, drop_clusters)


# ----- reading ---------------------------------------------------------------------------------
def _find(folder: Path, region: str) -> Path | None:
    """The region's archive, or the folder holding its extracted exon matrix, or None."""
    archive = folder / archive_name(region)
    if archive.is_file():
        return archive
    if folder.is_dir():
        for hit in sorted(folder.rglob(member_name(region, "exon-matrix"))):
            return hit.parent
        for hit in sorted(folder.rglob(archive_name(region))):
            return hit
    return None


@contextmanager
def _opener(source: Path, region: str) -> Iterator:
    """Yield ``open(what)`` giving a text stream of one of the region's CSVs."""
    if source.suffix == ".zip":
        with zipfile.ZipFile(source) as archive:
            names = {Path(name).name: name for name in archive.namelist()}

            def open_zip(what: str):
                name = member_name(region, what)
                if name not in names:
                    raise FileNotFoundError(f"{name} is not in {source}.")
                return io.TextIOWrapper(
                    archive.open(names[name]), encoding="utf-8", errors="replace"
                )

            yield open_zip
    else:

        def open_file(what: str):
            file = source / member_name(region, what)
            if not file.is_file():
                raise FileNotFoundError(f"No such file: {str(file)!r}.")
            return open(file, encoding="utf-8", errors="replace")

        yield open_file


def _read_region(
    folder: Path,
    region: str,
    neurons_only: bool,
    drop_clusters: tuple[str, ...],
    chunksize: int,
) -> tuple[sparse.csr_matrix, pd.DataFrame, pd.DataFrame]:
    """Counts (cells x all genes), obs and var of one region, cells filtered."""
    if region not in URLS:
        raise ValueError(f"Unknown region {region!r}: use any of {list(URLS)}.")
    source = _find(folder, region)
    if source is None:
        raise FileNotFoundError(
            f"Neither {archive_name(region)} nor {member_name(region, 'exon-matrix')} was found "
            f"in {str(folder)!r}. Put the portal's archive there, or pass download=True to "
            f"fetch it from {URLS[region]}."
        )
    with _opener(source, region) as open_csv:
        with open_csv("samples-columns") as handle:
            samples = pd.read_csv(handle, dtype={"sample_name": str}, low_memory=False)
        with open_csv("genes-rows") as handle:
            var = pd.read_csv(handle, low_memory=False)
        keep = _keep_samples(samples, neurons_only, drop_clusters, region)
        counts = _read_matrix(open_csv, samples, keep, var, region, chunksize)
    obs = samples.loc[keep].copy()
    obs["region"] = region
    return counts, obs, var


def _keep_samples(
    samples: pd.DataFrame, neurons_only: bool, drop_clusters: tuple[str, ...], region: str
) -> np.ndarray:
    for column in ("sample_name", "class", "cluster"):
        if column not in samples:
            raise ValueError(
                f"{member_name(region, 'samples-columns')} has no {column!r} column "
                f"(columns: {list(samples.columns)[:12]}...); is it the portal's release?"
            )
    keep = ~samples["cluster"].isin(drop_clusters).to_numpy()
    if neurons_only:
        keep &= samples["class"].isin(NEURON_CLASSES).to_numpy()
    return keep


def _read_matrix(
    open_csv,
    samples: pd.DataFrame,
    keep: np.ndarray,
    var: pd.DataFrame,
    region: str,
    chunksize: int,
) -> sparse.csr_matrix:
    """Parse the kept samples' columns of a genes x samples CSV in chunks; cells x genes CSR."""
    with open_csv("exon-matrix") as handle:
        header = pd.read_csv(handle, nrows=0).columns
    names = pd.Index(header[1:].astype(str))
    wanted = samples.loc[keep, "sample_name"].to_numpy()
    position = names.get_indexer(wanted)
    if (position < 0).any():
        missing = wanted[position < 0]
        raise ValueError(
            f"{len(missing)} samples of {member_name(region, 'samples-columns')} are not columns "
            f"of {member_name(region, 'exon-matrix')} (e.g. {missing[:3].tolist()}): the files "
            "do not belong together."
        )
    usecols = [0, *(position + 1).tolist()]
    blocks, gene_ids = [], []
    with open_csv("exon-matrix") as handle:
        reader = pd.read_csv(handle, usecols=usecols, chunksize=chunksize, index_col=0)
        for chunk in reader:
            gene_ids.append(chunk.index.to_numpy())
            # usecols keeps the file's column order: put the columns in the samples' order
            values = chunk.iloc[:, np.argsort(np.argsort(position))].to_numpy(dtype=np.float32)
            blocks.append(sparse.csr_matrix(values))
    gene_ids = np.concatenate(gene_ids) if gene_ids else np.array([])
    _check_gene_rows(gene_ids, var, region)
    if not blocks:
        return sparse.csr_matrix((int(keep.sum()), len(var)), dtype=np.float32)
    return sparse.vstack(blocks, format="csr").T.tocsr()


def _check_gene_rows(gene_ids: np.ndarray, var: pd.DataFrame, region: str) -> None:
    if len(gene_ids) != len(var):
        raise ValueError(
            f"{member_name(region, 'exon-matrix')} has {len(gene_ids)} gene rows but "
            f"{member_name(region, 'genes-rows')} lists {len(var)}: the files do not belong "
            "together."
        )
    if "gene_symbol" not in var:
        raise ValueError(f"{member_name(region, 'genes-rows')} has no 'gene_symbol' column.")
    # the first column holds the Entrez id (public readers map it through gene_entrez_id);
    # accept any identifier column of the genes table that matches it row by row
    first = gene_ids.astype(str)
    columns = [c for c in ("gene_entrez_id", "gene_id", "gene_symbol") if c in var]
    if not any(np.array_equal(first, var[c].astype(str).to_numpy()) for c in columns):
        raise ValueError(
            f"The first column of {member_name(region, 'exon-matrix')} matches none of "
            f"{columns} of {member_name(region, 'genes-rows')} row by row: the files do not "
            "belong together."
        )


# ----- assembling ------------------------------------------------------------------------------
def _select_genes(
    counts: sparse.csr_matrix, var: pd.DataFrame, genes: Sequence[str] | None | str
) -> tuple[sparse.csr_matrix, pd.DataFrame]:
    var = var.copy()
    var["gene_symbol"] = var["gene_symbol"].astype(str)
    if genes is None:
        return counts, var
    if isinstance(genes, str):
        if genes != "paper":
            raise ValueError(f"genes={genes!r}: use 'paper', None or a list of gene symbols.")
        genes = tasic2018_genes()
    genes = [str(gene) for gene in genes]
    lookup = pd.Series(np.arange(len(var)), index=var["gene_symbol"])
    lookup = lookup[~lookup.index.duplicated(keep="first")]
    position = lookup.reindex(genes)
    if position.isna().any():
        missing = position.index[position.isna()].tolist()
        raise ValueError(
            f"{len(missing)} of the {len(genes)} requested genes are not in the release "
            f"(e.g. {missing[:5]}); pass genes=None for all genes."
        )
    position = position.to_numpy(dtype=np.int64)
    return counts[:, position], var.iloc[position].reset_index(drop=True)


def _assemble(
    counts: sparse.csr_matrix,
    obs: pd.DataFrame,
    var: pd.DataFrame,
    regions: Sequence[str],
    neurons_only: bool,
    drop_clusters: Sequence[str],
) -> AnnData:
    obs = obs.copy()
    obs["cluster"] = obs["cluster"].replace(RENAMED_CLUSTERS)
    obs.index = pd.Index(obs.pop("sample_name").astype(str), name=None)
    if not obs.index.is_unique:
        raise ValueError("Sample names repeat across the regions' files.")
    tree = tasic2018_taxonomy()
    leaves = tree[tree["leaf"]].sort_values("x")
    present = set(obs["cluster"])
    order = [label for label in leaves["label"] if label in present]
    order += sorted(present - set(order))  # clusters the taxonomy lacks go last
    obs["cluster"] = pd.Categorical(obs["cluster"], categories=order)
    for column in ("class", "subclass", "region", "brain_region", "seq_batch"):
        if column in obs:
            obs[column] = obs[column].astype(str).astype("category")
    colours = leaves.set_index("label")["col"]
    var.index = pd.Index(var["gene_symbol"].to_numpy(), name=None)
    var.index = var.index.astype(str)
    keep_var = [c for c in ("gene_symbol", "gene_entrez_id") if c in var]
    adata = AnnData(X=counts.astype(np.float32), obs=obs, var=var[keep_var].copy())
    adata.var_names_make_unique()
    adata.layers["counts"] = adata.X.copy()
    adata.uns["cluster_colors"] = [str(colours.get(label, "#808080")) for label in order]
    adata.uns["tasic2018"] = {
        "release": RELEASE,
        "regions": list(regions),
        "neurons_only": bool(neurons_only),
        "dropped_clusters": list(drop_clusters),
        "renamed_clusters": dict(RENAMED_CLUSTERS),
        "taxonomy_order": order,
    }
    return adata
