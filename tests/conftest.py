"""Shared fixtures: small seeded synthetic count data with planted cell types."""

from __future__ import annotations

import logging
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData

matplotlib.use("agg")  # plots show by default: never open windows (or block) in tests
torch.set_num_threads(2)
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
logging.getLogger("lightning.fabric").setLevel(logging.ERROR)


def make_counts_adata(
    n_cells: int = 300,
    n_genes: int = 50,
    n_types: int = 3,
    n_batches: int = 2,
    seed: int = 0,
    dispersion: float = 5.0,
) -> AnnData:
    """Negative-binomial counts with ``n_types`` planted types, each with its own marker genes.

    ``obs`` has ``cell_type`` (the planted label) and ``batch``; ``layers["counts"]`` holds a copy
    of the counts in ``X``. Every cell has a positive total count.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_types, size=n_cells)
    base = rng.gamma(2.0, 1.0, size=n_genes)
    means = np.tile(base, (n_types, 1))
    per_type = max(n_genes // n_types, 1)
    for k in range(n_types):
        means[k, k * per_type : (k + 1) * per_type] *= 8.0  # type-specific markers
    batches = rng.integers(0, n_batches, size=n_cells)
    mu = means[labels] * (1.0 + 0.3 * batches[:, None])
    # NB as a gamma-Poisson mixture with inverse dispersion ``dispersion``
    rate = rng.gamma(dispersion, mu / dispersion)
    counts = rng.poisson(rate).astype(np.float32)
    empty = counts.sum(1) == 0
    counts[empty, 0] = 1.0
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([f"type{k}" for k in labels]),
            "batch": pd.Categorical([f"b{b}" for b in batches]),
        },
        index=[f"cell{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)])
    adata = AnnData(X=counts, obs=obs, var=var)
    adata.layers["counts"] = counts.copy()
    return adata


@pytest.fixture(autouse=True)
def _close_figures():
    """Plots open pyplot figures (as scanpy's do); close them after every test."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="session")
def make_adata():
    """Factory for synthetic count AnnData (see :func:`make_counts_adata`)."""
    return make_counts_adata


@pytest.fixture
def adata() -> AnnData:
    """300 cells x 50 genes, 3 planted types, 2 batches, counts in X and layers['counts']."""
    return make_counts_adata()


def reference_dsigma_sq(probs, min_prob: float, min_sigma: float, spread=None) -> np.ndarray:
    """Loop-by-loop ``d_sigma^2`` in float64, written from the formula of METHOD.md.

    ``sigma_ak = sqrt(var_cells(c_ak) + min_sigma^2)`` (minibatch variance over cells),
    ``d_sigma^2(c_a, c_b) = sum_k (log max(c_ak, min_prob) / sigma_ak
    - log max(c_bk, min_prob) / sigma_bk)^2`` for every pair ``a < b`` (row-major pair order).
    ``spread`` (default ``probs``) is what the variances are taken of.
    Returns an array of shape ``(n_pairs, n_cells)``.
    """
    p = np.asarray(probs, dtype=np.float64)
    v = p if spread is None else np.asarray(spread, dtype=np.float64)
    n_arms, n_cells, n_types = p.shape
    rows = []
    for a in range(n_arms):
        for b in range(a + 1, n_arms):
            row = np.zeros(n_cells)
            for i in range(n_cells):
                total = 0.0
                for k in range(n_types):
                    sig_a = np.sqrt(np.var(v[a, :, k]) + min_sigma**2)
                    sig_b = np.sqrt(np.var(v[b, :, k]) + min_sigma**2)
                    la = np.log(max(p[a, i, k], min_prob))
                    lb = np.log(max(p[b, i, k], min_prob))
                    total += (la / sig_a - lb / sig_b) ** 2
                row[i] = total
            rows.append(row)
    return np.array(rows).reshape(len(rows), n_cells)


@pytest.fixture
def dsigma_reference():
    """The reference implementation of ``d_sigma^2`` (see :func:`reference_dsigma_sq`)."""
    return reference_dsigma_sq
