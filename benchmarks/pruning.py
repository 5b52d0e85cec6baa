"""How many types: pruning from an upper bound of K on the four shared count sets.

For every dataset and seed two starts are pruned: ``2x`` (``n_types`` twice the reference
number of types, then ``train(prune=True)``'s defaults) and ``auto`` (``n_types="auto"``, the
one-call path: an upper bound from the number of cells). Each fit times its training and its
pruning separately, and scores the fused labels at the selected K (ACC, ARI, AMI, categories
holding cells). Baselines in the same table: scanpy's PCA + Leiden at its default resolution
1.0 (no K needed; its number of clusters is reported), and CplMixVI trained at the reference K
(the ``cplmixvi`` rows of ``clustering.csv``, same seeds). Every fit runs in a fresh process
with one torch thread and ``OMP_WAIT_POLICY=PASSIVE``.

Usage::

    python benchmarks/pruning.py                       # all sets, seeds 0 1 2, both starts
    python benchmarks/pruning.py --datasets pbmc_10x_4k --seeds 0 --starts auto --resume

Writes ``benchmarks/results/pruning.csv`` (one row per fit), ``pruning_rounds.csv`` (one row
per round), ``pruning.md`` and ``docs/figures/pruning_<dataset>.png`` (consensus against K of
every round, the selected and the reference K marked).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
from _env import finished_rows, in_fresh_processes, record, require_bench_extra  # noqa: E402
from clustering import DATASETS, load, mean_sd  # noqa: E402

STARTS = ("2x", "auto")
FIGURES = HERE.parent / "docs" / "figures"
SCORES = ["acc", "ari", "ami"]
CURVES = (("mean_agreement", "o-", "mean"), ("min_agreement", "s:", "least consistent"))


def run_pruned(name: str, start: str, seed: int) -> tuple[dict, list[dict]]:
    """Train from the upper bound of ``start``, prune, score; the fit's row and its rounds."""
    import scvi
    import torch

    torch.set_num_threads(1)
    from cplmixvi import CplMixVI
    from cplmixvi.metrics import clustering_scores

    adata = load(name)
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata)
    model = CplMixVI(adata, n_types="auto" if start == "auto" else 2 * DATASETS[name])
    quiet = {"accelerator": "cpu", "enable_progress_bar": False, "enable_model_summary": False}
    begin = time.perf_counter()
    model.train(prune=False, **quiet)
    trained = time.perf_counter()
    history = model.prune(**quiet)
    pruned = time.perf_counter()
    labels = model.get_type_assignments()["type"].to_numpy()
    row = {
        "dataset": name,
        "start": start,
        "seed": seed,
        "k_ref": DATASETS[name],
        "k_max": int(model.module.n_types),
        "k_selected": len(model.active_types),
        "n_clusters": len(np.unique(labels)),
        "rounds": len(history) - 1,
        **clustering_scores(truth, labels),
        "train_s": trained - begin,
        "prune_s": pruned - trained,
        "torch_threads": 1,
    }
    rounds = history.assign(dataset=name, start=start, seed=seed).to_dict("records")
    return row, rounds


def run_leiden(name: str, seed: int) -> tuple[dict, list[dict]]:
    """scanpy's PCA + Leiden at resolution 1.0 (no K given)."""
    import scanpy as sc
    from baselines import _neighbors, pca_embedding

    from cplmixvi.metrics import clustering_scores

    adata = load(name)
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    begin = time.perf_counter()
    embedding = pca_embedding(adata, seed)
    _neighbors(embedding, "X_pca", seed)
    sc.tl.leiden(embedding, resolution=1.0, random_state=seed, flavor="igraph", n_iterations=2)
    labels = embedding.obs["leiden"].astype(int).to_numpy()
    row = {
        "dataset": name,
        "start": "pca_leiden_res1",
        "seed": seed,
        "k_ref": DATASETS[name],
        "k_selected": len(np.unique(labels)),
        "n_clusters": len(np.unique(labels)),
        **clustering_scores(truth, labels),
        "train_s": time.perf_counter() - begin,
        "torch_threads": 1,
    }
    return row, []


