"""Issue 4: choosing K by category pruning on MOp, against training directly at K = 44.

From an upper bound K = 60 (2 arms, package defaults, default epochs), ``model.prune`` removes
one category per round (empty ones first, then the least consistent between the arms) and
fine-tunes ``--epochs-per-round`` epochs, until every category's agreement passes
``--threshold`` or ``--min-types`` is reached. After every round the fused labels are scored
against the 44 reference types. K is then chosen from the consensus curve with
:func:`cplmixvi.tl.select_n_types`, and the scores at that K are compared with 2-arm fits at
K = 44: the ``n_arms = 2`` rows of ``benchmarks/results/arms.csv`` (``benchmarks/arms.py``, same
defaults and seeds; ``--fit-direct`` fits those missing). Every fit runs in a fresh process
with one torch thread.

Usage::

    python benchmarks/pruning.py                   # seeds 0 1 2
    python benchmarks/pruning.py --seeds 0 --min-types 20 --out benchmarks/results/pruning_min20

Writes ``benchmarks/results/pruning.csv`` (one row per fit), ``pruning_rounds.csv`` (one row
per round), ``pruning_types.csv`` (agreement of every category in every round),
``pruning.md`` and ``pruning.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from arms import TRAIN, run_one, scores_of  # noqa: E402
from clustering import mean_sd  # noqa: E402

SCORE_COLS = ["acc", "ari", "ami", "nmi", "n_clusters"]


def run_pruned(
    seed: int, threads: int, k_start: int, threshold: float, min_types: int, epochs_per_round: int
) -> tuple[list[dict], pd.DataFrame]:
    """Train at ``k_start``, prune one category per round, score the labels of every round."""
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    import scvi
    import torch

    torch.set_num_threads(threads)
    from clustering import load

    from cplmixvi import CplMixVI

    adata = load("mop_10x")
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata, layer="counts")
    model = CplMixVI(adata, n_types=k_start, n_arms=2)
    start = time.perf_counter()
    model.train(**TRAIN)
    train_s = time.perf_counter() - start
    scores = [scores_of(model, truth)]
    while True:
        history = model.prune(threshold, min_types, epochs_per_round, max_rounds=1, **TRAIN)
        if len(history) > len(scores):  # a category was removed and the model fine-tuned
            scores.append(scores_of(model, truth))
        if history["reason"].iloc[-1] != "stop: max_rounds reached":
            break
    prune_s = time.perf_counter() - start - train_s
    rounds = [
        {"seed": seed, "k_start": k_start, **hist, **{col: sc[col] for col in SCORE_COLS}}
        for hist, sc in zip(history.to_dict("records"), scores, strict=True)
    ]
    for row in rounds:
        row.update({"train_s": train_s, "prune_s": prune_s, "torch_threads": threads})
    types = model.pruning_agreement_.stack().rename("agreement").reset_index()
    return rounds, types.assign(seed=seed)


def pruned_rows(rounds: pd.DataFrame, threshold: float, criterion: str) -> list[dict]:
    """Per seed: K chosen by :func:`cplmixvi.tl.select_n_types` and the scores at that K; then
    the scores at the start (round 0, before any removal)."""
    from cplmixvi import tl

    rows, start_rows = [], []
    for seed, hist in rounds.groupby("seed"):
        first = hist.iloc[0]
        start_rows.append(
            {
                "method": f"K={first['n_types']} before pruning",
                "seed": seed,
                "selected_k": first["n_types"],
                "final_k": first["n_types"],
                **{col: first[col] for col in ["mean_agreement", "min_agreement", *SCORE_COLS]},
                "train_s": first["train_s"],
                "torch_threads": first["torch_threads"],
            }
        )
        selected = tl.select_n_types(hist, threshold=threshold, criterion=criterion)
        at = hist[hist["n_types"] == selected].iloc[0]
        final = hist.iloc[-1]
        rows.append(
            {
                "method": f"pruned from K={hist['k_start'].iloc[0]}",
                "seed": seed,
                "selected_k": selected,
                "final_k": final["n_types"],
                "stop": final["reason"],
                **{col: at[col] for col in ["mean_agreement", "min_agreement", *SCORE_COLS]},
                **{f"final_{col}": final[col] for col in ["mean_agreement", "acc", "ari"]},
                "start_acc": hist["acc"].iloc[0],
                "start_ari": hist["ari"].iloc[0],
                "rounds": len(hist) - 1,
                "train_s": final["train_s"],
                "prune_s": final["prune_s"],
                "torch_threads": final["torch_threads"],
            }
        )
    return rows + start_rows


def fit_direct(seeds: list[int], threads: int, csv: Path) -> None:
    """Add the 2-arm K = 44 fits missing from ``arms.csv`` (as ``benchmarks/arms.py`` would)."""
    ctx = get_context("spawn")
    for seed in seeds:
        arms = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=["n_arms", "seed"])
        if ((arms["n_arms"] == 2) & (arms["seed"] == seed)).any():
            continue
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            row = pool.submit(run_one, 2, seed, threads).result()
        pd.concat([arms, pd.DataFrame([row])], ignore_index=True).to_csv(csv, index=False)


def direct_rows(seeds: list[int], csv: Path) -> list[dict]:
    """The 2-arm fits at K = 44 of ``arms.csv`` for these seeds."""
    if not csv.exists():
        return []
    arms = pd.read_csv(csv)
    two = arms[(arms["n_arms"] == 2) & arms["seed"].isin(seeds)]
    return [
        {
            "method": "direct K=44",
            "seed": int(r["seed"]),
            "selected_k": 44,
            "final_k": 44,
            "mean_agreement": r["mean_agreement"],
            "min_agreement": np.nan,
            **{col: r[col] for col in SCORE_COLS},
            "train_s": r["train_s"],
            "torch_threads": r["torch_threads"],
        }
        for r in two.to_dict("records")
    ]


def summarise(results: pd.DataFrame) -> str:
    """Markdown: mean +- s.d. over seeds per method."""
    cols = ["selected_k", "mean_agreement", "min_agreement", "acc", "ari", "ami", "n_clusters"]
    grouped = results.groupby("method", sort=False)
    table = mean_sd(grouped, cols)
    table["seeds"] = grouped.size()
    return table.reset_index().to_markdown(index=False)


def plot(
    rounds: pd.DataFrame, types: pd.DataFrame, results: pd.DataFrame, threshold: float, path: Path
) -> None:
    """Per seed the consensus curve (``cplmixvi.pl.pruning_curve``); then ACC against K."""
    from matplotlib.figure import Figure

    from cplmixvi import pl

    seeds = sorted(rounds["seed"].unique())
    fig = Figure(figsize=(5 * (len(seeds) + 1), 4))
    axes = fig.subplots(1, len(seeds) + 1, squeeze=False)[0]
    pruned = results[results["method"].str.startswith("pruned")].set_index("seed")
    for ax, seed in zip(axes, seeds, strict=False):
        hist = rounds[rounds["seed"] == seed]
        wide = types[types["seed"] == seed].pivot(index="round", columns="type", values="agreement")
        pl.pruning_curve(
            hist,
            threshold=threshold,
            selected=int(pruned.loc[seed, "selected_k"]),
            agreement=wide,
            ax=ax,
            show=False,
        )
        ax.set_title(f"seed {seed}: consensus of the 2 arms")
    ax = axes[-1]
    direct = results[results["method"] == "direct K=44"]
    for i, seed in enumerate(seeds):
        hist = rounds[rounds["seed"] == seed]
        ax.plot(hist["n_types"], hist["acc"], color=f"C{i}", label=f"pruned, seed {seed}")
        ax.plot(hist["n_types"], hist["ari"], color=f"C{i}", ls=":", lw=1)
        acc = direct.loc[direct["seed"] == seed, "acc"].to_numpy()
        ax.scatter([44] * len(acc), acc, color=f"C{i}", marker="*", s=80, zorder=3)
    ax.scatter([], [], color="k", marker="*", label="direct K=44 (ACC)")
    ax.plot([], [], color="k", ls=":", label="ARI")
    ax.invert_xaxis()
    ax.set_xlabel("number of types K")
    ax.set_ylabel("score vs 44 reference types")
    ax.set_title("ACC (solid) and ARI (dotted) along pruning")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _kept(paths: dict, seeds: list[int]) -> tuple[list[dict], list[pd.DataFrame]]:
    """Rounds and category tables of earlier runs for other seeds (they are not rerun)."""
    if not paths["pruning_rounds"].exists():
        return [], []
    rounds = pd.read_csv(paths["pruning_rounds"])
    types = pd.read_csv(paths["pruning_types"])
    return (
        rounds[~rounds["seed"].isin(seeds)].to_dict("records"),
        [types[~types["seed"].isin(seeds)]],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--k-start", type=int, default=60)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--min-types", type=int, default=5)
    parser.add_argument("--epochs-per-round", type=int, default=2)
    parser.add_argument("--criterion", default="min", choices=["min", "mean"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--arms-csv", type=Path, default=HERE / "results" / "arms.csv")
    parser.add_argument(
        "--fit-direct", action="store_true", help="fit the K = 44 fits missing from arms.csv"
    )
    parser.add_argument(
        "--plot-only", action="store_true", help="summarise and plot the csv files again"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = {
        name: args.out / f"{name}.csv" for name in ("pruning", "pruning_rounds", "pruning_types")
    }
    if not args.plot_only:
        all_rounds, all_types = _kept(paths, args.seeds)
        ctx = get_context("spawn")
        for seed in args.seeds:
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                rounds, types = pool.submit(
                    run_pruned,
                    seed,
                    args.threads,
                    args.k_start,
                    args.threshold,
                    args.min_types,
                    args.epochs_per_round,
                ).result()
            all_rounds.extend(rounds)
            all_types.append(types)
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rounds[-1].items()})
            pd.DataFrame(all_rounds).to_csv(paths["pruning_rounds"], index=False)
            pd.concat(all_types).to_csv(paths["pruning_types"], index=False)
        if args.fit_direct:
            fit_direct(args.seeds, args.threads, args.arms_csv)
    rounds, types = pd.read_csv(paths["pruning_rounds"]), pd.read_csv(paths["pruning_types"])
    seeds = sorted(rounds["seed"].unique())
    results = pd.DataFrame(
        pruned_rows(rounds, args.threshold, args.criterion) + direct_rows(seeds, args.arms_csv)
    )
    results.to_csv(paths["pruning"], index=False)
    (args.out / "pruning.md").write_text(summarise(results) + "\n")
    plot(rounds, types, results, args.threshold, args.out / "pruning.png")
    print(summarise(results))


if __name__ == "__main__":
    main()
