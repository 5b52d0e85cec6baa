"""A simulator of counts with planted cell types and a type-dependent continuous state."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

__all__ = ["simulate"]


def simulate(
    n_cells: int = 3000,
    n_genes: int = 200,
    n_types: int = 5,
    n_markers: int = 10,
    n_state_genes: int = 20,
    imbalance: float = 10.0,
    respond_prob: float = 0.5,
    slope: tuple[float, float] = (0.3, 0.6),
    marker_fold_change: float = 10.0,
    library_size: float = 3000.0,
    dispersion: float = 10.0,
    seed: int = 0,
) -> AnnData:
    """Negative-binomial counts from ``n_types`` types with markers and a type-dependent state.

    Each cell has a type ``t`` (abundances decaying geometrically, the largest type
    ``imbalance`` times the smallest) and a state ``s ~ N(0, 1)``. The mean expression of gene
    ``g`` is proportional to ``exp(b_g + m_tg + r_tg * s)``: ``b_g`` a background level, ``m_tg =
    log(marker_fold_change)`` for the ``n_markers`` marker genes of type ``t`` (0 otherwise) and
    ``r_tg`` the type-specific response of the ``n_state_genes`` activity genes: in each type an
    activity gene responds with probability ``respond_prob`` (at least two per type), with a slope
    of random sign and magnitude drawn from ``slope``. Means are normalised to each cell's library
    size (log-normal around ``library_size``), and counts are NB with inverse dispersion
    ``dispersion``.

    Parameters
    ----------
    n_cells, n_genes, n_types
        Size of the data set; needs ``n_types * n_markers + n_state_genes <= n_genes``.
    n_markers
        Marker genes per type (disjoint across types).
    n_state_genes
        Activity genes that the state can drive.
    imbalance
        Ratio of the largest to the smallest type abundance (1 for equal abundances).
    respond_prob
        Probability that an activity gene responds to the state in a given type.
    slope
        Range of the absolute response ``|r_tg|`` (log scale, per unit of ``s``).
    marker_fold_change
        Fold change of a marker gene in its type.
    library_size
        Median total count per cell.
    dispersion
        NB inverse dispersion ``theta`` (larger is closer to Poisson).
    seed
        Seed of the random number generator.

    Returns
    -------
    AnnData
        Raw counts (float32 CSR) in ``X`` and ``layers["counts"]``;
        ``obs["cell_type"]`` (categorical ``type0``...), ``obs["state"]`` (the planted state),
        ``obs["library"]``; ``var["is_marker"]``, ``var["marker_of"]`` (type name or ``""``),
        ``var["is_state_gene"]`` (responds in at least one type); ``uns["simulation"]``:
        ``types``, ``response`` (``(n_types, n_genes)`` array of ``r_tg``), ``proportions`` and
        the parameters.

    Examples
    --------
    >>> adata = cplmixvi.data.simulate(n_cells=2000, n_types=4, seed=0)
    >>> planted = adata.uns["simulation"]["response"] != 0  # (types, genes)
    """
    _check_sizes(n_genes, n_types, n_markers, n_state_genes, imbalance, respond_prob)
    rng = np.random.default_rng(seed)
    types = [f"type{k}" for k in range(n_types)]
    proportions = imbalance ** (-np.arange(n_types) / max(n_types - 1, 1))
    proportions = proportions / proportions.sum()
    labels = rng.choice(n_types, size=n_cells, p=proportions)
    state = rng.standard_normal(n_cells)

    log_mean = np.tile(np.log(rng.gamma(2.0, 1.0, size=n_genes) + 0.1), (n_types, 1))
    marker_of = np.full(n_genes, "", dtype=object)
    for k in range(n_types):
        genes = slice(k * n_markers, (k + 1) * n_markers)
        log_mean[k, genes] += np.log(marker_fold_change)
        marker_of[genes] = types[k]
    activity = np.arange(n_types * n_markers, n_types * n_markers + n_state_genes)
    response = np.zeros((n_types, n_genes))
    response[:, activity] = _responses(rng, n_types, n_state_genes, respond_prob, slope)

    eta = log_mean[labels] + response[labels] * state[:, None]
    fractions = np.exp(eta - eta.max(axis=1, keepdims=True))
    fractions /= fractions.sum(axis=1, keepdims=True)
    library = library_size * np.exp(0.3 * rng.standard_normal(n_cells))
    mu = fractions * library[:, None]
    counts = rng.poisson(rng.gamma(dispersion, mu / dispersion)).astype(np.float32)
    counts[counts.sum(axis=1) == 0, 0] = 1.0  # every cell keeps a library size

    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical.from_codes(labels, categories=types),
            "state": state,
            "library": counts.sum(axis=1),
        },
        index=[f"cell{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame(
        {
            "is_marker": marker_of != "",
            "marker_of": marker_of.astype(str),
            "is_state_gene": (response != 0).any(axis=0),
        },
        index=[f"gene{j}" for j in range(n_genes)],
    )
    matrix = sparse.csr_matrix(counts)
    adata = AnnData(X=matrix, obs=obs, var=var)
    adata.layers["counts"] = matrix.copy()
    adata.uns["simulation"] = {
        "types": types,
        "response": response,
        "proportions": proportions,
        "params": {
            "n_markers": n_markers,
            "n_state_genes": n_state_genes,
            "imbalance": imbalance,
            "respond_prob": respond_prob,
            "marker_fold_change": marker_fold_change,
            "dispersion": dispersion,
            "seed": seed,
        },
    }
    return adata


def _responses(
    rng: np.random.Generator,
    n_types: int,
    n_state_genes: int,
    respond_prob: float,
    slope: tuple[float, float],
) -> np.ndarray:
    """``(n_types, n_state_genes)`` slopes: random subsets, signs and magnitudes per type."""
    responds = rng.random((n_types, n_state_genes)) < respond_prob
    for k in range(n_types):  # at least two responding genes per type
        if responds[k].sum() < 2:
            responds[k, rng.choice(n_state_genes, size=2, replace=False)] = True
    magnitude = rng.uniform(slope[0], slope[1], size=responds.shape)
    sign = rng.choice([-1.0, 1.0], size=responds.shape)
    return responds * magnitude * sign


def _check_sizes(n_genes, n_types, n_markers, n_state_genes, imbalance, respond_prob) -> None:
    if n_types < 1 or n_markers < 0 or n_state_genes < 2:
        raise ValueError(
            f"Need n_types >= 1, n_markers >= 0 and n_state_genes >= 2; got {n_types}, "
            f"{n_markers} and {n_state_genes}."
        )
    if n_types * n_markers + n_state_genes > n_genes:
        raise ValueError(
            f"n_types * n_markers + n_state_genes = {n_types * n_markers + n_state_genes} "
            f"exceeds n_genes = {n_genes}; use more genes or fewer markers/state genes."
        )
    if imbalance < 1:
        raise ValueError(f"imbalance must be >= 1 (largest / smallest type), got {imbalance}.")
    if not 0 < respond_prob <= 1:
        raise ValueError(f"respond_prob must be in (0, 1], got {respond_prob}.")
