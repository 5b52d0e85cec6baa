"""How fast the compiled training step is without Lightning and the data loader: a ceiling.

Runs the reference configuration of ``throughput.py`` (MOp log-CPM, Gaussian, 2 arms, K = 44,
batch 1 000, ``bf16-mixed``) three ways, each in a fresh process with a cold inductor cache,
alternating within the run:

- ``lightning``: ``model.train(compile=True, precision="bf16-mixed")``, as ``throughput.py``
  measures it (the last, smaller minibatch of each epoch included);
- ``plain loop``: the same module's training loss compiled with the package's inductor options,
  ``loss.backward()`` and the fused Adam in a Python loop over 10 dense minibatches of 1 000
  cells held in memory (no Lightning, no loader, no scvi-tools training plan);
- ``plain loop, one graph``: forward, backward and the Adam update compiled as one function
  (``torch.func.grad_and_value`` over ``torch.func.functional_call``; the batch-norm buffers
  are inputs of the transformed function, which updates them).

The plain loops are what removing every piece of host work around the step could give at best.
Throughput is the median over epochs 2..n of cells per second; ``--repeats`` sweeps back to
back. Writes ``results/plain_loop_<threads>thread.{csv,md}``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/experiments/plain_loop.py --threads 1 --epochs 8 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _env import cold_compile_env, in_fresh_process, require_bench_extra  # noqa: E402
from throughput import CONFIGS, REFERENCE_CELLS_PER_S, load_mop, run_in_fresh_process  # noqa: E402

CONFIG = "reference A=2 compiled bf16-mixed"
VARIANTS = ("lightning", "plain loop", "plain loop, one graph")
N_CELLS, BATCH = 10_000, 1_000
WEIGHT_DECAY = 1e-6  # scvi-tools' TrainingPlan default, like lr = 1e-3 and eps = 0.01


def build_module():
    """The reference configuration's module in training mode and 10 dense minibatches."""
    import scvi
    import torch

    from cplmixvi import CplMixVI

    layer, _, model_kwargs, _ = CONFIGS[CONFIG]
    adata = load_mop(layer)
    CplMixVI.setup_anndata(adata, layer=layer)
    scvi.settings.seed = 0
    module = CplMixVI(adata, **model_kwargs).module.train()
    x = torch.tensor(adata.layers[layer][:N_CELLS].toarray(), dtype=torch.float32)
    return module, list(x.split(BATCH))


