"""Does another pretraining give better codes at the start? (PBMC's gap, 2026-12-07.)

One CplMixVI fit per (dataset, seed, lever) is stopped at the start, right after the default
pretraining; its arms' joint clr codes are clustered as the package does (k-means at 2K merged
to K by modularity, ``2K merged``) and by k-means at K, and scored against the labels. Levers
change the model's constructor arguments: ``default``; ``kpre32``, 32 pretraining categories
instead of K (a wider code, still merged to K); ``aug_none`` and ``aug_thinning``, no
augmentation or thinning alone instead of thinning + gene dropout; ``arms3``, three arms
instead of two. Rows go to
``benchmarks/results/start_pretraining.jsonl``. Usage::

    python benchmarks/experiments/start_pretraining.py --datasets pbmc_10x_4k mouse_bladder \
        --levers default kpre32 aug_none aug_thinning --seeds 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import append_jsonl, in_fresh_processes  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results" / "start_pretraining.jsonl"
LEVERS = {
    "default": {},
    "kpre32": {"n_types": 32},
    "aug_none": {"augmentation": "none"},
    "aug_thinning": {"augmentation": "thinning"},
    "arms3": {"n_arms": 3},
}


def run_one(dataset: str, seed: int, lever: str) -> list[dict]:
    """Pretrain with the lever's arguments and score the two clusterings of the start codes."""
    import scvi
    import torch

    torch.set_num_threads(1)
    from baselines import kmeans_labels
    from clustering import DATASETS, load
    from sklearn.neighbors import kneighbors_graph
    from start_merges import scores
    from start_quality import _Stop, train_to_start

    from cplmixvi import CplMixVI
    from cplmixvi.model._type_init import joint_codes, modularity_merge

    k = DATASETS[dataset]
    adata = load(dataset)
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata)
    model = CplMixVI(adata, **({"n_types": k} | LEVERS[lever]))
    captured = {}

    def capture(m, *args, **kwargs):
        codes = joint_codes(m)
        captured["codes"] = codes.transpose(1, 0, 2).reshape(codes.shape[1], -1)
        raise _Stop

    train_to_start(model, capture)
    codes = captured["codes"]
    graph = kneighbors_graph(codes, 15)
    starts = {
        "kmeans K": kmeans_labels(codes, k, seed),
        "2K merged": modularity_merge(graph + graph.T, kmeans_labels(codes, 2 * k, seed), k, 0.4),
    }
    base = {"dataset": dataset, "seed": seed, "lever": lever}
    return [base | {"start": name} | scores(truth, labels) for name, labels in starts.items()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["pbmc_10x_4k", "mouse_bladder"])
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    runs = [(d, s, lever) for d in args.datasets for s in args.seeds for lever in args.levers]
    calls = [(run_one, run) for run in runs]
    append_jsonl(in_fresh_processes(calls, args.jobs, threads=1), OUT)


if __name__ == "__main__":
    main()
