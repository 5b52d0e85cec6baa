"""Epoch time and cells/s on a GPU: MOp (reference and default configurations) and 1M cells.

One prepared script for whenever a GPU is available: it writes
``benchmarks/results/gpu_<card name>.csv`` and ``.md``. ``--device cpu --quick`` is a smoke
mode that runs everything small on the CPU (for checking the script, not for numbers).

Measured per workload: median epoch time over epochs 2..n and training cells/s, with
``precision`` 32 and ``bf16-mixed``; the 1M-cell synthetic set (``large_data.simulate_csr``)
trains one epoch from an in-memory CSR matrix whose minibatches are densified on the fly,
with batch 256 (package default) and 4 096.

Usage::

    python benchmarks/gpu.py                      # on a machine with a CUDA GPU
    python benchmarks/gpu.py --device cpu --quick # smoke test on the CPU
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

from _env import in_fresh_process, require_bench_extra  # noqa: E402
from large_data import simulate_csr  # noqa: E402
from throughput import CONFIGS, load_mop  # noqa: E402


def train_epochs(adata, layer, model_kwargs, batch_size, epochs, device, precision) -> dict:
    """Train ``epochs`` epochs; return median epoch seconds (after the first) and cells/s."""
    import lightning.pytorch as pl
    import scvi

    from cplmixvi import CplMixVI

    class Timer(pl.Callback):
        def __init__(self):
            self.times = []

        def on_train_epoch_start(self, *args):
            self._sync()
            self.start = time.perf_counter()

        def on_train_epoch_end(self, *args):
            self._sync()
            self.times.append(time.perf_counter() - self.start)

        @staticmethod
        def _sync():
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()

    CplMixVI.setup_anndata(adata, layer=layer)
    scvi.settings.seed = 0
    model = CplMixVI(adata, **model_kwargs)
    timer = Timer()
    model.train(
        max_epochs=epochs,
        batch_size=batch_size,
        validation_size=0.0 if epochs == 1 else None,
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision=precision,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    times = timer.times[1:] or timer.times
    epoch_s = statistics.median(times)
    return {"epoch_s": epoch_s, "cells_per_s": len(model.train_indices) / epoch_s}


def main(argv: list[str] | None = None) -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    card, table = in_fresh_process(measure, args)
    name = re.sub(r"[^A-Za-z0-9]+", "_", card).strip("_") + ("_quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / f"gpu_{name}.csv", index=False)
    epochs = 2 if args.quick else 6
    lines = [
        f"# Training speed on {card}" + (" (smoke run, not a measurement)" if args.quick else ""),
        "",
        f"torch {table.attrs['torch']}; epoch time is the median over epochs 2-{epochs} "
        "(1 epoch for the synthetic set).",
        "",
        table.round(2).to_markdown(index=False),
        "",
    ]
    (args.out / f"gpu_{name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


def measure(args: argparse.Namespace):
    """Every workload, in this (fresh) process: the card's name and the table of timings."""
    import anndata as ad
    import pandas as pd
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("No CUDA GPU visible; use --device cpu --quick for a smoke test.")
    card = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    epochs = 2 if args.quick else 6
    precisions = ["32"] if args.quick else ["32", "bf16-mixed"]
    rows = []
    for config in ("reference A=2", "defaults A=2", "defaults A=5"):
        layer, batch_size, model_kwargs, _ = CONFIGS[config]
        adata = load_mop(layer)
        if args.quick:
            adata = adata[:2000].copy()
        for precision in precisions:
            res = train_epochs(
                adata, layer, model_kwargs, batch_size, epochs, args.device, precision
            )
            rows.append(
                {"data": f"MOp {config}", "batch_size": batch_size, "precision": precision, **res}
            )
            print(rows[-1], flush=True)
    n_cells = 20_000 if args.quick else 1_000_000
    matrix, _ = simulate_csr(n_cells, 2000)
    big = ad.AnnData(matrix)
    for batch_size in (256, 4096):
        for precision in precisions:
            res = train_epochs(big, None, {"n_types": 30}, batch_size, 1, args.device, precision)
            rows.append(
                {
                    "data": f"synthetic {n_cells:,} x 2,000",
                    "batch_size": batch_size,
                    "precision": precision,
                    **res,
                }
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table["cells_per_hour"] = (table["cells_per_s"] * 3600).round(-3).astype(int)
    table.attrs["torch"] = torch.__version__
    return card, table


if __name__ == "__main__":
    main()
