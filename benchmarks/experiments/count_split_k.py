"""Would a count-split test choose K? Start pieces merged until held-out counts tell them apart.

Count splitting (Neufeld et al. 2022): every count is thinned binomially into two halves,
``X1`` and ``X2 = X - X1``, independent given the cell's expression under a Poisson model.
Clusters are found on ``X1`` only, so a test of ``X2`` between two clusters is not double
dipping. The premise screened here: pieces of one type differ in no gene beyond chance, two
types in many, and the evidence scales with sequencing depth (measured: pieces of a large type
differ too, ``results/count_split_k.md``).

One default CplMixVI fit per (dataset, seed) with ``n_types = 2 K`` is trained to the start
(``start_quality.codes_at_start``); the arms' clr codes of ``X1`` are cut into ``4 K``
k-means pieces and merged along the package's modularity order on their 15-nearest-neighbour
graph (:func:`~cplmixvi.model._type_init.modularity_merge`, one merge at a time). At each K the
statistic is the fewest genes that differ on ``X2`` (Welch ``|t| >= z`` on log-normalised
counts) between two clusters that share graph edges; the rows give, for each ``min_de``, the
largest K at which every such pair differs in at least ``min_de`` genes, and the ARI / AMI
there. Rows go to ``benchmarks/results/count_split_k.jsonl``. Usage::

    python benchmarks/experiments/count_split_k.py --seeds 0 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import append_jsonl, in_fresh_processes, write_lab_note  # noqa: E402
from start_quality import codes_at_start  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results" / "count_split_k.jsonl"
MIN_DE = (1, 2, 3, 5, 10, 20)
HEAD = (
    "Lab note (2026-12-08, `python benchmarks/experiments/count_split_k.py --seeds 0`, then"
    " `--table`): K reached / ARI when start pieces (4 K k-means clusters of the codes of the"
    " count-split half `X1`) are merged, in modularity order or fewest-DE-genes-first, until"
    " every pair of neighbouring clusters differs in at least `min_de` genes on the held-out"
    " half `X2` (Welch `|t| >= z`). Neither order lands near the reference K on every set at"
    " a good ARI: the test finds real differences between pieces of a large type (power grows"
    " with cells), and the modularity order joins MOp's small types first."
)
Z = (4.0, 6.0)


def thinned(x, seed: int):
    """``(X1, X2)``: each count of the sparse matrix ``x`` split binomially in halves."""
    import numpy as np
    from scipy import sparse

    x = sparse.csr_matrix(x)
    half = x.copy()
    half.data = (
        np.random.default_rng(seed).binomial(x.data.astype(np.int64), 0.5).astype(np.float32)
    )
    return half, (x - half).tocsr()


def membership(labels):
    """The cells x clusters indicator matrix of ``labels`` (sparse)."""
    import numpy as np
    from scipy import sparse

    return sparse.csr_matrix((np.ones(len(labels)), (np.arange(len(labels)), labels)))


def piece_moments(x, labels):
    """Cells, means and variances of log-normalised ``x`` in every cluster of ``labels``."""
    import numpy as np

    member = membership(labels)
    n = np.asarray(member.sum(0)).ravel()
    mean = np.asarray((member.T @ x).todense()) / n[:, None]
    var = np.asarray((member.T @ x.multiply(x)).todense()) / n[:, None] - mean**2
    return n, mean, np.maximum(var, 1e-8)


def log_normalised(x):
    """``log1p(10^4 x / library)`` of a sparse count matrix."""
    import numpy as np
    from scipy import sparse

    x = sparse.csr_matrix(x, dtype=np.float64)
    x = sparse.diags(1e4 / np.maximum(np.asarray(x.sum(1)).ravel(), 1)) @ x
    x.data = np.log1p(x.data)
    return x.tocsr()


def n_de(moments, pairs, z: float):
    """Genes with Welch ``|t| >= z`` between the clusters of each pair."""
    import numpy as np

    n, mean, var = moments
    i, j = pairs[:, 0], pairs[:, 1]
    t = (mean[i] - mean[j]) / np.sqrt(var[i] / n[i, None] + var[j] / n[j, None])
    return (np.abs(t) >= z).sum(1)


def adjacent_pairs(graph, labels):
    """Pairs ``(i, j)``, ``i < j``, of clusters that share edges of ``graph``."""
    import numpy as np

    member = membership(labels)
    edges = (member.T @ graph @ member).toarray()
    np.fill_diagonal(edges, 0)
    return np.argwhere(np.triu(edges > 0))


def paths(graph, pieces, x2, z: float):
    """Labels and statistic at every K, merging in modularity order or fewest-DE-genes order.

    The statistic at K is the fewest genes (Welch ``|t| >= z`` on ``x2``) by which two clusters
    sharing graph edges differ.
    """
    import numpy as np

    from cplmixvi.model._type_init import modularity_merge

    out = {"modularity": {}, "de": {}}
    for order in out:
        labels = pieces
        while True:
            k = labels.max() + 1
            pairs = adjacent_pairs(graph, labels)
            de = n_de(piece_moments(x2, labels), pairs, z) if len(pairs) else np.array([10**6])
            out[order][int(k)] = (int(de.min()), labels)
            if k == 1:
                break
            if order == "modularity":
                labels = modularity_merge(graph, labels, k - 1, 0.4)
            else:
                i, j = pairs[int(np.argmin(de))]
                labels = np.unique(np.where(labels == j, i, labels), return_inverse=True)[1]
    return out


def fit_to_start(dataset: str, seed: int, factor: float, cache: str) -> None:
    """Train a fit with ``n_types = factor K`` to the start; cache ``X1``'s codes and ``X2``."""
    import numpy as np
    import scvi
    import torch
    from scipy import sparse

    torch.set_num_threads(1)
    from clustering import DATASETS, load

    from cplmixvi import CplMixVI

    adata = load(dataset)
    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata)
    model = CplMixVI(adata, n_types=round(factor * DATASETS[dataset]))
    half = adata.copy()
    half.X, x2 = thinned(adata.X, seed)
    codes = codes_at_start(model, half)
    n_arms, n, width = codes.shape
    stem = Path(cache) / f"{dataset}_{seed}"
    np.save(f"{stem}_codes.npy", codes.transpose(1, 0, 2).reshape(n, n_arms * width))
    sparse.save_npz(f"{stem}_x2.npz", x2)


