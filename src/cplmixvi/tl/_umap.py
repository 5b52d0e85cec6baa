"""The UMAP of the inferred types: neighbour graph and embedding, stored under ``key_added``."""

from __future__ import annotations

import numpy as np
import scanpy as sc
from anndata import AnnData

__all__ = ["types_umap"]


def types_umap(
    adata: AnnData,
    key_prefix: str = "cplmixvi",
    n_neighbors: int = 15,
    seed: int = 0,
    key_added: str = "cplmixvi_umap",
) -> None:
    """Neighbour graph and UMAP of the model's types and states, for :func:`cplmixvi.pl.types_umap`.

    The representation is the fused type probabilities plus 0.1 x the standardised states of
    all arms (as written by :meth:`cplmixvi.CplMixVI.write_results`): the probabilities separate
    the types, the states spread each type out. Nothing else in ``adata`` changes (scanpy's own
    ``obsm["X_umap"]`` and ``obsp["connectivities"]`` are left alone).

    Parameters
    ----------
    adata
        AnnData with the model's results.
    key_prefix
        Prefix the results were written with.
    n_neighbors
        Neighbours of the graph (:func:`scanpy.pp.neighbors`).
    seed
        Random state of the graph and the UMAP.
    key_added
        Where the results go: ``obsm[f"X_{key_added}"]`` (the embedding, cells x 2),
        ``obsp[f"{key_added}_distances"]`` and ``obsp[f"{key_added}_connectivities"]`` (the
        graph) and ``uns[key_added]`` (their parameters, in scanpy's layout of a neighbour
        graph, so that e.g. ``sc.tl.leiden(adata, neighbors_key=key_added)`` uses it).

    Examples
    --------
    >>> cplmixvi.tl.types_umap(adata)
    >>> cplmixvi.pl.types_umap(adata, labels_key="cell_type")
    >>> sc.pl.embedding(adata, basis="X_cplmixvi_umap", color="cplmixvi_confidence")
    """
    for key in (f"{key_prefix}_type_probs", f"X_{key_prefix}_state_arms"):
        if key not in adata.obsm:
            raise KeyError(f"adata.obsm[{key!r}] is missing; run model.write_results(adata) first.")
    rep = np.concatenate(
        [
            np.asarray(adata.obsm[f"{key_prefix}_type_probs"], dtype=np.float64),
            0.1 * _scaled(adata.obsm[f"X_{key_prefix}_state_arms"]),
        ],
        axis=1,
    ).astype(np.float32)
    # computed on a scratch AnnData, so that only the documented keys reach the user's
    work = AnnData(obs=adata.obs[[]].copy(), obsm={"rep": rep})
    sc.pp.neighbors(work, use_rep="rep", n_neighbors=n_neighbors, random_state=seed)
    sc.tl.umap(work, random_state=seed)
    adata.obsm[f"X_{key_added}"] = work.obsm["X_umap"]
    adata.obsp[f"{key_added}_distances"] = work.obsp["distances"]
    adata.obsp[f"{key_added}_connectivities"] = work.obsp["connectivities"]
    params = {k: v for k, v in work.uns["neighbors"]["params"].items() if k != "use_rep"}
    adata.uns[key_added] = {
        "connectivities_key": f"{key_added}_connectivities",
        "distances_key": f"{key_added}_distances",
        "params": params,
        "umap": dict(work.uns["umap"]["params"]),
    }


def _scaled(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return (values - values.mean(axis=0)) / (values.std(axis=0) + 1e-8)
