"""Does the fast path cluster as well? Eager fp32 against compiled bf16-mixed training on MOp.

Trains the reference configuration of ``throughput.py`` (log-CPM, Gaussian, 2 arms, K = 44,
batch 1 000, 4 x 100 hidden) per seed, once eagerly in float32 (the default) and once with
``train(compile=True, precision="bf16-mixed")``, each in a fresh process with 1 torch thread,
and scores the fused types against ``obs["cell_type"]`` (ACC, ARI, AMI). Results go to
``benchmarks/results/fast_accuracy.{csv,md}``: mean +- s.d. over seeds, with the training time.

Usage::

    python benchmarks/fast_accuracy.py [--epochs 60] [--seeds 0 1 2] [--jobs 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

from _env import cold_compile_env, in_fresh_processes, record  # noqa: E402
from throughput import CONFIGS, load_mop  # noqa: E402

VARIANTS = ("reference A=2", "reference A=2 compiled bf16-mixed")


def run_child(config: str, seed: int, epochs: int) -> dict:
    """Train one variant in this process; return its scores and training time."""
    import scvi
    import torch

    from cplmixvi import CplMixVI
    from cplmixvi.metrics import clustering_scores

    torch.set_num_threads(1)
    layer, batch_size, model_kwargs, trainer_kwargs = CONFIGS[config]
    adata = load_mop(layer)
    CplMixVI.setup_anndata(adata, layer=layer)
    scvi.settings.seed = seed
    model = CplMixVI(adata, **model_kwargs)
    start = time.perf_counter()
    model.train(
        max_epochs=epochs,
        batch_size=batch_size,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_kwargs,
    )
    seconds = time.perf_counter() - start
    labels = model.get_type_assignments()["type"].astype(str)
    scores = clustering_scores(adata.obs["cell_type"].astype(str), labels)
    return {"config": config, "seed": seed, "epochs": epochs, **scores, "train_s": seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="fits run at once (1 thread each)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    import pandas as pd

    calls = [
        (run_child, (config, seed, args.epochs), cold_compile_env())
        for seed in args.seeds
        for config in VARIANTS
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "fast_accuracy.csv"
    table = pd.DataFrame(record(in_fresh_processes(calls, args.jobs, threads=1), [], csv))
    summary = table.groupby("config", sort=False)[["acc", "ari", "ami", "train_s"]].agg(
        ["mean", "std"]
    )
    lines = [
        "# Clustering with the fast training path (MOp, reference configuration)",
        "",
        f"{args.epochs} epochs, seeds {', '.join(map(str, args.seeds))}, 1 torch thread; "
        "mean ± s.d. over seeds. `train_s` includes compilation for the compiled variant"
        + (f" ({args.jobs} fits ran at once)." if args.jobs > 1 else "."),
        "",
        "| variant | ACC | ARI | AMI | train s |",
        "|---|---|---|---|---|",
    ]
    for config, row in summary.iterrows():
        cells = [f"{row[(m, 'mean')]:.3f} ± {row[(m, 'std')]:.3f}" for m in ("acc", "ari", "ami")]
        lines.append(f"| {config} | {' | '.join(cells)} | {row[('train_s', 'mean')]:.0f} |")
    (args.out / "fast_accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
