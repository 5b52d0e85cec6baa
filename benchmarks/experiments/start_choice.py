"""Can the start be chosen among several merges by an unsupervised score?

Reads the start codes that ``auto_k.py --factor 1`` saves (default fits with ``n_types = K``
stopped at the start). For each, ``--draws`` k-means runs at 2 K clusters (one initialisation
each, other seeds) are merged to K as the package does (modularity on the codes'
15-nearest-neighbour graph, resolution 0.4); each merged start is scored against the reference
(ARI) and by an unsupervised criterion, its modularity on that graph (resolutions 0.4 and
1). Rows: the package's own start (k-means with
10 initialisations, the fit's seed) and, per criterion, the draw it would pick. Appended to
``benchmarks/results/start_choice.jsonl``; ``--table`` writes ``start_choice.md``. Usage::

    python benchmarks/experiments/auto_k.py --seeds 0 1 2 3 4 5 --factor 1 --codes-dir /tmp/start_k
    python benchmarks/experiments/start_choice.py --codes "/tmp/start_k/*.npz"
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import append_jsonl, in_fresh_processes, write_lab_note  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results" / "start_choice.jsonl"
HEAD = (
    "Lab note (2026-12-08; `python benchmarks/experiments/auto_k.py --seeds 0 1 2 3 4 5"
    " --factor 1 --codes-dir /tmp/start_k`, then `python benchmarks/experiments/start_choice.py"
    ' --codes "/tmp/start_k/*.npz"` and `--table`): mean start ARI over seeds of the package\'s'
    " start and of the merged start each unsupervised criterion picks among the draws."
)


def modularity(graph, labels, resolution: float) -> float:
    """Newman's modularity of ``labels`` on a symmetric graph at ``resolution``."""
    import numpy as np
    from scipy import sparse

    member = sparse.csr_matrix((np.ones(len(labels)), (np.arange(len(labels)), labels)))
    edges = (member.T @ graph @ member).toarray()
    total = edges.sum()
    degree = edges.sum(1)
    return float((np.trace(edges) - resolution * (degree**2).sum() / total) / total)


def run_one(path: str, draws: int) -> list[dict]:
    import numpy as np
    from clustering import load
    from sklearn.cluster import KMeans
    from sklearn.neighbors import kneighbors_graph

    from cplmixvi.metrics import clustering_scores
    from cplmixvi.model._type_init import modularity_merge

    dataset, seed, k = Path(path).stem.rsplit("_", 2)
    seed, k = int(seed), int(k)
    codes = np.load(path)["codes"]
    n_arms, n, width = codes.shape
    joined = codes.transpose(1, 0, 2).reshape(n, n_arms * width)
    graph = kneighbors_graph(joined, 15)
    graph = graph + graph.T
    truth = load(dataset).obs["cell_type"].astype(str).to_numpy()

    def start(random_state: int, n_init: int) -> dict:
        fine = KMeans(2 * k, n_init=n_init, random_state=random_state).fit_predict(joined)
        labels = modularity_merge(graph, fine, k, 0.4)
        return {
            "ari": clustering_scores(truth, labels)["ari"],
            "q0.4": modularity(graph, labels, 0.4),
            "q1": modularity(graph, labels, 1.0),
        }

    package = start(seed, 10)
    scored = [start(1000 * seed + draw, 1) for draw in range(draws)]
    base = {"dataset": dataset, "seed": seed, "k": k, "draws": draws}
    rows = [base | {"choice": "package"} | package]
    rows.append(
        base | {"choice": "mean of draws", "ari": float(np.mean([s["ari"] for s in scored]))}
    )
    for criterion in ("q0.4", "q1"):
        best = max(scored, key=lambda s: s[criterion])
        rows.append(base | {"choice": f"max {criterion}"} | best)
    return rows


def table(path: Path = OUT) -> str:
    """Mean start ARI per data set and choice (seeds as columns counted)."""
    import pandas as pd

    rows = pd.read_json(path, lines=True)
    wide = rows.pivot_table(index="choice", columns="dataset", values="ari", aggfunc="mean")
    wide["all"] = wide.mean(axis=1)
    return wide.to_markdown(floatfmt=".3f")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--codes", default="/tmp/start_k/*.npz")
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--table", action="store_true", help="only write the table of the rows")
    args = parser.parse_args()
    if args.table:
        write_lab_note(OUT.with_suffix(".md"), HEAD, table())
        return
    calls = [(run_one, (path, args.draws)) for path in sorted(glob.glob(args.codes))]
    append_jsonl(in_fresh_processes(calls, args.jobs, threads=1), OUT)


if __name__ == "__main__":
    main()
