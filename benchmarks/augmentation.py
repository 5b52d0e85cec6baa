"""Which augmentation on counts: none, thinning, dropout, both, and the generative augmenter.

On ``mop_10x`` (K = 44), 2-arm CplMixVI with package defaults otherwise, seeds 0 1 2, one fresh
process per fit, 1 torch thread, ``OMP_WAIT_POLICY=PASSIVE``. The generative augmenter is fitted
in the same process as the model it augments (its fit time is reported apart). Each row also
has the model's wall time per epoch and the augmenter's own time on one minibatch of 256 cells
x 2 arms (median of 30 calls), measured in the same run. Writes
``benchmarks/results/augmentation.csv`` and ``augmentation.md``.

Usage::

    python benchmarks/augmentation.py [--seeds 0 1 2] [--threads 1] [--resume]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
from _env import DATA, finished_rows, in_fresh_processes, record, require_bench_extra  # noqa: E402
from clustering import mean_sd  # noqa: E402

MOP = DATA / "mop_10x.h5ad"
K = 44
AUGMENTATIONS = ("none", "thinning", "dropout", "thinning+dropout", "generative")
GENERATIVE_EPOCHS = 15


def augmenter_seconds(augmenter, x, n_arms: int = 2, repeats: int = 30) -> float:
    """Median wall time of one call of ``augmenter`` on the minibatch ``x``."""
    import torch

    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            augmenter(x, n_arms)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_one(augmentation: str, seed: int, threads: int) -> dict:
    """Fit one model in this (fresh) process and score its fused labels."""
    import anndata as ad
    import scanpy as sc
    import scvi
    import torch

    from cplmixvi import CplMixVI, GenerativeAugmenter
    from cplmixvi.augment import get_augmenter
    from cplmixvi.metrics import clustering_scores

    torch.set_num_threads(threads)
    adata = ad.read_h5ad(MOP)
    sc.pp.filter_cells(adata, min_counts=1)
    scvi.settings.seed = seed
    extra: dict = {"augmenter_fit_s": 0.0}
    spec = augmentation
    if augmentation == "generative":
        GenerativeAugmenter.setup_anndata(adata, layer="counts")
        gen = GenerativeAugmenter(adata)
        start = time.perf_counter()
        gen.train(
            max_epochs=GENERATIVE_EPOCHS,
            accelerator="cpu",
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        extra["augmenter_fit_s"] = time.perf_counter() - start
        spec = gen.as_augmenter()
    augmenter = get_augmenter(spec, "nb", 2)
    batch = torch.as_tensor(adata.layers["counts"][:256].toarray(), dtype=torch.float32)
    extra["augment_ms_per_batch"] = 1e3 * augmenter_seconds(augmenter, batch)
    CplMixVI.setup_anndata(adata, layer="counts")
    model = CplMixVI(adata, n_types=K, n_arms=2, augmentation=augmenter)
    start = time.perf_counter()
    model.train(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    seconds = time.perf_counter() - start
    epochs = len(model.history["elbo_train"])
    labels = model.get_type_assignments()["type"].astype(str).to_numpy()
    scores = clustering_scores(adata.obs["cell_type"].astype(str), pd.Series(labels))
    return {
        "augmentation": augmentation,
        "seed": seed,
        **scores,
        "n_clusters": int(pd.Series(labels).nunique()),
        "epochs": epochs,
        "train_s": seconds,
        "s_per_epoch": seconds / epochs,
        "torch_threads": threads,
        "arm_agreement": float(model.history["arm_agreement_train"].iloc[-1, 0]),
        **extra,
    }


def summarise(results: pd.DataFrame) -> str:
    """Markdown: mean +- s.d. of the scores and median times per augmentation."""
    order = {name: i for i, name in enumerate(AUGMENTATIONS)}
    results = results.sort_values("augmentation", key=lambda col: col.map(order))
    grouped = results.groupby("augmentation", sort=False)
    cols = ["acc", "ari", "ami", "n_clusters"]
    table = mean_sd(grouped, cols)
    table["seeds"] = grouped.size()
    times = grouped[["s_per_epoch", "augment_ms_per_batch", "augmenter_fit_s"]].median()
    base = times.loc["none", "s_per_epoch"] if "none" in times.index else np.nan
    table["s/epoch (median)"] = times["s_per_epoch"].map("{:.2f}".format)
    table["x none"] = (times["s_per_epoch"] / base).map("{:.2f}".format)
    table["augment ms/batch (median)"] = times["augment_ms_per_batch"].map("{:.2f}".format)
    table["augmenter fit s (median)"] = times["augmenter_fit_s"].map("{:.0f}".format)
    return table.reset_index().to_markdown(index=False)


def main(argv: list[str] | None = None) -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--augmentations", nargs="+", default=list(AUGMENTATIONS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--resume", action="store_true", help="keep rows already in the csv")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "augmentation.csv"
    rows, done = finished_rows(csv, ("augmentation", "seed"), args.resume)
    calls = [
        (run_one, (augmentation, seed, args.threads))
        for seed in args.seeds
        for augmentation in args.augmentations
        if (augmentation, seed) not in done
    ]
    record(in_fresh_processes(calls), rows, csv)
    results = pd.DataFrame(rows)
    (args.out / "augmentation.md").write_text(summarise(results) + "\n")
    print(summarise(results))


if __name__ == "__main__":
    main()
