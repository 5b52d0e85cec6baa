"""Training throughput (cells per second per epoch) and peak memory, before/after, on MOp.

Configurations (``mop_10x``, 11 444 cells x 500 genes, 90 % training cells):

- ``reference``: the public cpl-mixVAE's MOp setting: log-CPM input, Gaussian likelihood,
  K = 44, 2-d state, batch 1 000, per arm 4 hidden layers of 100 (ReLU + batch norm) in the
  encoder and the decoder, Adam. Differences: the reference adds a 10-unit bottleneck layer
  (500-100-100-100-100-10) before its heads and decoder input; ours reads the type and state
  heads from the last 100-unit layer and decodes ``(s, c)`` straight into 100 units. The
  reference drops input genes per arm; ours does the same with gene-dropout augmentation
  (rate 0.1) and no dropout in the hidden layers. Also run with ``precision="bf16-mixed"``.
- ``defaults``: package defaults on raw counts (NB, 2 x 128 hidden, batch 256, binomial
  thinning for A > 1) with K = 44, for A = 1, 2, 5.

Every (implementation, configuration) runs in a fresh process (peak memory is that process'
maximum resident set), ``--epochs`` epochs without validation; the throughput is the median
over epochs of (training cells / epoch time), excluding the first epoch. Implementations are
source trees: ``--src`` gives ``name=path`` pairs (e.g. ``before=/work/main/src
after=src``); they alternate within one run, so their ratio is robust to a shared machine.
``--profile`` additionally profiles one epoch of the reference configuration per
implementation with ``torch.profiler`` and writes the time breakdown.

``--repeats N`` runs the whole sweep N times one after the other and reports each
configuration's median over the repeats with its range: one run then covers a longer stretch of
the shared machine's changing load.

The results go to ``benchmarks/results/throughput_<threads>thread[_<policies>][_<N>repeats]``
(``.csv`` and ``.md``); ``--name`` gives another name, so that a check does not overwrite the
table of the docs.

``--wait-policy`` sets OpenMP's ``OMP_WAIT_POLICY`` of the training processes (``PASSIVE`` by
default; ``default`` leaves it unset); several values alternate within the run like sources.
With more than one thread it matters: between parallel regions ``PASSIVE`` threads sleep and
must be woken, ``ACTIVE`` threads spin (fast when the process has the cores to itself, very
slow when another busy process shares them).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/throughput.py --threads 1 \
        --src before=/work/main/src after=src [--profile]
    python benchmarks/throughput.py --threads 2 --wait-policy PASSIVE ACTIVE \
        --configs "reference A=2" "reference A=2 compiled bf16-mixed"
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from _env import DATA, cold_compile_env, in_fresh_process, require_bench_extra  # noqa: E402

HERE = Path(__file__).resolve().parent
MOP = DATA / "mop_10x.h5ad"
REFERENCE = {
    "n_types": 44,
    "n_state": 2,
    "n_hidden": 100,
    "n_layers": 4,
    "dropout_rate": 0.0,
    "gene_likelihood": "normal",
    "augmentation": "dropout",
}
CONFIGS = {
    "reference A=2": ("logcpm", 1000, {**REFERENCE, "n_arms": 2}, {}),
    "reference A=2 fused Adam": (
        "logcpm",
        1000,
        {**REFERENCE, "n_arms": 2},
        {"plan_kwargs": {"fused_optimizer": True}},
    ),
    "reference A=2 bf16-mixed": (
        "logcpm",
        1000,
        {**REFERENCE, "n_arms": 2},
        {"precision": "bf16-mixed"},
    ),
    "reference A=2 compiled": ("logcpm", 1000, {**REFERENCE, "n_arms": 2}, {"compile": True}),
    "reference A=2 compiled bf16-mixed": (
        "logcpm",
        1000,
        {**REFERENCE, "n_arms": 2},
        {"compile": True, "precision": "bf16-mixed"},
    ),
    "defaults A=1": ("counts", 256, {"n_types": 44, "n_arms": 1}, {}),
    "defaults A=2": ("counts", 256, {"n_types": 44, "n_arms": 2}, {}),
    "defaults A=5": ("counts", 256, {"n_types": 44, "n_arms": 5}, {}),
    "defaults A=2 compiled": ("counts", 256, {"n_types": 44, "n_arms": 2}, {"compile": True}),
}
# configurations profiled with --profile
PROFILED = ("reference A=2", "reference A=2 compiled", "reference A=2 compiled bf16-mixed")
# reference figure of the public implementation on this machine class (1 thread, fp32)
REFERENCE_CELLS_PER_S = 9200
CATEGORIES = {
    "fused kernels (compiled)": ("cpp_fused",),
    "matmul": ("bmm", "baddbmm", "addmm", "mm", "matmul", "linear"),
    "batch norm": ("batch_norm",),
    "random numbers": (
        "uniform_",
        "exponential_",
        "bernoulli",
        "normal_",
        "random_",
        "randint",
        "binomial",
    ),
    "optimizer": ("Optimizer.step",),
    "data loading": ("DataLoader", "_SingleProcessDataLoaderIter"),
}


def load_mop(layer: str):
    """MOp counts with a log-CPM layer (sparse, like the counts)."""
    import anndata as ad
    import scanpy as sc

    adata = ad.read_h5ad(MOP)
    if layer == "logcpm":
        adata.layers["logcpm"] = adata.layers["counts"].copy()
        sc.pp.normalize_total(adata, target_sum=1e6, layer="logcpm")
        sc.pp.log1p(adata, layer="logcpm")
    return adata


def run_child(config: str, epochs: int, threads: int, profile: bool, src: str) -> dict:
    """Train one configuration in this process with the package of the source tree ``src``;
    return per-epoch throughput and peak memory."""
    sys.path.insert(0, src)
    import lightning.pytorch as pl
    import scvi
    import torch

    from cplmixvi import CplMixVI

    torch.set_num_threads(threads)
    if profile:  # name inductor's generated kernels in the profile
        import torch._inductor.config

        torch._inductor.config.cpp.enable_kernel_profile = True
    layer, batch_size, model_kwargs, trainer_kwargs = CONFIGS[config]
    adata = load_mop(layer)
    CplMixVI.setup_anndata(adata, layer=layer)
    scvi.settings.seed = 0
    model = CplMixVI(adata, **model_kwargs)

    class EpochTimer(pl.Callback):
        def __init__(self):
            self.times, self.prof = [], None

        def on_train_epoch_start(self, trainer, module):
            if profile and trainer.current_epoch == 1:
                self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                self.prof.__enter__()
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            self.times.append(time.perf_counter() - self.start)
            if self.prof is not None and trainer.current_epoch == 1:
                self.prof.__exit__(None, None, None)

    timer = EpochTimer()
    model.train(
        max_epochs=epochs,
        batch_size=batch_size,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        **trainer_kwargs,
    )
    n_train = len(model.train_indices)
    out = {
        "config": config,
        "n_train_cells": n_train,
        "batch_size": batch_size,
        "epoch_s": timer.times,
        "cells_per_s": statistics.median(n_train / t for t in timer.times[1:]),
        "first_epoch_s": timer.times[0],
        "peak_rss_mb": peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
    }
    if timer.prof is not None:
        out["profile"] = breakdown(timer.prof, timer.times[1])
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM of /proc/self/status)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def breakdown(prof, wall_s: float) -> dict:
    """Seconds per category of one profiled epoch; the rest of the wall time is 'host'."""
    totals = dict.fromkeys(CATEGORIES, 0.0)
    totals["other tensor ops"] = 0.0
    for event in prof.key_averages():
        name = event.key
        seconds = event.self_cpu_time_total / 1e6
        for category, keys in CATEGORIES.items():
            if any(key in name for key in keys):
                if category == "data loading":
                    seconds = event.cpu_time_total / 1e6  # the loader's own call tree
                totals[category] += seconds
                break
        else:
            if name.startswith("aten::") or "Backward" in name:
                totals["other tensor ops"] += seconds
    totals = {k: v for k, v in totals.items()}
    totals["python/Lightning host work"] = max(wall_s - sum(totals.values()), 0.0)
    totals["epoch wall"] = wall_s
    return totals


def run_in_fresh_process(src: str, config: str, args, wait_policy: str = "PASSIVE") -> dict:
    """``run_child`` in a fresh process with a cold inductor cache (the first epoch shows the
    full compile time) and OpenMP's ``wait_policy`` (``default``: unset, libgomp's own)."""
    env = {
        **cold_compile_env(),
        "OMP_WAIT_POLICY": None if wait_policy == "default" else wait_policy,
    }
    child_args = (config, args.epochs, args.threads, args.profile, str(Path(src).resolve()))
    return in_fresh_process(run_child, *child_args, threads=args.threads, env=env)


def main(argv: list[str] | None = None) -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", nargs="+", default=["after=src"], help="name=path pairs")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="sweeps, one after the other")
    parser.add_argument(
        "--wait-policy", nargs="+", default=["PASSIVE"], choices=["PASSIVE", "ACTIVE", "default"]
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--name", help="file name of the results [throughput_<threads>thread_<options>]"
    )
    args = parser.parse_args(argv)
    import pandas as pd

    sources = dict(item.split("=", 1) for item in args.src)
    several = len(args.wait_policy) > 1
    runs = {
        f"{name} {policy}" if several else name: (src, policy)
        for name, src in sources.items()
        for policy in args.wait_policy
    }
    rows, profiles = [], {}
    sweeps = [(repeat, config) for repeat in range(args.repeats) for config in args.configs]
    for repeat, config in sweeps:
        for name, (src, policy) in runs.items():
            want_profile = args.profile and config in PROFILED and repeat == 0
            args_c = argparse.Namespace(**{**vars(args), "profile": want_profile})
            try:
                result = run_in_fresh_process(src, config, args_c, policy)
            except RuntimeError as error:  # e.g. an option the older source does not have
                print(f"skipped: {str(error)[-300:]}", flush=True)
                continue
            if "profile" in result:
                profiles[f"{name}: {config}"] = result.pop("profile")
            result["epoch_s"] = " ".join(f"{t:.2f}" for t in result["epoch_s"])
            rows.append({"implementation": name, "repeat": repeat, **result})
            print(rows[-1], flush=True)
    write_results(pd.DataFrame(rows), profiles, args, list(runs))


def per_config(table, column: str, how: str):
    """``column`` per configuration (rows) and implementation (columns), aggregated by ``how``."""
    return table.pivot_table(index="config", columns="implementation", values=column, aggfunc=how)


def write_results(table, profiles: dict, args, names: list[str]) -> None:
    """CSV of every run and a markdown summary with ratios and the profile breakdown."""
    import pandas as pd

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.name or f"throughput_{args.threads}thread"
    if args.wait_policy != ["PASSIVE"] and not args.name:
        stem += "_" + "_".join(policy.lower() for policy in args.wait_policy)
    if args.repeats > 1 and not args.name:
        stem += f"_{args.repeats}repeats"
    table.to_csv(args.out / f"{stem}.csv", index=False)
    wide = per_config(table, "cells_per_s", "median")
    wide = wide.reindex([c for c in CONFIGS if c in wide.index])
    names = [name for name in names if name in wide.columns]
    lines = [
        f"# Training throughput on MOp, {args.threads} torch thread(s)",
        "",
        f"Cells per second per training epoch (median over epochs 2-{args.epochs}"
        + (f", then median over {args.repeats} repeats of the sweep" if args.repeats > 1 else "")
        + "); the first "
        "epoch (excluded) includes compilation with a cold inductor cache; peak resident "
        "memory of the training process. Reference figure of the public implementation: "
        f"{REFERENCE_CELLS_PER_S} cells/s (1 thread, fp32). `compiled` is "
        "`train(compile=True)` (torch.compile of the training step + fused Adam), "
        '`bf16-mixed` is Lightning\'s `precision="bf16-mixed"` (bfloat16 autocast). '
        f"Thread settings: OMP_NUM_THREADS={args.threads}, torch.set_num_threads({args.threads}), "
        f"OMP_WAIT_POLICY {' / '.join(args.wait_policy)} (`default`: unset).",
        "",
    ]
    last = names[-1]
    summary = wide[names].round(0).astype("Int64")
    if len(names) > 1:
        summary[f"{last} / {names[0]}"] = (wide[last] / wide[names[0]]).round(2)
    if "reference A=2" in wide.index:  # same run, same machine load: the robust ratio
        eager = wide.loc["reference A=2", last]
        ratio = (wide[last] / eager).round(2)
        summary["x eager fp32 reference A=2"] = ratio.where(wide.index.str.startswith("reference"))
    summary["x reference figure"] = (wide[last] / REFERENCE_CELLS_PER_S).round(2)
    if args.repeats > 1:
        low, high = (per_config(table, "cells_per_s", how)[last] for how in ("min", "max"))
        low, high = low.reindex(wide.index), high.reindex(wide.index)
        summary[f"range over repeats ({last})"] = [
            f"{lo:.0f}-{hi:.0f}" for lo, hi in zip(low, high, strict=True)
        ]
    first = per_config(table, "first_epoch_s", "median")
    summary[f"first epoch s ({last})"] = first[last].reindex(wide.index).round(1)
    memory = per_config(table, "peak_rss_mb", "max")
    summary[f"peak MB ({last})"] = memory[last].reindex(wide.index).round(0)
    lines += [summary.reset_index().to_markdown(index=False), ""]
    if profiles:
        prof = pd.DataFrame(profiles).round(3)
        lines += [
            "## Where one epoch of the reference configuration goes (seconds, torch.profiler)",
            "",
            prof.reset_index(names="part").to_markdown(index=False),
            "",
        ]
    (args.out / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
