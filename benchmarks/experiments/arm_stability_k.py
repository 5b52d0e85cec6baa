"""Would the arms' independent clusterings choose K? Per-arm merges and where they agree most.

The paper's premise: arms that see different copies of the cells agree on real types and
disagree on arbitrary cuts. The package's start gives both arms the same labels, so their
agreement cannot tell. Here each arm is clustered on its own: the start codes that
``auto_k.py`` saves (a fit with ``n_types = 2 K`` stopped at the start) of each arm are cut into
``4 K`` k-means pieces and merged along the package's modularity order on that arm's
15-nearest-neighbour graph; at every K the agreement (AMI) of the two arms' labels is measured.
Beside it, the modularity maximum: the joint codes' 2 K k-means pieces merged in the same order
on their joint graph, and the K at which the partition's modularity (resolution 0.5, 0.7, 1)
is highest. Rows (the K chosen and the ARI / AMI there, for each data set) are appended to
``benchmarks/results/arm_stability_k.jsonl``; ``--table`` writes ``arm_stability_k.md``. Usage::

    python benchmarks/experiments/auto_k.py --seeds 0 1        # codes into /tmp/auto_k
    python benchmarks/experiments/arm_stability_k.py --codes "/tmp/auto_k/*.npz"
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import append_jsonl, in_fresh_processes, write_lab_note  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results" / "arm_stability_k.jsonl"
RESOLUTIONS = (0.5, 0.7, 1.0)
HEAD = (
    "Lab note (2026-12-08; `python benchmarks/experiments/auto_k.py --seeds 0 1`, then"
    ' `python benchmarks/experiments/arm_stability_k.py --codes "/tmp/auto_k/*.npz"` and'
    " `--table`): each arm's start codes clustered on their own (4 K k-means pieces merged in"
    " modularity order on that arm's graph); the K at which the two arms' labels agree most"
    " (AMI), and the K of the highest modularity of the joint codes' merge path; K / ARI per seed"
    " (0, 1)."
)


def symmetric_graph(codes):
    """The codes' symmetrised 15-nearest-neighbour graph."""
    from sklearn.neighbors import kneighbors_graph

    graph = kneighbors_graph(codes, 15)
    return graph + graph.T


def merge_path(codes, graph, n_pieces: int, seed: int) -> dict:
    """Labels of ``codes`` at every K, from ``n_pieces`` k-means pieces merged down to 2 in
    modularity order on ``graph`` (their :func:`symmetric_graph`)."""
    from sklearn.cluster import KMeans

    from cplmixvi.model._type_init import modularity_merge

    labels = KMeans(n_pieces, n_init=3, random_state=seed).fit_predict(codes)
    path = {n_pieces: labels}
    for k in range(n_pieces - 1, 1, -1):
        labels = modularity_merge(graph, labels, k, 0.4)
        path[k] = labels
    return path


def modularity_peaks(joined, k_ref: int, seed: int, truth) -> list[dict]:
    """The K of highest modularity along the merge path of the joint codes, per resolution."""
    from start_choice import modularity

    from cplmixvi.metrics import clustering_scores

    graph = symmetric_graph(joined)
    path = merge_path(joined, graph, 2 * k_ref, seed)
    rows = []
    for resolution in RESOLUTIONS:
        best = max(path, key=lambda k: modularity(graph, path[k], resolution))
        scores = clustering_scores(truth, path[best])
        rows.append({"criterion": f"modularity {resolution}", "k": int(best)} | scores)
    return rows


def run_one(path: str) -> list[dict]:
    import numpy as np
    from clustering import DATASETS, load
    from sklearn.metrics import adjusted_mutual_info_score

    from cplmixvi.metrics import clustering_scores

    dataset, seed, _ = Path(path).stem.rsplit("_", 2)
    seed, k_ref = int(seed), DATASETS[dataset]
    codes = np.load(path)["codes"]
    paths = [merge_path(arm, symmetric_graph(arm), 4 * k_ref, seed) for arm in codes[:2]]
    agreement = {k: adjusted_mutual_info_score(paths[0][k], paths[1][k]) for k in paths[0]}
    k_best = max(agreement, key=agreement.get)
    truth = load(dataset).obs["cell_type"].astype(str).to_numpy()
    scores = clustering_scores(truth, paths[0][k_best])
    curve = {int(k): round(float(v), 3) for k, v in sorted(agreement.items())}
    base = {"dataset": dataset, "seed": seed, "k_ref": k_ref}
    agreed = {"criterion": "arm agreement", "k": int(k_best), "arms_ami": agreement[k_best]}
    joined = codes.transpose(1, 0, 2).reshape(codes.shape[1], -1)
    peaks = modularity_peaks(joined, k_ref, seed, truth)
    return [base | agreed | scores, base | {"curve": curve}] + [base | row for row in peaks]


def table(path: Path = OUT) -> str:
    """The K of highest arm agreement and the scores there, per data set and seed."""
    import pandas as pd

    rows = pd.read_json(path, lines=True)
    rows = rows[rows["k"].notna()].astype({"k": int}).sort_values("seed")
    rows["cell"] = [f"{k} / {ari:.3f}" for k, ari in zip(rows["k"], rows["ari"], strict=True)]
    rows["dataset"] = [
        f"{d} (ref {k})" for d, k in zip(rows["dataset"], rows["k_ref"], strict=True)
    ]
    wide = rows.pivot_table(
        index="criterion", columns="dataset", values="cell", aggfunc=", ".join, sort=False
    )
    return wide.to_markdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--codes", default="/tmp/auto_k/*.npz")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--table", action="store_true", help="only write the table of the rows")
    args = parser.parse_args()
    if args.table:
        write_lab_note(OUT.with_suffix(".md"), HEAD, table())
        return
    calls = [(run_one, (path,)) for path in sorted(glob.glob(args.codes))]
    append_jsonl(in_fresh_processes(calls, args.jobs, threads=1), OUT)


if __name__ == "__main__":
    main()
