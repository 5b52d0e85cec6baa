"""Clustering benchmark: CplMixVI (defaults, 1 arm, the paper's Eq. 7) against four baselines.

Baselines: PCA + Leiden, PCA + k-means, scVI + Leiden, scVI + k-means (Leiden's resolution
bisected to K clusters; one PCA and one scVI fit per dataset and seed serve both clusterings).
Every fit runs in a fresh process (so its peak memory is its own) with ``OMP_WAIT_POLICY=PASSIVE``
and the given number of torch threads; ``--jobs`` fits run side by side. Results go to
``benchmarks/results/clustering.csv``, a markdown summary ``benchmarks/results/clustering.md``
(mean +- s.d. over seeds) and ``clustering_headline.md`` (the defaults against the best
baseline of each score).

Usage::

    python benchmarks/clustering.py                      # all datasets, seeds 0 1 2
    python benchmarks/clustering.py --datasets mop_10x --seeds 0
    python benchmarks/clustering.py --resume             # only the fits missing from the csv
"""

from __future__ import annotations

import argparse
import resource
import time
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
from _env import DATA, finished_rows, in_fresh_processes, record, require_bench_extra  # noqa: E402

HERE = Path(__file__).resolve().parent
DATASETS = {"mop_10x": 44, "pbmc_10x_4k": 8, "worm_neuron": 10, "mouse_bladder": 16}
CPLMIXVI = {  # method name: constructor arguments besides n_types
    "cplmixvi": {},
    "cplmixvi_1arm": {"n_arms": 1},
    "cplmixvi_paper": {"objective": "paper"},
}
FITS = {
    **{name: (name,) for name in CPLMIXVI},
    "pca": ("pca_leiden", "pca_kmeans"),
    "scvi": ("scvi_leiden", "scvi_kmeans"),
}
METHODS = tuple(method for methods in FITS.values() for method in methods)
SCVI_EPOCHS = 100


def load(name: str):
    """Raw counts of a shared dataset, without cells that have no counts."""
    import anndata as ad
    import scanpy as sc

    adata = ad.read_h5ad(DATA / f"{name}.h5ad")
    sc.pp.filter_cells(adata, min_counts=1)
    return adata


