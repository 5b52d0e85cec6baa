"""Wall time of one default fit of 10 000 cells x 2 000 genes on this machine's CPU.

Simulated counts (``cplmixvi.data.simulate``, 20 types), ``CplMixVI(adata, n_types=20)`` with
the package defaults, ``model.train()`` timed from the call to its return (pretraining, the
k-means start and the consensus epochs; with ``--compile`` the compilation is included), then
``get_type_assignments()``. Each variant runs in a fresh process with the given torch threads.

The results are a log: each run appends its rows to ``benchmarks/results/fit_time.csv``, with a
``--label`` (what code and day, after the variant's name) and ``--machine`` (what else ran
on the machine meanwhile), and rewrites ``fit_time.md`` with every row, newest first. The
machine's speed moves, so compare rows of one run. ``--src`` times another source tree (e.g. a
checkout of an earlier commit) instead of the installed package.

Usage::

    python benchmarks/fit_time.py --threads 2 --variants eager compiled
    python benchmarks/fit_time.py --src /tmp/old/src --label "src of 9d62b91 (2026-12-07)"
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd
from _env import in_fresh_processes, record, require_bench_extra  # noqa: E402

HERE = Path(__file__).resolve().parent


# train() arguments of each variant, given the number of cells
VARIANTS = {
    "eager": lambda n_cells: {},
    "compiled": lambda n_cells: {"compile": True},
}


def run_one(variant: str, threads: int, n_cells: int, n_genes: int, src: str | None) -> dict:
    """One timed default fit in this (fresh) process, of the package in ``src`` if given."""
    if src:
        sys.path.insert(0, src)
    import scvi
    import torch

    import cplmixvi

    torch.set_num_threads(threads)
    adata = cplmixvi.data.simulate(n_cells=n_cells, n_genes=n_genes, n_types=20, seed=0)
    scvi.settings.seed = 0
    cplmixvi.CplMixVI.setup_anndata(adata, layer="counts")
    model = cplmixvi.CplMixVI(adata, n_types=20)
    kwargs = VARIANTS[variant](n_cells)
    start = time.perf_counter()
    model.train(accelerator="cpu", enable_progress_bar=False, **kwargs)
    train_s = time.perf_counter() - start
    labels = model.get_type_assignments()["type"]
    from cplmixvi.metrics import clustering_scores

    scores = clustering_scores(adata.obs["cell_type"].astype(str), labels.astype(str))
    return {
        "cells": n_cells,
        "genes": n_genes,
        "epochs": len(model.history["elbo_train"]),
        "train_s": round(train_s, 1),
        "fit_and_label_s": round(time.perf_counter() - start, 1),
        "ari_vs_planted": round(scores["ari"], 3),
        "torch_threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
    }


def main(argv: list[str] | None = None) -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-cells", type=int, default=10_000)
    parser.add_argument("--n-genes", type=int, default=2_000)
    parser.add_argument("--label", help="what code and day, added to the variant's name")
    parser.add_argument("--machine", default="to itself", help="what else ran meanwhile")
    parser.add_argument("--src", type=Path, help="a source tree to time instead of the package")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "fit_time.csv"
    rows = pd.read_csv(csv).to_dict("records") if csv.exists() else []
    src = str(args.src.resolve()) if args.src else None
    calls = [(run_one, (v, args.threads, args.n_cells, args.n_genes, src)) for v in args.variants]
    results = in_fresh_processes(calls, threads=args.threads)
    labelled = (
        {
            "label": f"{variant}, {args.label}" if args.label else variant,
            "machine": args.machine,
            **row,
        }
        for variant, row in zip(args.variants, results, strict=True)
    )
    rows = record(labelled, rows, csv)
    table = pd.DataFrame(rows[::-1]).to_markdown(index=False)
    (args.out / "fit_time.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
