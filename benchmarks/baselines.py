"""Baseline clusterings with a fixed number of clusters, for benchmarks.

Every function takes an AnnData with raw counts in ``.X`` (which is left
untouched: the work is done on a copy) and returns integer cluster labels of
shape ``(n_obs,)``.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import scanpy as sc

N_NEIGHBORS = 15
MAX_HVG = 2000


def _counts_copy(adata_counts: ad.AnnData) -> ad.AnnData:
    """Bare float32 copy of the counts in ``.X``, keeping only obs and var names."""
    return ad.AnnData(
        adata_counts.X.astype(np.float32), obs=adata_counts.obs[[]], var=adata_counts.var[[]]
    )


def _neighbors(adata: ad.AnnData, use_rep: str, seed: int) -> None:
    """Exact 15-nearest-neighbour graph on ``obsm[use_rep]``.

    Uses sklearn's brute-force transformer because scanpy's default for 8192+
    cells, pynndescent, fails inside scanpy 1.11: pynndescent 0.7 returns a
    ``csr_array``, which has no ``getnnz`` in scipy 1.16.
    """
    sc.pp.neighbors(
        adata, n_neighbors=N_NEIGHBORS, use_rep=use_rep, transformer="sklearn", random_state=seed
    )


def _leiden(adata: ad.AnnData, resolution: float, seed: int, key_added: str) -> np.ndarray:
    """Run igraph Leiden in place and return the integer labels."""
    sc.tl.leiden(
        adata,
        resolution=resolution,
        random_state=seed,
        key_added=key_added,
        flavor="igraph",
        n_iterations=2,
        directed=False,
    )
    return adata.obs[key_added].astype(int).to_numpy()


def leiden_at_k(
    adata_with_neighbors: ad.AnnData,
    k: int,
    seed: int = 0,
    key_added: str = "leiden",
    max_steps: int = 30,
) -> np.ndarray:
    """Leiden clustering with the resolution tuned to give ``k`` clusters.

    The resolution is doubled from 1 until at least ``k`` clusters appear,
    then bisected. Leiden's cluster count can jump over ``k`` (e.g. from
    ``k - 1`` to ``k + 1``); if no resolution gives exactly ``k`` clusters
    within ``max_steps`` Leiden runs (or before the bracket shrinks below a
    relative width of 1e-6), the clustering whose number of clusters is
    closest to ``k`` is returned, the lower resolution winning ties. The chosen
    clustering is left in ``obs[key_added]`` and its resolution in
    ``uns[key_added]["params"]["resolution"]``.

    Parameters
    ----------
    adata_with_neighbors
        AnnData on which ``sc.pp.neighbors`` has been run; modified in place.
    k
        Target number of clusters.
    seed
        Random seed of Leiden.
    key_added
        ``obs`` column for the labels.
    max_steps
        Maximum number of Leiden runs.

    Returns
    -------
    numpy.ndarray
        Integer cluster labels, shape ``(n_obs,)``.
    """
    adata = adata_with_neighbors
    if not 1 <= k <= adata.n_obs:
        raise ValueError(f"k must be between 1 and n_obs={adata.n_obs}, got {k}.")
    lo, hi, resolution = 0.0, None, 1.0
    best = (np.inf, np.inf)  # (|n_clusters - k|, resolution)
    for _ in range(max_steps):
        n_clusters = len(np.unique(_leiden(adata, resolution, seed, key_added)))
        best = min(best, (abs(n_clusters - k), resolution))
        if n_clusters == k:
            break
        if n_clusters < k:
            lo = resolution
        else:
            hi = resolution
        if hi is not None and hi - lo < 1e-6 * hi:
            break  # n_clusters jumps over k here
        resolution = 2 * lo if hi is None else (lo + hi) / 2
    if best[1] != adata.uns[key_added]["params"]["resolution"]:
        _leiden(adata, best[1], seed, key_added)
    return adata.obs[key_added].astype(int).to_numpy()


def pca_embedding(adata_counts: ad.AnnData, seed: int = 0) -> ad.AnnData:
    """Log-normalised, scaled copy of the counts with its principal components in ``X_pca``."""
    adata = _counts_copy(adata_counts)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    if adata.n_vars > MAX_HVG:
        sc.pp.highly_variable_genes(adata, n_top_genes=MAX_HVG, subset=True)
    sc.pp.scale(adata, max_value=10)
    n_comps = min(50, adata.n_vars - 1, adata.n_obs - 1)
    sc.pp.pca(adata, n_comps=n_comps, random_state=seed)
    return adata


def kmeans_labels(embedding: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means (10 initialisations) with ``k`` clusters on an embedding."""
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=10, random_state=seed).fit_predict(embedding)