def true_k_rows(seeds: list[int]) -> list[dict]:
    """CplMixVI at the reference K: the package defaults' rows of ``clustering.csv``."""
    table = pd.read_csv(HERE / "results" / "clustering.csv")
    table = table[(table["method"] == "cplmixvi") & table["seed"].isin(seeds)]
    return [
        {
            "dataset": r.dataset,
            "start": "true_k",
            "seed": r.seed,
            "k_ref": r.k,
            "k_selected": r.k,
            "n_clusters": r.n_clusters,
            **{s: getattr(r, s) for s in SCORES},
            "train_s": r.fit_s,
        }
        for r in table.itertuples()
    ]


def summarise(results: pd.DataFrame) -> str:
    """Mean +- s.d. over seeds per dataset and start, with the share of fits in +-25 %."""
    results = results.assign(
        within_25pct=(results["k_selected"] - results["k_ref"]).abs() <= 0.25 * results["k_ref"],
        prune_over_train=results["prune_s"] / results["train_s"],
    )
    cols = ["k_selected", *SCORES, "n_clusters"]
    table = mean_sd(results.groupby(["dataset", "start"]), cols)
    extra = results.groupby(["dataset", "start"]).agg(
        k_ref=("k_ref", "first"),
        k_max=("k_max", "first"),
        within_25pct=("within_25pct", "sum"),
        prune_over_train=("prune_over_train", "median"),
        train_s=("train_s", "median"),
        seeds=("seed", "count"),
    )
    table = table.join(extra.round({"prune_over_train": 3, "train_s": 0}))
    return table.reset_index().to_markdown(index=False)


def plot(rounds: pd.DataFrame, results: pd.DataFrame, name: str, path: Path) -> None:
    """Mean and least per-category agreement against K of every pruning round, per start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True, layout="constrained")
    for ax, start in zip(axes, STARTS, strict=True):
        runs = rounds[(rounds["dataset"] == name) & (rounds["start"] == start)]
        for seed, run in runs.groupby("seed"):
            for column, style, what in CURVES:
                ax.plot(
                    run["n_types"],
                    run[column],
                    style,
                    ms=3,
                    color=f"C{seed}",
                    label=f"seed {seed}: {what}",
                )
            chosen = results[
                (results["dataset"] == name)
                & (results["start"] == start)
                & (results["seed"] == seed)
            ]["k_selected"]
            ax.axvline(chosen.iloc[0], color=f"C{seed}", ls="--", lw=1)
        ax.axvline(
            DATASETS[name], color="k", lw=2, alpha=0.4, label=f"reference K = {DATASETS[name]}"
        )
        ax.axhline(0.5, color="0.5", ls=":", lw=1)
        ax.invert_xaxis()
        ax.set_xlabel("categories K (pruning proceeds to the right; dashed: selected)")
        ax.set_title(f"{name}, start {start}")
    axes[0].set_ylabel("agreement between arms")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize="x-small")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--starts", nargs="+", default=list(STARTS), choices=list(STARTS))
    parser.add_argument("--jobs", type=int, default=2, help="fits run side by side")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--figures", type=Path, default=FIGURES, help="where the figures go")
    parser.add_argument("--resume", action="store_true", help="keep the fits already in the csv")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    csv, rounds_csv = args.out / "pruning.csv", args.out / "pruning_rounds.csv"
    rows, done = finished_rows(csv, ("dataset", "start", "seed"), args.resume)
    rounds = pd.read_csv(rounds_csv, keep_default_na=False).to_dict("records") if rows else []
    jobs = [
        (run_leiden, (d, s))
        for s in args.seeds
        for d in args.datasets
        if (d, "pca_leiden_res1", s) not in done
    ]
    jobs += [
        (run_pruned, (d, start, s))
        for s in args.seeds
        for start in args.starts
        for d in args.datasets
        if (d, start, s) not in done
    ]
    for row, fit_rounds in in_fresh_processes(jobs, args.jobs):
        rounds.extend(fit_rounds)  # written before the fit's row: a resumed run finds both
        pd.DataFrame(rounds).to_csv(rounds_csv, index=False)
        record([row], rows, csv)
    results = pd.DataFrame(rows + true_k_rows(args.seeds))
    (args.out / "pruning.md").write_text(summarise(results) + "\n")
    args.figures.mkdir(parents=True, exist_ok=True)
    for name in sorted(set(pd.DataFrame(rounds)["dataset"])):
        plot(pd.DataFrame(rounds), results, name, args.figures / f"pruning_{name}.png")
    print(summarise(results))


if __name__ == "__main__":
    main()
