"""Starts that keep small types: k-means at more than K clusters, merged back to K on a graph.

For each data set and seed, one default CplMixVI fit stopped at the k-means start gives the
arms' joint clr codes (cached under ``--cache``). Each start is scored on its own labels (not
through a nearest-centroid head): ACC / ARI / AMI, categories, and ``found``, the reference
types whose Hungarian-matched category holds at least half of their cells. Merges, from k-means
at 2K and 3K clusters: Ward's cost on the codes (:func:`ward_merge`), and the greedy modularity
gain on the codes' 15-nearest-neighbour graph at several resolutions (the package's
:func:`~cplmixvi.model._type_init.modularity_merge`), and the largest boundary share
``e_ij / min(d_i, d_j) ** power`` on that graph (:func:`share_merge`; added 2026-12-07, rows
with ``share`` in their name). Rows go to
``benchmarks/results/start_merges.jsonl``. Usage::

    python benchmarks/experiments/start_merges.py --datasets mop_10x pbmc_10x_4k --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import sparse

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
OUT = HERE.parent / "results" / "start_merges.jsonl"


def ward_merge(rep: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Merge clusters pairwise by Ward's cost (the least rise of the within sum of squares)."""
    n = labels.max() + 1
    sizes = np.bincount(labels, minlength=n).astype(float)
    sums = np.stack([rep[labels == j].sum(0) for j in range(n)])
    group, alive = np.arange(n), np.ones(n, bool)
    while alive.sum() > k:
        live = np.flatnonzero(alive)
        centroids = sums[live] / sizes[live, None]
        dist = ((centroids[:, None] - centroids[None]) ** 2).sum(-1)
        cost = dist * np.outer(sizes[live], sizes[live]) / np.add.outer(sizes[live], sizes[live])
        np.fill_diagonal(cost, np.inf)
        a, b = np.unravel_index(np.argmin(cost), cost.shape)
        i, j = live[a], live[b]
        sizes[i] += sizes[j]
        sums[i] += sums[j]
        alive[j] = False
        group[group == j] = i
    return np.unique(group[labels], return_inverse=True)[1]


def share_merge(graph: sparse.spmatrix, labels: np.ndarray, k: int, power: float = 1.0):
    """Merge the pair with the largest ``e_ij / min(d_i, d_j) ** power`` until ``k`` remain."""
    n = labels.max() + 1
    member = sparse.csr_matrix(
        (np.ones(len(labels)), (np.arange(len(labels)), labels)), (len(labels), n)
    )
    edges = (member.T @ graph @ member).toarray()
    degree = edges.sum(1)
    group, alive = np.arange(n), np.ones(n, bool)
    while alive.sum() > k:
        live = np.flatnonzero(alive)
        between = edges[np.ix_(live, live)].copy()
        np.fill_diagonal(between, -1)
        share = between / np.minimum.outer(degree[live], degree[live]) ** power
        a, b = np.unravel_index(np.argmax(share), share.shape)
        i, j = live[a], live[b]
        edges[i] += edges[j]
        edges[:, i] += edges[:, j]
        degree[i] += degree[j]
        alive[j] = False
        group[group == j] = i
    return np.unique(group[labels], return_inverse=True)[1]


def scores(truth: np.ndarray, labels: np.ndarray) -> dict:
    """ACC / ARI / AMI, categories, and reference types found (matched recall >= 0.5)."""
    from cplmixvi.metrics import clustering_scores, hungarian_mapping

    pred = labels.astype(str)
    mapping = hungarian_mapping(truth, pred)
    owner = np.array([mapping.get(p, "") for p in pred], dtype=object)
    found = sum(np.mean(owner[truth == t] == t) >= 0.5 for t in np.unique(truth))
    row = {key: round(float(v), 4) for key, v in clustering_scores(truth, pred).items()}
    return row | {"categories": int(len(np.unique(labels))), "found": int(found)}


