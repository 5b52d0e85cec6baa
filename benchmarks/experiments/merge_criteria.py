"""Which pairwise merge of k-means at 2K keeps small distinct types: modularity or boundary share.

On the cached joint codes of ``start_merges.py`` (one default pretraining per set and seed),
k-means at ``2K`` is merged to ``K`` by (a) the package's greedy modularity gain at resolution
0.4 and (b) the *boundary share* ``e_ij / min(d_i, d_j)``: the fraction of the smaller
cluster's graph edges that lead into the other. Pieces of one type share a large part of their
edges, a small distinct type a small part of its own, whatever the sizes. Rows (ACC / ARI /
AMI, categories, types found) go to ``benchmarks/results/merge_criteria.jsonl``. Usage::

    python benchmarks/experiments/merge_criteria.py --seeds 0 1 2
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
OUT = HERE.parent / "results" / "merge_criteria.jsonl"


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


def run(dataset: str, seed: int, cache: Path) -> list[dict]:
    from baselines import kmeans_labels
    from clustering import DATASETS
    from sklearn.neighbors import kneighbors_graph
    from start_merges import codes_at_start, scores

    from cplmixvi.model._type_init import modularity_merge

    k = DATASETS[dataset]
    codes, truth = codes_at_start(dataset, seed, cache)
    graph = kneighbors_graph(codes, 15)
    graph = graph + graph.T
    starts = {"kmeans K": kmeans_labels(codes, k, seed)}
    for factor in (2, 3):
        fine = kmeans_labels(codes, factor * k, seed)
        starts[f"{factor}K modularity 0.4"] = modularity_merge(graph, fine, k, 0.4)
        for power in (1.0, 0.5):
            starts[f"{factor}K share^{power:g}"] = share_merge(graph, fine, k, power)
    base = {"dataset": dataset, "seed": seed, "k": k}
    return [base | {"start": name} | scores(truth, labels) for name, labels in starts.items()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--datasets", nargs="+", default=["mop_10x", "pbmc_10x_4k", "worm_neuron", "mouse_bladder"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/cpl_start_codes"))
    args = parser.parse_args()
    for dataset in args.datasets:
        for seed in args.seeds:
            rows = run(dataset, seed, args.cache)
            with OUT.open("a") as handle:
                handle.writelines(json.dumps(row) + "\n" for row in rows)
            for row in rows:
                print(row, flush=True)


if __name__ == "__main__":
    main()
