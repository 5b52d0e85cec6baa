"""One epoch on a synthetic 1 000 000 cells x 2 000 genes sparse count matrix (~5 % non-zero).

The counts are simulated chunk by chunk straight into CSR (never dense): ``n_types`` cell types
with their own gene profiles (log-normal base profile times a log-normal per-type factor), a
gamma-distributed per-cell profile noise (which makes the counts negative binomial given the
type) and log-normal library sizes tuned so that about 5 % of the entries are non-zero. The
matrix is written once to an ``.h5ad`` file; every measurement then runs in a fresh process
that reads it (in memory, or ``backed="r"``, out of core) and trains package defaults (NB, 2
arms) for one epoch without validation. Peak memory is the process' maximum resident set.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/large_data.py [--cells 1000000] [--genes 2000]
        [--backed-fraction 0.05] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
from _env import in_fresh_processes, record, require_bench_extra  # noqa: E402

HERE = Path(__file__).resolve().parent


def simulate_csr(n_cells: int, n_genes: int, n_types: int = 30, seed: int = 0, chunk=50_000):
    """Sparse NB-like counts (float32 CSR) and type labels, built chunk by chunk."""
    from scipy import sparse

    rng = np.random.default_rng(seed)
    base = rng.lognormal(0.0, 1.5, n_genes)
    profiles = base * rng.lognormal(0.0, 1.0, (n_types, n_genes))
    profiles /= profiles.sum(1, keepdims=True)
    labels = rng.integers(0, n_types, n_cells)
    data, indices, counts_per_row = [], [], []
    for start in range(0, n_cells, chunk):
        rows = np.arange(start, min(start + chunk, n_cells))
        library = np.maximum(rng.lognormal(np.log(140.0), 0.5, len(rows)).astype(np.int64), 1)
        cells, genes = [], []
        for k in np.unique(labels[rows]):
            members = rows[labels[rows] == k]
            n_draws = library[members - start]
            # per-cell gamma noise on a few hundred top genes would be NB; a cheap stand-in:
            # draw UMIs from the type profile with cell-level gamma-perturbed weights per gene
            # block (64 blocks), i.e. a gamma-Poisson mixture at block resolution
            block = rng.integers(0, 64, n_genes)
            noise = rng.gamma(2.0, 0.5, (len(members), 64))[:, block] * profiles[k]
            cdf = np.cumsum(noise, axis=1)
            cdf /= cdf[:, -1:]
            owner = np.repeat(np.arange(len(members)), n_draws)
            draw = rng.random(owner.size)
            flat = cdf.ravel() + np.repeat(np.arange(len(members)), n_genes)
            gene = np.searchsorted(flat, draw + owner) - owner * n_genes
            cells.append(members[owner] - start)
            genes.append(np.minimum(gene, n_genes - 1))
        code, count = np.unique(
            np.concatenate(cells).astype(np.int64) * n_genes + np.concatenate(genes),
            return_counts=True,
        )
        indices.append((code % n_genes).astype(np.int32))
        data.append(count.astype(np.float32))
        counts_per_row.append(np.bincount(code // n_genes, minlength=len(rows)))
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts_per_row))]).astype(np.int64)
    matrix = sparse.csr_matrix(
        (np.concatenate(data), np.concatenate(indices), indptr), shape=(n_cells, n_genes)
    )
    return matrix, labels


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ``ru_maxrss`` inherits the parent's)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(path: str, backed: bool, train_size: float, device: str, threads: int) -> dict:
    """Read the file, train one epoch, time prediction on (up to) 100 000 cells."""
    import anndata as ad
    import lightning.pytorch as pl
    import scvi
    import torch

    from cplmixvi import CplMixVI

    torch.set_num_threads(threads)
    start = time.perf_counter()
    adata = ad.read_h5ad(path, backed="r" if backed else None)
    read_s = time.perf_counter() - start
    CplMixVI.setup_anndata(adata)
    scvi.settings.seed = 0
    start = time.perf_counter()
    model = CplMixVI(adata, n_types=30)
    setup_s = time.perf_counter() - start

    class Timer(pl.Callback):
        def on_train_epoch_start(self, *args):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, *args):
            self.seconds = time.perf_counter() - self.start

    timer = Timer()
    accel = "gpu" if device == "cuda" else "cpu"
    model.train(
        max_epochs=1,
        train_size=train_size,
        validation_size=0.0,
        accelerator=accel,
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    n_train = len(model.train_indices)
    n_predict = min(100_000, adata.n_obs)
    start = time.perf_counter()
    model.get_type_probabilities(indices=np.arange(n_predict), batch_size=4096)
    predict_s = time.perf_counter() - start
    return {
        "storage": "backed h5ad (out of core)" if backed else "in-memory CSR",
        "device": torch.cuda.get_device_name(0) if accel == "gpu" else f"cpu x{threads}",
        "n_cells": adata.n_obs,
        "n_genes": adata.n_vars,
        "n_train_cells": n_train,
        "read_s": round(read_s, 1),
        "model_setup_s": round(setup_s, 1),
        "epoch_s": round(timer.seconds, 1),
        "train_cells_per_s": round(n_train / timer.seconds),
        "predict_cells_per_s": round(n_predict / predict_s),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def main(argv: list[str] | None = None) -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--backed-fraction", type=float, default=0.05)
    parser.add_argument("--file", type=Path, default=Path("/tmp/cplmixvi_synthetic_1M.h5ad"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--reuse", action="store_true", help="reuse --file if it exists")
    args = parser.parse_args(argv)
    import pandas as pd

    sidecar = args.file.with_suffix(".json")
    if args.reuse and args.file.exists() and sidecar.exists():
        sim = json.loads(sidecar.read_text())
    else:
        sim = simulate_and_write(args)
        sidecar.write_text(json.dumps(sim))
    print(sim, flush=True)
    calls = [
        (run_child, (str(args.file), backed, fraction, args.device, args.threads))
        for backed, fraction in ((False, 0.9), (True, args.backed_fraction))
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / f"large_data_{args.device}.csv"
    rows = record(in_fresh_processes(calls, threads=args.threads), [], csv)
    write_results(pd.DataFrame(rows), sim, args)


def simulate_and_write(args) -> dict:
    """Simulate the matrix, write it to ``args.file``; return its summary."""
    import anndata as ad
    import pandas as pd

    start = time.perf_counter()
    matrix, labels = simulate_csr(args.cells, args.genes)
    csr_bytes = sum(a.nbytes for a in (matrix.data, matrix.indices, matrix.indptr))
    sim = {
        "simulate_s": round(time.perf_counter() - start, 1),
        "nnz": int(matrix.nnz),
        "density": round(matrix.nnz / (args.cells * args.genes), 4),
        "median_counts_per_cell": float(np.median(np.asarray(matrix.sum(1)).ravel())),
        "csr_mb": round(csr_bytes / 2**20),
        "simulate_peak_rss_mb": round(peak_rss_mb()),
    }
    adata = ad.AnnData(matrix)
    adata.obs["cell_type"] = pd.Categorical(labels.astype(str))
    adata.write_h5ad(args.file)
    return sim


def write_results(table, sim: dict, args) -> None:
    stem = f"large_data_{args.device}"
    per_hour = table["train_cells_per_s"] * 3600
    table = table.assign(**{"training cells per hour": per_hour.map("{:,.0f}".format)})
    lines = [
        f"# One training epoch on {args.cells:,} x {args.genes:,} synthetic sparse counts",
        "",
        f"Simulated in {sim['simulate_s']} s: {sim['nnz']:,} non-zeros ({sim['density']:.1%}), "
        f"median {sim['median_counts_per_cell']:.0f} UMIs per cell, CSR {sim['csr_mb']} MB "
        f"(dense float32 would be {args.cells * args.genes * 4 / 2**30:.1f} GiB); peak memory "
        f"while simulating {sim['simulate_peak_rss_mb']} MB. Package defaults (NB, 2 arms, "
        f"2 x 128 hidden, batch 256), K = 30, {args.threads} torch thread(s), no validation. "
        "Backed runs train on a fraction of the cells to bound the run time.",
        "",
        table.to_markdown(index=False),
        "",
    ]
    (args.out / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
