"""Issue 4, paper Fig. 3c: clustering accuracy against the number of coupled arms on MOp.

CplMixVI with package defaults (NB on raw counts, binomial thinning, default epochs) and
K = 44 (the number of reference types) for A = 1, 2, 3, 5 arms. Every fit runs in a fresh
process with ``OMP_WAIT_POLICY=PASSIVE`` and one torch thread. Reported per fit: ACC/ARI/AMI/NMI
of the fused label, the ACC of each arm's own argmax averaged over arms (what the paper
reports), the number of categories used, the mean per-category agreement between arms
(:func:`cplmixvi.tl.category_agreement`) and the fraction of cells on which all arms agree.

Usage::

    python benchmarks/arms.py                 # A = 1 2 3 5, seeds 0 1 2
    python benchmarks/arms.py --arms 2 --seeds 0 --resume

Writes ``benchmarks/results/arms.csv``, ``arms.md`` and ``arms.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
from _env import finished_rows, in_fresh_processes, record, require_bench_extra  # noqa: E402
from clustering import mean_sd  # noqa: E402

N_TYPES = 44
TRAIN = {"accelerator": "cpu", "enable_progress_bar": False, "enable_model_summary": False}


def scores_of(model, labels_true) -> dict:
    """Scores of the fused label, per-arm ACC and the arms' agreement, on every cell."""
    from cplmixvi import tl
    from cplmixvi.metrics import clustering_scores, hungarian_accuracy

    probs = model.get_type_probabilities(per_arm=True)
    fused = tl.consensus(probs)["type"].to_numpy()
    arm_labels = probs.argmax(-1)
    out = clustering_scores(labels_true, fused.astype(str))
    out["arm_acc"] = float(np.mean([hungarian_accuracy(labels_true, arm) for arm in arm_labels]))
    out["n_clusters"] = int(len(np.unique(fused)))
    out["n_types"] = int(len(model.active_types))
    out["all_arms_agree"] = float((arm_labels == arm_labels[0]).all(axis=0).mean())
    # the same partition under other ids? agreement of arm 0 with each arm after matching
    out["matched_agreement"] = float(
        np.mean([hungarian_accuracy(arm_labels[0], arm) for arm in arm_labels[1:]])
        if len(arm_labels) > 1
        else 1.0
    )
    if len(probs) > 1:
        table = tl.category_agreement(probs, types=model.active_types)
        out["mean_agreement"] = float(table["agreement"].mean())
        used = table[table["n_cells"] > 0]
        out["mean_agreement_used"] = float(used["agreement"].mean())
    return out


def run_one(n_arms: int, seed: int, threads: int, n_types: int = N_TYPES) -> dict:
    """One default fit in this (fresh) process."""
    import scvi
    import torch

    torch.set_num_threads(threads)
    from clustering import load

    from cplmixvi import CplMixVI

    adata = load("mop_10x")
    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata, layer="counts")
    model = CplMixVI(adata, n_types=n_types, n_arms=n_arms)
    start = time.perf_counter()
    model.train(**TRAIN)
    seconds = time.perf_counter() - start
    row = {"n_arms": n_arms, "seed": seed, "k": n_types, "n_cells": adata.n_obs}
    row.update(scores_of(model, adata.obs["cell_type"].astype(str).to_numpy()))
    row.update(
        {"epochs": len(model.history["elbo_train"]), "train_s": seconds, "torch_threads": threads}
    )
    return row


def summarise(results: pd.DataFrame) -> str:
    """Markdown: mean +- s.d. over seeds per number of arms."""
    cols = [
        "acc",
        "arm_acc",
        "ari",
        "ami",
        "n_clusters",
        "mean_agreement_used",
        "all_arms_agree",
        "matched_agreement",
    ]
    grouped = results.groupby("n_arms")
    table = mean_sd(grouped, cols)
    table["seeds"] = grouped.size()
    table["train s (median)"] = grouped["train_s"].median().map("{:.0f}".format)
    return table.reset_index().to_markdown(index=False)


def plot(results: pd.DataFrame, path: Path) -> None:
    """ACC (fused and per arm) against the number of arms, seeds as points."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    grouped = results.groupby("n_arms")
    for col, label, color in [("acc", "fused label", "C0"), ("arm_acc", "mean over arms", "C1")]:
        mean, std = grouped[col].mean(), grouped[col].std().fillna(0)
        ax.errorbar(mean.index, mean, yerr=std, marker="o", capsize=3, color=color, label=label)
        ax.scatter(results["n_arms"], results[col], s=10, color=color, alpha=0.4)
    ax.set_xticks(sorted(results["n_arms"].unique()))
    ax.set_xlabel("number of arms A")
    ax.set_ylabel("ACC (Hungarian) vs 44 reference types")
    ax.set_title("MOp 10x, K = 44, mean ± s.d. over seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", type=int, default=[1, 2, 3, 5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--resume", action="store_true", help="keep the rows already in the csv")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "arms.csv"
    rows, done = finished_rows(csv, ("n_arms", "seed"), args.resume)
    calls = [
        (run_one, (n_arms, seed, args.threads))
        for seed in args.seeds
        for n_arms in args.arms
        if (n_arms, seed) not in done
    ]
    record(in_fresh_processes(calls), rows, csv)
    results = pd.DataFrame(rows)
    (args.out / "arms.md").write_text(summarise(results) + "\n")
    plot(results, args.out / "arms.png")
    print(summarise(results))


if __name__ == "__main__":
    main()