def fit_cplmixvi(adata, k: int, seed: int, **model_kwargs) -> tuple[np.ndarray, dict]:
    """Train CplMixVI with package defaults; return fused labels and training figures."""
    import scvi

    from cplmixvi import CplMixVI

    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata)
    model = CplMixVI(adata, n_types=k, **model_kwargs)
    start = time.perf_counter()
    model.train(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    seconds = time.perf_counter() - start
    epochs = len(model.history["elbo_train"])
    n_train = int(round(0.9 * adata.n_obs))
    table = model.get_type_assignments()
    extra = {
        "epochs": epochs,
        "train_s": seconds,
        "cells_per_s": n_train * epochs / seconds,
        "consensus": float((table["arm_agreement"] == 1).mean()),
    }
    return table["type"].to_numpy(), extra


def fit(name: str, fit_name: str, seed: int) -> list[tuple[str, np.ndarray, float, dict]]:
    """(method, labels, fit seconds, extra columns) of each method that one fit serves."""
    from baselines import kmeans_labels, leiden_on, pca_embedding, scvi_latent

    adata, k = load(name), DATASETS[name]
    start = time.perf_counter()
    if fit_name in CPLMIXVI:
        labels, extra = fit_cplmixvi(adata, k, seed, **CPLMIXVI[fit_name])
        return [(fit_name, labels, time.perf_counter() - start, extra)]
    if fit_name == "pca":
        embedding = pca_embedding(adata, seed).obsm["X_pca"]
    else:
        embedding = scvi_latent(adata, seed, max_epochs=SCVI_EPOCHS)
    shared = time.perf_counter() - start
    rows = []
    for method, cluster in zip(FITS[fit_name], (leiden_on, kmeans_labels), strict=True):
        begin = time.perf_counter()
        labels = cluster(embedding, k, seed)
        rows.append((method, labels, shared + time.perf_counter() - begin, {}))
    return rows


def library_versions() -> str:
    """The versions that move a fit's end point (k-means and float rounding differ by release)."""
    from importlib.metadata import version

    names = ("torch", "scvi-tools", "scikit-learn", "numpy", "scanpy", "leidenalg")
    return ", ".join(f"{n} {version(n)}" for n in names)


def run_one(name: str, fit_name: str, seed: int, threads: int) -> list[dict]:
    """One fit in this (fresh) process: scores, time and peak resident memory per method."""
    import torch

    torch.set_num_threads(threads)
    from cplmixvi.metrics import clustering_scores

    truth = load(name).obs["cell_type"].astype(str)
    rows = []
    for method, labels, seconds, extra in fit(name, fit_name, seed):
        scores = clustering_scores(truth, pd.Series(labels).astype(str))
        rows.append(
            {
                "dataset": name,
                "method": method,
                "seed": seed,
                "n_cells": len(truth),
                "k": DATASETS[name],
                "n_clusters": int(pd.Series(labels).nunique()),
                **scores,
                "consensus": float("nan"),  # arms' agreement: CplMixVI only
                "fit_s": seconds,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "torch_threads": threads,
                "versions": library_versions(),
                **extra,
            }
        )
    return rows


def mean_sd(grouped, cols: list[str]) -> pd.DataFrame:
    """``"mean ± s.d."`` strings per group for each column (empty where the mean is NaN)."""
    mean, std = grouped[cols].mean(), grouped[cols].std().fillna(0)
    table = pd.DataFrame(index=mean.index)
    for col in cols:
        table[col] = [
            "" if pd.isna(m) else f"{m:.3f} ± {s:.3f}"
            for m, s in zip(mean[col], std[col], strict=True)
        ]
    return table


def summarise(results: pd.DataFrame) -> str:
    """Markdown table: mean +- s.d. over seeds of each score, per dataset and method."""
    cols = ["acc", "ari", "ami", "consensus"]
    order = {name: i for i, name in enumerate([*DATASETS, *METHODS])}
    results = results.sort_values(["dataset", "method"], key=lambda col: col.map(order))
    grouped = results.groupby(["dataset", "method"], sort=False)
    table = mean_sd(grouped, cols)
    table["types with cells"] = [f"{m:.1f}" for m in grouped["n_clusters"].mean()]
    table["seeds"] = grouped.size()
    perf = grouped[["peak_rss_mb", "fit_s"]].median()
    table["peak RSS MB"] = perf["peak_rss_mb"].map("{:.0f}".format)
    table["fit s"] = perf["fit_s"].map("{:.0f}".format)
    return table.reset_index().to_markdown(index=False)


BASELINES = ("pca_leiden", "pca_kmeans", "scvi_leiden", "scvi_kmeans")


def headline(results: pd.DataFrame) -> str:
    """Markdown: CplMixVI's defaults against the best baseline of each dataset (means)."""
    means = results.groupby(["dataset", "method"])[["acc", "ari", "ami", "consensus"]].mean()
    rows = []
    for name, k in DATASETS.items():
        if name not in means.index.get_level_values(0):
            continue
        table = means.loc[name]
        baselines = table.loc[table.index.intersection(BASELINES)]
        if baselines.empty or "cplmixvi" not in table.index:
            continue
        ours = table.loc["cplmixvi"]
        row = {"dataset (K)": f"{name} ({k})"}
        for col in ("acc", "ari", "ami"):
            best = baselines[col].idxmax()
            row[f"{col.upper()} cplmixvi"] = f"{ours[col]:.3f}"
            row[f"{col.upper()} best baseline"] = f"{baselines[col].max():.3f} ({best})"
        row["arm consensus"] = f"{ours['consensus']:.2f}"
        rows.append(row)
    return pd.DataFrame(rows).to_markdown(index=False)


def main(argv: list[str] | None = None) -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--fits", nargs="+", default=list(FITS), choices=list(FITS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per fit")
    parser.add_argument("--jobs", type=int, default=2, help="fits run side by side")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--resume", action="store_true", help="keep the rows already in clustering.csv"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "clustering.csv"
    rows, done = finished_rows(csv, ("dataset", "method", "seed"), args.resume)
    todo = [
        (name, fit_name, seed)
        for seed in args.seeds
        for name in args.datasets
        for fit_name in args.fits
        if not all((name, method, seed) in done for method in FITS[fit_name])
    ]
    calls = [(run_one, (*job, args.threads)) for job in todo]
    record(chain.from_iterable(in_fresh_processes(calls, args.jobs)), rows, csv)
    results = pd.DataFrame(rows)
    (args.out / "clustering.md").write_text(summarise(results) + "\n")
    (args.out / "clustering_headline.md").write_text(headline(results) + "\n")
    print(summarise(results))


if __name__ == "__main__":
    main()