def run_one(dataset: str, seed: int, factor: float, cache: str) -> list[dict]:
    import numpy as np
    from clustering import DATASETS, load
    from scipy import sparse
    from sklearn.cluster import KMeans
    from sklearn.neighbors import kneighbors_graph

    from cplmixvi.metrics import clustering_scores

    stem = Path(cache) / f"{dataset}_{seed}"
    if not Path(f"{stem}_codes.npy").exists():
        fit_to_start(dataset, seed, factor, cache)
    joined = np.load(f"{stem}_codes.npy")
    x2 = log_normalised(sparse.load_npz(f"{stem}_x2.npz"))
    truth = load(dataset).obs["cell_type"].astype(str).to_numpy()
    k_ref = DATASETS[dataset]
    graph = kneighbors_graph(joined, 15)
    graph = graph + graph.T
    pieces = KMeans(4 * k_ref, n_init=3, random_state=seed).fit_predict(joined)
    base = {"dataset": dataset, "seed": seed, "k_ref": k_ref, "pieces": 4 * k_ref}
    rows = []
    for z in Z:
        for order, path in paths(graph, pieces, x2, z).items():
            curve = {k: value for k, (value, _) in sorted(path.items())}
            for min_de in MIN_DE:
                k_sel = max([k for k, value in curve.items() if value >= min_de] or [1])
                scores = clustering_scores(truth, path[k_sel][1])
                rows.append(base | {"order": order, "z": z, "min_de": min_de, "k": k_sel} | scores)
            rows.append(base | {"order": order, "z": z, "curve": curve})
    return rows


def table(path: Path = OUT) -> str:
    """Selected K / ARI per data set for each merge order, ``z`` and ``min_de`` (markdown)."""
    import pandas as pd

    rows = pd.read_json(path, lines=True)
    rows = rows[rows["min_de"].notna()].astype({"min_de": int})
    rows["cell"] = [f"{int(k)} / {ari:.3f}" for k, ari in zip(rows["k"], rows["ari"], strict=True)]
    rows["dataset"] = [
        f"{d} (ref {k})" for d, k in zip(rows["dataset"], rows["k_ref"], strict=True)
    ]
    wide = rows.pivot_table(
        index=["order", "z", "min_de"], columns="dataset", values="cell", aggfunc=", ".join
    )
    return wide.to_markdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--datasets", nargs="+", default=["mop_10x", "pbmc_10x_4k", "worm_neuron", "mouse_bladder"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--cache", default="/tmp/count_split_k")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--table", action="store_true", help="only write the table of the rows")
    args = parser.parse_args()
    if args.table:
        write_lab_note(OUT.with_suffix(".md"), HEAD, table())
        return
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    runs = [(d, s, args.factor, args.cache) for s in args.seeds for d in args.datasets]
    calls = [(run_one, run) for run in runs]
    append_jsonl(in_fresh_processes(calls, args.jobs, threads=1), OUT)


if __name__ == "__main__":
    main()
