"""Which coupling works: the package default against the paper-literal and probability variants.

On ``mop_10x`` (K = 44), 2 arms, package defaults otherwise, seeds 0 1 2, one fresh process per
fit, 1 torch thread, ``OMP_WAIT_POLICY=PASSIVE``. Writes ``benchmarks/results/coupling.csv`` and
``coupling.md``.

Usage::

    python benchmarks/coupling_variants.py [--seeds 0 1 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
MOP = HERE.parent.parent / "shared" / "data" / "mop_10x.h5ad"
VARIANTS = {
    "samples, sigma of the posterior (default)": {},
    "samples, sigma of samples (paper-literal)": {"coupling_sigma": "coupled"},
    "samples, sigma of samples, min_prob 1e-6": {
        "coupling_sigma": "coupled",
        "coupling_min_prob": 1e-6,
    },
    "posterior probabilities": {"coupling_on": "probs"},
}


def run_one(variant: str, seed: int, threads: int) -> dict:
    """Train one variant in this (fresh) process and score it against the reference labels."""
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    import anndata as ad
    import scvi
    import torch

    from cplmixvi import CplMixVI
    from cplmixvi.metrics import clustering_scores

    torch.set_num_threads(threads)
    adata = ad.read_h5ad(MOP)
    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata, layer="counts")
    model = CplMixVI(adata, n_types=44, n_arms=2, **VARIANTS[variant])
    start = time.perf_counter()
    model.train(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    model.write_results(adata)
    scores = clustering_scores(adata.obs["cell_type"], adata.obs["cplmixvi_type"])
    return {
        "variant": variant,
        "seed": seed,
        **scores,
        "n_clusters": adata.obs["cplmixvi_type"].nunique(),
        "arm_agreement": float(adata.obs["cplmixvi_arm_agreement"].mean()),
        "type_entropy": float(model.history["type_entropy_train"].iloc[-1, 0]),
        "train_s": time.perf_counter() - start,
        "torch_threads": threads,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        for variant in VARIANTS:
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                rows.append(pool.submit(run_one, variant, seed, args.threads).result())
            print(rows[-1], flush=True)
            pd.DataFrame(rows).to_csv(args.out / "coupling.csv", index=False)
    table = summarise(pd.DataFrame(rows))
    (args.out / "coupling.md").write_text(table + "\n")
    print(table)


def summarise(results: pd.DataFrame) -> str:
    """Markdown table: mean +- s.d. over seeds per variant."""
    cols = ["acc", "ari", "ami", "n_clusters", "arm_agreement", "type_entropy"]
    grouped = results.groupby("variant", sort=False)[cols]
    mean, std = grouped.mean(), grouped.std().fillna(0)
    table = mean.map("{:.3f}".format) + " ± " + std.map("{:.3f}".format)
    table["seeds"] = grouped.size()
    return table.reset_index().to_markdown(index=False)


if __name__ == "__main__":
    main()