def pca_kmeans(adata_counts: ad.AnnData, k: int, seed: int = 0) -> np.ndarray:
    """The scanpy preprocessing of :func:`pca_leiden`, then k-means on the 50 PCs."""
    return kmeans_labels(pca_embedding(adata_counts, seed).obsm["X_pca"], k, seed)


def pca_leiden(adata_counts: ad.AnnData, k: int, seed: int = 0) -> np.ndarray:
    """Standard scanpy pipeline: log-normalise, PCA, kNN graph, Leiden at ``k``.

    Counts are normalised to 10^4 per cell and log1p-transformed; the 2000
    most variable genes are kept only when there are more than 2000 genes;
    genes are scaled (clipped at 10) and reduced to 50 principal components
    (fewer if there are few genes or cells) before a 15-nearest-neighbour
    graph and :func:`leiden_at_k`.

    Parameters
    ----------
    adata_counts
        AnnData with raw counts in ``.X``; not modified.
    k
        Target number of clusters.
    seed
        Seed for PCA, neighbours and Leiden.

    Returns
    -------
    numpy.ndarray
        Integer cluster labels, shape ``(n_obs,)``.
    """
    adata = pca_embedding(adata_counts, seed)
    _neighbors(adata, "X_pca", seed)
    return leiden_at_k(adata, k, seed)


def default_scvi_epochs(n_obs: int) -> int:
    """scvi-tools' default epoch count, ``min(400, 20000 / n_obs * 400)``, capped at 200.

    The cap keeps training practical on a few CPU cores (about 1.2 s per epoch
    per 10^4 cells on two cores).
    """
    return int(min(200, round(20000 / n_obs * 400)))


def scvi_latent(
    adata_counts: ad.AnnData, seed: int = 0, max_epochs: int | None = None, n_latent: int = 10
) -> np.ndarray:
    """scVI's latent means (``n_latent`` dimensions) after ``max_epochs`` of training."""
    import scvi

    scvi.settings.seed = seed
    adata = _counts_copy(adata_counts)
    scvi.model.SCVI.setup_anndata(adata)
    model = scvi.model.SCVI(adata, n_latent=n_latent)
    if max_epochs is None:
        max_epochs = default_scvi_epochs(adata.n_obs)
    model.train(max_epochs=max_epochs, enable_progress_bar=False)
    return model.get_latent_representation()


def leiden_on(embedding: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Leiden at ``k`` clusters on the 15-nearest-neighbour graph of an embedding."""
    adata = ad.AnnData(obsm={"X_rep": embedding}, obs=None, shape=(len(embedding), 0))
    _neighbors(adata, "X_rep", seed)
    return leiden_at_k(adata, k, seed)


def scvi_leiden(
    adata_counts: ad.AnnData,
    k: int,
    seed: int = 0,
    max_epochs: int | None = None,
    n_latent: int = 10,
) -> np.ndarray:
    """scVI latent space, kNN graph and Leiden at ``k`` clusters.

    Parameters
    ----------
    adata_counts
        AnnData with raw counts in ``.X``; not modified.
    k
        Target number of clusters.
    seed
        Sets ``scvi.settings.seed`` and seeds neighbours and Leiden.
    max_epochs
        Training epochs; defaults to :func:`default_scvi_epochs`.
    n_latent
        Dimension of the scVI latent space.

    Returns
    -------
    numpy.ndarray
        Integer cluster labels, shape ``(n_obs,)``.
    """
    return leiden_on(scvi_latent(adata_counts, seed, max_epochs, n_latent), k, seed)