def codes_at_start(dataset: str, seed: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """The joint clr codes at the k-means start and the reference labels (cached).

    The cache may also hold the ``<dataset>_<seed>_<K>.npz`` files of ``auto_k.py --factor 1``
    (codes of shape ``(arms, cells, width)``), which are joined arm by arm.
    """
    path = cache / f"{dataset}_{seed}.npz"
    saved = sorted(cache.glob(f"{dataset}_{seed}_*.npz"))
    if not path.exists() and saved:
        from clustering import load

        codes = np.load(saved[0])["codes"]
        n_arms, n, width = codes.shape
        truth = load(dataset).obs["cell_type"].astype(str).to_numpy()
        return codes.transpose(1, 0, 2).reshape(n, n_arms * width), truth
    if not path.exists():
        import torch
        from clustering import DATASETS, load
        from start_types import start_representations

        torch.set_num_threads(1)
        adata = load(dataset)
        reps = start_representations(adata.copy(), DATASETS[dataset], seed)
        truth = adata.obs["cell_type"].astype(str).to_numpy()
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, codes=reps["codes"], hidden=reps["hidden"], truth=truth)
    data = np.load(path, allow_pickle=True)
    return data["codes"], data["truth"]


def run(dataset: str, seed: int, cache: Path) -> list[dict]:
    from baselines import kmeans_labels
    from clustering import DATASETS
    from sklearn.neighbors import kneighbors_graph

    from cplmixvi.model._type_init import modularity_merge

    k = DATASETS[dataset]
    codes, truth = codes_at_start(dataset, seed, cache)
    graph = kneighbors_graph(codes, 15)
    graph = graph + graph.T
    starts = {"kmeans K": kmeans_labels(codes, k, seed)}
    for factor in (2, 3):
        fine = kmeans_labels(codes, factor * k, seed)
        starts[f"kmeans {factor}K ward"] = ward_merge(codes, fine, k)
        for resolution in (0.3, 0.4, 0.5, 0.7, 1.0):
            labels = modularity_merge(graph, fine, k, resolution)
            starts[f"kmeans {factor}K modularity {resolution:g}"] = labels
        for power in (1.0, 0.5):
            starts[f"kmeans {factor}K share^{power:g}"] = share_merge(graph, fine, k, power)
    base = {"dataset": dataset, "seed": seed, "k": k}
    return [base | {"start": name} | scores(truth, labels) for name, labels in starts.items()]


def table(path: Path, baseline: str = "kmeans 2K modularity 0.4") -> str:
    """Mean start ARI per set and start, and the paired difference from ``baseline``."""
    import pandas as pd

    rows = pd.read_json(path, lines=True)
    wide = rows.pivot_table(index="start", columns="dataset", values="ari", aggfunc="mean")
    wide["all"] = wide.mean(axis=1)
    base = rows[rows["start"] == baseline].set_index(["dataset", "seed"])["ari"]
    for start, group in rows.groupby("start"):
        diff = group.set_index(["dataset", "seed"])["ari"] - base
        wide.loc[start, "d ARI"] = diff.mean()
        wide.loc[start, "s.e."] = diff.std() / len(diff) ** 0.5
        wide.loc[start, "worst set"] = diff.groupby(level=0).mean().min()
    return wide.sort_values("all", ascending=False).to_markdown(floatfmt=".3f")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--datasets", nargs="+", default=["mop_10x", "pbmc_10x_4k", "worm_neuron", "mouse_bladder"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/cpl_start_codes"))
    parser.add_argument("--out", type=Path, default=OUT, help="the JSON-lines file to append to")
    parser.add_argument("--table", action="store_true", help="only print the table of --out")
    args = parser.parse_args()
    if args.table:
        print(table(args.out))
        return
    for dataset in args.datasets:
        for seed in args.seeds:
            rows = run(dataset, seed, args.cache)
            with args.out.open("a") as handle:
                handle.writelines(json.dumps(row) + "\n" for row in rows)
            for row in rows:
                print(row, flush=True)


if __name__ == "__main__":
    main()