def separate_step(module):
    """Compiled loss, autograd backward and the fused Adam, as ``train(compile=True)``."""
    import torch

    from cplmixvi.train._compile import INDUCTOR_OPTIONS

    optimizer = torch.optim.Adam(
        module.parameters(), lr=1e-3, eps=0.01, weight_decay=WEIGHT_DECAY, fused=True
    )

    def loss(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return module({"X": x}, loss_kwargs={"kl_weight": 1.0})[2].loss

    compiled = torch.compile(loss, options=INDUCTOR_OPTIONS)

    def step(x):
        compiled(x).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def one_graph_step(module, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 0.01):
    """Forward, backward and Adam (same settings) in one compiled function (torch.func)."""
    import torch

    from cplmixvi.train._compile import INDUCTOR_OPTIONS

    params = {name: p.detach() for name, p in module.named_parameters()}
    buffers = dict(module.named_buffers())
    moments = {name: (torch.zeros_like(p), torch.zeros_like(p)) for name, p in params.items()}
    count = torch.zeros(())

    def loss(params, buffers, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = torch.func.functional_call(
                module, (params, buffers), ({"X": x},), {"loss_kwargs": {"kl_weight": 1.0}}
            )
        return out[2].loss

    def step(x):
        grads, _ = torch.func.grad_and_value(loss)(params, buffers, x)
        count.add_(1)
        bias1, bias2 = 1 - betas[0] ** count, 1 - betas[1] ** count
        for name, param in params.items():
            mean, square = moments[name]
            grad = grads[name] + WEIGHT_DECAY * param
            mean.lerp_(grad, 1 - betas[0])
            square.mul_(betas[1]).addcmul_(grad, grad, value=1 - betas[1])
            param.addcdiv_(mean / bias1, (square / bias2).sqrt() + eps, value=-lr)

    return torch.compile(step, options=INDUCTOR_OPTIONS)


def run_plain(variant: str, epochs: int, threads: int) -> dict:
    """Time ``epochs`` passes of the plain loop over the 10 minibatches in this process."""
    import torch

    torch.set_num_threads(threads)
    module, batches = build_module()
    step = separate_step(module) if variant == "plain loop" else one_graph_step(module)
    epoch_s = []
    for _ in range(epochs):
        start = time.perf_counter()
        for x in batches:
            step(x)
        epoch_s.append(time.perf_counter() - start)
    return {
        "epoch_s": epoch_s,
        "cells_per_s": statistics.median(N_CELLS / t for t in epoch_s[1:]),
        "first_epoch_s": epoch_s[0],
    }


def run_variant(variant: str, args) -> dict:
    """One variant in a fresh process (cold inductor cache); its cells/s and epoch times."""
    if variant == "lightning":
        child = argparse.Namespace(threads=args.threads, epochs=args.epochs, profile=False)
        return run_in_fresh_process(str(HERE.parent.parent / "src"), CONFIG, child)
    plain_args = (variant, args.epochs, args.threads)
    return in_fresh_process(run_plain, *plain_args, threads=args.threads, env=cold_compile_env())


def main(argv: list[str] | None = None) -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE.parent / "results")
    args = parser.parse_args(argv)
    import pandas as pd

    rows = []
    for repeat in range(args.repeats):
        for variant in VARIANTS:
            result = run_variant(variant, args)
            rows.append(
                {
                    "variant": variant,
                    "repeat": repeat,
                    "cells_per_s": result["cells_per_s"],
                    "first_epoch_s": result["first_epoch_s"],
                }
            )
            print(rows[-1], flush=True)
    write_results(pd.DataFrame(rows), args)


def write_results(table, args) -> None:
    """CSV of every run; markdown of each variant's median, range and ratios."""
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"plain_loop_{args.threads}thread"
    table.to_csv(args.out / f"{stem}.csv", index=False)
    cells = table.groupby("variant", sort=False)["cells_per_s"]
    summary = cells.median().round(0).astype(int).to_frame("cells/s (median)")
    bounds = zip(cells.min(), cells.max(), strict=True)
    summary["range"] = [f"{low:.0f}-{high:.0f}" for low, high in bounds]
    summary["ms per 1 000 cells"] = (1e6 / cells.median()).round(1)
    per_repeat = table.pivot(index="repeat", columns="variant", values="cells_per_s")
    ratio = per_repeat.div(per_repeat["lightning"], axis=0).median()
    summary["x lightning (same sweep)"] = ratio.reindex(summary.index).round(2)
    summary["x reference figure"] = (cells.median() / REFERENCE_CELLS_PER_S).round(2)
    first = table.groupby("variant", sort=False)["first_epoch_s"].median()
    summary["first epoch s"] = first.round(1)
    lines = [
        f"# The compiled step with and without Lightning, {args.threads} torch thread(s)",
        "",
        f"Reference configuration, `{CONFIG}`; cells/s per epoch, median over epochs "
        f"2-{args.epochs}, then over {args.repeats} sweeps (range over the sweeps); the first "
        "epoch includes compilation with a cold inductor cache. Thread settings: "
        f"OMP_NUM_THREADS={args.threads}, torch.set_num_threads({args.threads}), "
        "OMP_WAIT_POLICY=PASSIVE. Reference figure of "
        f"the public implementation: {REFERENCE_CELLS_PER_S} cells/s.",
        "",
        summary.reset_index().to_markdown(index=False),
        "",
    ]
    (args.out / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
