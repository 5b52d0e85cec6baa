"""Clustering benchmark of issue 2: CplMixVI (2 arms, 1 arm) against PCA+Leiden and scVI+Leiden.

Every fit runs in a fresh process (so its peak memory is its own) with ``OMP_WAIT_POLICY=PASSIVE``
and the given number of torch threads. Results go to ``benchmarks/results/clustering.csv`` and a
markdown summary ``benchmarks/results/clustering.md`` (mean +- s.d. over seeds).

Usage::

    python benchmarks/clustering.py                      # all datasets, seeds 0 1 2
    python benchmarks/clustering.py --datasets mop_10x --seeds 0
    python benchmarks/clustering.py --resume             # only the fits missing from the csv
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
DATASETS = {"mop_10x": 44, "pbmc_10x_4k": 8, "worm_neuron": 10, "mouse_bladder": 16}
METHODS = ("cplmixvi_2arm", "cplmixvi_1arm", "pca_leiden", "scvi_leiden")
SCVI_EPOCHS = 100


def load(name: str):
    """Raw counts of a shared dataset, without cells that have no counts."""
    import anndata as ad
    import scanpy as sc

    adata = ad.read_h5ad(DATA / f"{name}.h5ad")
    sc.pp.filter_cells(adata, min_counts=1)
    return adata


def fit_cplmixvi(adata, k: int, seed: int, n_arms: int) -> tuple[pd.Series, dict]:
    """Train CplMixVI with package defaults; return fused labels and throughput figures."""
    import scvi

    from cplmixvi import CplMixVI

    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata)
    model = CplMixVI(adata, n_types=k, n_arms=n_arms)
    start = time.perf_counter()
    model.train(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    seconds = time.perf_counter() - start
    epochs = len(model.history["elbo_train"])
    n_train = int(round(0.9 * adata.n_obs))
    labels = model.get_type_assignments()["type"]
    extra = {
        "epochs": epochs,
        "train_s": seconds,
        "cells_per_s": n_train * epochs / seconds,
        "arm_agreement": float(model.history["arm_agreement_train"].iloc[-1, 0]),
    }
    return labels.to_numpy(), extra


def run_one(name: str, method: str, seed: int, threads: int) -> dict:
    """One fit in this (fresh) process: scores, time and peak resident memory."""
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(HERE))
    from baselines import pca_leiden, scvi_leiden

    from cplmixvi.metrics import clustering_scores

    adata, k = load(name), DATASETS[name]
    start = time.perf_counter()
    extra: dict = {}
    if method.startswith("cplmixvi"):
        labels, extra = fit_cplmixvi(adata, k, seed, n_arms=2 if method.endswith("2arm") else 1)
    elif method == "pca_leiden":
        labels = pca_leiden(adata, k, seed)
    else:
        labels = scvi_leiden(adata, k, seed, max_epochs=SCVI_EPOCHS)
    scores = clustering_scores(adata.obs["cell_type"].astype(str), pd.Series(labels).astype(str))
    return {
        "dataset": name,
        "method": method,
        "seed": seed,
        "n_cells": adata.n_obs,
        "k": k,
        "n_clusters": int(pd.Series(labels).nunique()),
        **scores,
        "wall_s": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": threads,
        **extra,
    }


def _integer(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.0f}"


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
    cols = ["acc", "ari", "ami", "nmi", "kl", "n_clusters"]
    order = {name: i for i, name in enumerate([*DATASETS, *METHODS])}
    results = results.sort_values(["dataset", "method"], key=lambda col: col.map(order))
    grouped = results.groupby(["dataset", "method"], sort=False)
    table = mean_sd(grouped, cols)
    table["n_clusters"] = [f"{m:.1f}" for m in grouped["n_clusters"].mean()]
    table["seeds"] = grouped.size()
    perf = grouped[["cells_per_s", "peak_rss_mb", "wall_s"]].median()
    table["cells/s/epoch (median)"] = perf["cells_per_s"].map(_integer)
    table["peak RSS MB (median)"] = perf["peak_rss_mb"].map("{:.0f}".format)
    table["wall s (median)"] = perf["wall_s"].map("{:.0f}".format)
    return table.reset_index().to_markdown(index=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--resume", action="store_true", help="keep the rows already in clustering.csv"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "clustering.csv"
    rows = pd.read_csv(csv).to_dict("records") if args.resume and csv.exists() else []
    done = {(row["dataset"], row["method"], row["seed"]) for row in rows}
    ctx = get_context("spawn")
    for seed in args.seeds:
        for name in args.datasets:
            for method in args.methods:
                if (name, method, seed) in done:
                    continue
                with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                    row = pool.submit(run_one, name, method, seed, args.threads).result()
                rows.append(row)
                print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
                pd.DataFrame(rows).to_csv(csv, index=False)
    results = pd.DataFrame(rows)
    (args.out / "clustering.md").write_text(summarise(results) + "\n")
    print(summarise(results))


if __name__ == "__main__":
    main()
