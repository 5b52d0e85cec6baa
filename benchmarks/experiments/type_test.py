"""Can a test on the data merge the categories that pruning keeps but the taxonomy does not?

Stage 1 (``--fit``): one CplMixVI fit per (dataset, start, seed) with ``n_types`` twice the
reference number (``2x``) or ``"auto"``, package defaults, ``prune=False``, saved to
``--models`` (not committed).

Stage 2 (default): each saved model is pruned with the package's ``prune()``; then, for each
threshold, rounds merge neighbouring categories without a density valley between them
(``valleys.py``: the smaller of each pair is removed, its cells go to their next category) and
pruning runs again, until no pair is merged. K and ACC / ARI / AMI per threshold (0: pruning
alone) are appended to ``benchmarks/results/type_test.jsonl``; ``--table`` writes
``type_test.md``. Usage::

    python benchmarks/experiments/type_test.py --fit --jobs 1
    python benchmarks/experiments/type_test.py --jobs 2
    python benchmarks/experiments/type_test.py --table
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import append_jsonl, in_fresh_processes, require_bench_extra  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results" / "type_test.jsonl"
QUIET = {"accelerator": "cpu", "enable_progress_bar": False, "enable_model_summary": False}
SETS = ["mop_10x", "pbmc_10x_4k", "worm_neuron", "mouse_bladder"]
#: valley ratios from which two categories merge (0: pruning alone)
THRESHOLDS = (0.0, 0.95, 0.9, 0.8)


def fit_one(dataset: str, start: str, seed: int, models: str) -> list[dict]:
    """Fit a model from an upper bound of categories, without pruning, and save it."""
    import scvi
    import torch

    torch.set_num_threads(1)
    from clustering import DATASETS, load

    from cplmixvi import CplMixVI

    adata = load(dataset)
    path = Path(models) / f"{dataset}_{start}_{seed}"
    if not path.exists():
        CplMixVI.setup_anndata(adata)
        scvi.settings.seed = seed
        n_types = 2 * DATASETS[dataset] if start == "2x" else "auto"
        model = CplMixVI(adata, n_types=n_types)
        model.train(prune=False, **QUIET)
        model.save(str(path), overwrite=True)
    return [{"dataset": dataset, "start": start, "seed": seed, "saved": str(path)}]


def merge_one(dataset: str, start: str, seed: int, models: str) -> list[dict]:
    """Prune a saved model, then merge without valleys at every threshold of ``THRESHOLDS``."""
    import time

    import numpy as np
    import scvi
    import torch
    from scvi import REGISTRY_KEYS

    torch.set_num_threads(1)
    from clustering import DATASETS, load
    from valleys import valley_merges

    from cplmixvi import CplMixVI
    from cplmixvi.metrics import clustering_scores, fuse

    adata = load(dataset)
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    CplMixVI.setup_anndata(adata)
    rows = []
    for threshold in THRESHOLDS:
        scvi.settings.seed = seed
        model = CplMixVI.load(str(Path(models) / f"{dataset}_{start}_{seed}"), adata)
        expression = model.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)
        began, rounds, ratios = time.perf_counter(), 0, {}
        model.prune(**QUIET)
        while threshold:
            probs = model.get_type_probabilities(per_arm=True, batch_size=1024)
            fused = fuse(np.log(np.maximum(probs, np.finfo(probs.dtype).tiny)))
            removed, _ = valley_merges(expression, fused, threshold, True, ratios)
            removed = removed[: len(model.active_types) - 2]
            if not removed:
                break
            model.module.remove_types(removed)
            model.prune(**QUIET)
            rounds += 1
        labels = model.get_type_assignments(batch_size=1024)["type"].to_numpy()
        row = {"dataset": dataset, "start": start, "seed": seed, "threshold": threshold}
        row.update(k_ref=DATASETS[dataset], k=len(model.active_types), merge_rounds=rounds)
        row.update(seconds=round(time.perf_counter() - began, 1))
        row.update(clustering_scores(truth, labels))
        rows.append(row)
    return rows


def table() -> str:
    """Means over seeds per (dataset, start, threshold), and the K of every seed."""
    import pandas as pd

    rows = pd.read_json(OUT, lines=True).round({"threshold": 2})
    rows["within_25pct"] = (rows["k"] - rows["k_ref"]).abs() <= 0.25 * rows["k_ref"]
    keys = ["dataset", "start", "threshold"]
    out = rows.groupby(keys).agg(
        k=("k", lambda k: ", ".join(map(str, k))),
        within_25pct=("within_25pct", "sum"),
        acc=("acc", "mean"),
        ari=("ari", "mean"),
        ami=("ami", "mean"),
        seeds=("seed", "count"),
    )
    overall = rows.groupby("threshold")[["acc", "ari", "ami", "within_25pct"]].agg(["mean", "sum"])
    return out.round(3).to_markdown() + "\n\nOver all fits:\n\n" + overall.round(3).to_markdown()


def main() -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=SETS)
    parser.add_argument("--starts", nargs="+", default=["2x", "auto"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--models", default="/tmp/prune_models")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    if args.table:
        OUT.with_suffix(".md").write_text(table() + "\n")
        return
    Path(args.models).mkdir(parents=True, exist_ok=True)
    stage, out = ("fit", Path(args.models) / "fits.jsonl") if args.fit else ("merge", OUT)
    one = fit_one if args.fit else merge_one
    calls = [
        (one, (d, start, s, args.models))
        for start in args.starts
        for s in args.seeds
        for d in args.datasets
    ]
    append_jsonl(in_fresh_processes(calls, args.jobs, threads=1), out)


if __name__ == "__main__":
    main()
