"""Would a differential-expression test choose K? Start pieces merged until neighbours differ.

Reads the start codes that ``auto_k.py`` saves (a fit stopped at the k-means start with
``n_types = 2 K``), cuts them into ``4 K`` k-means pieces and merges, on the codes'
15-nearest-neighbour graph, the neighbouring pair with the fewest differentially expressed
genes (log-normalised counts; ``|log2 FC| >= 1``, detected in >= 20 % of the higher piece's
cells, Welch ``|t| >= 5``) until every neighbouring pair has at least ``min_de`` such genes.
Rows (K reached and ARI / AMI for each ``min_de``) are appended to
``benchmarks/results/de_merge.jsonl``. Usage::

    python benchmarks/experiments/auto_k.py --seeds 0        # codes into /tmp/auto_k
    python benchmarks/experiments/de_merge.py --codes "/tmp/auto_k/*.npz"
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np
from scipy import sparse

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results" / "de_merge.jsonl"
THRESHOLDS = (2, 5, 10, 20, 40)


def log_normalised(x) -> sparse.csr_matrix:
    """``log1p(10^4 x / library)`` of a cells x genes count matrix."""
    x = sparse.csr_matrix(x, dtype=np.float64)
    x = sparse.diags(1e4 / np.asarray(x.sum(1)).ravel()) @ x
    x.data = np.log1p(x.data)
    return x.tocsr()


def piece_stats(x, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cells, sums, sums of squares and detections of every gene in every piece."""
    member = sparse.csr_matrix((np.ones(len(labels)), (np.arange(len(labels)), labels)))
    n = np.asarray(member.sum(0)).ravel()
    s1 = np.asarray((member.T @ x).todense())
    s2 = np.asarray((member.T @ x.multiply(x)).todense())
    detected = np.asarray((member.T @ (x > 0).astype(np.float64)).todense())
    return member, n, s1, s2, detected


def n_de(i: int, j: int, n, s1, s2, detected, lfc=1.0, frac=0.2, z=5.0) -> int:
    """Genes up in piece ``i`` or in piece ``j`` by the thresholds of the module docstring."""
    mean_i, mean_j = s1[i] / n[i], s1[j] / n[j]
    var_i = np.maximum(s2[i] / n[i] - mean_i**2, 1e-6)
    var_j = np.maximum(s2[j] / n[j] - mean_j**2, 1e-6)
    t = (mean_i - mean_j) / np.sqrt(var_i / n[i] + var_j / n[j])
    fold = (mean_i - mean_j) / np.log(2)
    up = (fold >= lfc) & (detected[i] / n[i] >= frac) & (t >= z)
    down = (fold <= -lfc) & (detected[j] / n[j] >= frac) & (t <= -z)
    return int(up.sum() + down.sum())


def de_merge(x, labels: np.ndarray, graph, thresholds=THRESHOLDS) -> dict[int, np.ndarray]:
    """The labels at which every neighbouring pair first has ``>= min_de`` DE genes."""
    labels, out = labels.copy(), {}
    while labels.max() > 0 and len(out) < len(thresholds):
        member, n, s1, s2, detected = piece_stats(x, labels)
        edges = (member.T @ graph @ member).toarray()
        np.fill_diagonal(edges, 0)
        pairs = np.argwhere(np.triu(edges > 0.3 * np.minimum.outer(n, n)))
        if len(pairs) == 0:
            break
        de = np.array([n_de(i, j, n, s1, s2, detected) for i, j in pairs])
        for threshold in thresholds:
            if threshold not in out and de.min() >= threshold:
                out[threshold] = labels.copy()
        i, j = pairs[de.argmin()]
        labels = np.unique(np.where(labels == j, i, labels), return_inverse=True)[1]
    return {t: out.get(t, labels) for t in thresholds}


def run(path: str) -> list[dict]:
    from sklearn.cluster import KMeans
    from sklearn.neighbors import kneighbors_graph

    sys.path.insert(0, str(HERE.parent))
    from clustering import DATASETS, load

    from cplmixvi.metrics import clustering_scores

    dataset, seed, k_max = Path(path).stem.rsplit("_", 2)
    adata = load(dataset)
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    codes = np.load(path)["codes"]
    joined = codes.transpose(1, 0, 2).reshape(codes.shape[1], -1)
    graph = kneighbors_graph(joined, 15)
    pieces = KMeans(2 * int(k_max), n_init=3, random_state=int(seed)).fit_predict(joined)
    rows = []
    for threshold, labels in de_merge(log_normalised(adata.X), pieces, graph + graph.T).items():
        scores = clustering_scores(truth, labels)
        rows.append(
            {
                "dataset": dataset,
                "seed": int(seed),
                "pieces": 2 * int(k_max),
                "min_de": threshold,
                "k": int(labels.max() + 1),
                "k_ref": DATASETS[dataset],
                "ari": scores["ari"],
                "ami": scores["ami"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--codes", default="/tmp/auto_k/*.npz")
    args = parser.parse_args()
    for path in sorted(glob.glob(args.codes)):
        with OUT.open("a") as handle:
            for row in run(path):
                print(row)
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
