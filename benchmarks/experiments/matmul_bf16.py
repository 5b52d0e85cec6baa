"""Arm-batched matrix products of the reference configuration in fp32 and bfloat16, one thread.

For each layer shape of the reference configuration (2 arms, batch 1 000, 500 genes, 100
hidden units, K = 44 and a 2-d state, so a 46-wide decoder input) it times the forward product
``baddbmm(bias, x, W)`` and the two backward products (``g W^T`` and ``x^T g``) with
:func:`torch.bmm`, in fp32 and in bfloat16 (oneDNN; AMX on CPUs that have it), and reports
GFLOP/s (median of repeats). Writes ``results/matmul_bf16_1thread.{csv,md}``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/experiments/matmul_bf16.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import require_bench_extra  # noqa: E402

HERE = Path(__file__).resolve().parent
# (arms, cells, inputs, outputs) of the encoder's first and hidden layers, the decoder's first
# layer and the output layer
SHAPES = [(2, 1000, 500, 100), (2, 1000, 100, 100), (2, 1000, 46, 100), (2, 1000, 100, 500)]


def median_seconds(fn, repeats: int = 30) -> float:
    """Median wall time of ``fn()`` after three warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(shape: tuple[int, int, int, int], dtype: torch.dtype) -> dict:
    """GFLOP/s of the forward and the two backward products of one layer."""
    arms, cells, n_in, n_out = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(arms, cells, n_in, generator=gen).to(dtype)
    weight = torch.randn(arms, n_in, n_out, generator=gen).to(dtype)
    bias = torch.randn(arms, 1, n_out, generator=gen).to(dtype)
    grad = torch.randn(arms, cells, n_out, generator=gen).to(dtype)
    flop = 2 * arms * cells * n_in * n_out
    products = {
        "forward": lambda: torch.baddbmm(bias, x, weight),
        "grad input": lambda: torch.bmm(grad, weight.transpose(1, 2)),
        "grad weight": lambda: torch.bmm(x.transpose(1, 2), grad),
    }
    row = {"shape (A, B, in, out)": str(shape), "dtype": str(dtype).removeprefix("torch.")}
    total = 0.0
    for name, fn in products.items():
        seconds = median_seconds(fn)
        total += seconds
        row[f"{name} GFLOP/s"] = round(flop / seconds / 1e9, 1)
    row["fwd + bwd ms"] = round(total * 1e3, 3)
    return row


def main() -> None:
    require_bench_extra()
    torch.set_num_threads(1)
    rows = [measure(shape, dtype) for shape in SHAPES for dtype in (torch.float32, torch.bfloat16)]
    table = pd.DataFrame(rows)
    out = HERE.parent / "results"
    out.mkdir(exist_ok=True)
    table.to_csv(out / "matmul_bf16_1thread.csv", index=False)
    totals = table.groupby("dtype")["fwd + bwd ms"].sum()
    lines = [
        "# Arm-batched matrix products, fp32 vs bfloat16, 1 torch thread",
        "",
        f"torch {torch.__version__}; median of 30 repeats. Sum of forward + backward over the "
        f"four shapes: fp32 {totals['float32']:.2f} ms, bf16 {totals['bfloat16']:.2f} ms "
        f"({totals['float32'] / totals['bfloat16']:.1f}x).",
        "",
        table.to_markdown(index=False),
        "",
    ]
    (out / "matmul_bf16_1thread.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
