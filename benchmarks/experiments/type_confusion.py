"""Which reference types each clusterer gets right: per-type recall of CplMixVI and baselines.

For one data set and seed: the package defaults' fused types, scVI + k-means and PCA + k-means
(K = the number of reference types). Every clustering is matched one-to-one to the reference
types (Hungarian); for each reference type the table gives its size, the fraction of its cells
in its matched cluster (recall) for each clusterer, and for CplMixVI the reference type that
most of its other cells share a cluster with. Appends a section to
``benchmarks/results/type_confusion.md``. Usage::

    python benchmarks/experiments/type_confusion.py --dataset pbmc_10x_4k --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import require_bench_extra  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
OUT = HERE.parent / "results" / "type_confusion.md"


def recall_table(truth: np.ndarray, labels: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per reference type: size, each clusterer's recall, where CplMixVI puts the rest."""
    from cplmixvi.metrics import hungarian_mapping

    types, sizes = np.unique(truth, return_counts=True)
    table = pd.DataFrame({"cells": sizes}, index=types)
    owners = {}  # per clusterer: the reference type each cell's cluster is matched to
    for name, pred in labels.items():
        mapping = hungarian_mapping(truth, pred)
        owners[name] = np.array([mapping.get(p, "unmatched") for p in pred], dtype=object)
        table[f"recall {name}"] = [np.mean(owners[name][truth == t] == t) for t in types]
    ours = owners["cplmixvi"]
    table["cplmixvi: rest goes to"] = [
        pd.Series(ours[(truth == t) & (ours != t)]).value_counts().index[0]
        if ((truth == t) & (ours != t)).any()
        else ""
        for t in types
    ]
    return table.sort_values("cells", ascending=False).round(3)


def main() -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="pbmc_10x_4k")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from baselines import kmeans_labels, pca_kmeans, scvi_latent
    from clustering import DATASETS, fit_cplmixvi, load

    from cplmixvi.metrics import clustering_scores

    torch.set_num_threads(1)
    adata = load(args.dataset)
    k = DATASETS[args.dataset]
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    labels = {
        "cplmixvi": fit_cplmixvi(adata.copy(), k, args.seed)[0].astype(str),
        "scvi_kmeans": kmeans_labels(scvi_latent(adata, args.seed), k, args.seed).astype(str),
        "pca_kmeans": pca_kmeans(adata, k, args.seed).astype(str),
    }
    scores = pd.DataFrame({n: clustering_scores(truth, p) for n, p in labels.items()}).T
    text = (
        f"\n## {args.dataset}, seed {args.seed}\n\n{scores.round(3).to_markdown()}\n\n"
        f"{recall_table(truth, labels).to_markdown()}\n"
    )
    with OUT.open("a") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
