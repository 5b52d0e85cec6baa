"""Wall time per epoch of each augmenter against no augmentation, interleaved in one process.

On ``mop_10x``, a 2-arm CplMixVI (K = 44, package defaults) is trained for one epoch with each
augmentation in turn, for ``--rounds`` rounds (interleaving spreads any load of the machine
evenly over the augmenters); the table has the median seconds per epoch and the ratio to no
augmentation, plus each augmenter's own time on one minibatch (256 cells x 2 arms, median of 30
calls) and the generative augmenter's fit time per epoch. 1 torch thread,
``OMP_WAIT_POLICY=PASSIVE``. Writes ``benchmarks/results/augmentation_timing.csv`` and ``.md``.

Usage::

    python benchmarks/augmentation_timing.py [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from _env import DATA, in_fresh_process, require_bench_extra  # noqa: E402

HERE = Path(__file__).resolve().parent
MOP = DATA / "mop_10x.h5ad"
AUGMENTATIONS = ("none", "thinning", "dropout", "thinning+dropout", "generative")


def main(argv: list[str] | None = None) -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--generative-epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    times, table = in_fresh_process(measure, args, threads=args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    times.to_csv(args.out / "augmentation_timing.csv", index=False)
    (args.out / "augmentation_timing.md").write_text(table.to_markdown(index=False) + "\n")
    print(table.to_markdown(index=False))


def measure(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All the timings, in this (fresh) process: every epoch's time and the summary table."""
    import anndata as ad
    import scanpy as sc
    import scvi
    import torch
    from augmentation import augmenter_seconds

    from cplmixvi import CplMixVI, GenerativeAugmenter
    from cplmixvi.augment import get_augmenter

    torch.set_num_threads(args.threads)
    adata = ad.read_h5ad(MOP)
    sc.pp.filter_cells(adata, min_counts=1)
    scvi.settings.seed = 0
    quiet = {"accelerator": "cpu", "enable_progress_bar": False, "enable_model_summary": False}
    GenerativeAugmenter.setup_anndata(adata, layer="counts")
    gen = GenerativeAugmenter(adata)
    start = time.perf_counter()
    gen.train(max_epochs=args.generative_epochs, **quiet)
    gen_epoch_s = (time.perf_counter() - start) / args.generative_epochs
    augmenters = {
        name: get_augmenter(gen if name == "generative" else name, "nb", 2)
        for name in AUGMENTATIONS
    }
    batch = torch.as_tensor(adata.layers["counts"][:256].toarray(), dtype=torch.float32)
    CplMixVI.setup_anndata(adata, layer="counts")
    models = {
        name: CplMixVI(adata, n_types=44, n_arms=2, augmentation=aug)
        for name, aug in augmenters.items()
    }
    rows = []
    for round_ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.train(max_epochs=1, **quiet)
            rows.append(
                {"augmentation": name, "round": round_, "s_per_epoch": time.perf_counter() - start}
            )
            print(rows[-1])
    times = pd.DataFrame(rows)
    med = times.groupby("augmentation", sort=False)["s_per_epoch"].median()
    table = pd.DataFrame(
        {
            "augmentation": med.index,
            "s/epoch (median)": med.round(2).to_numpy(),
            "x none": (med / med["none"]).round(2).to_numpy(),
            "augment ms/batch (median)": [
                round(1e3 * augmenter_seconds(augmenters[n], batch), 2) for n in med.index
            ],
        }
    )
    table["augmenter fit s/epoch"] = [
        round(gen_epoch_s, 2) if n == "generative" else 0.0 for n in med.index
    ]
    table["rounds"] = args.rounds
    table["torch_threads"] = args.threads
    return times, table


if __name__ == "__main__":
    main()
