"""Do the speed changes keep the results? Package defaults on MOp, before/after, same seeds.

The faster training path changes two random streams at default settings (cells are ordered
inside each minibatch; the Gumbel noise is drawn from uniforms instead of exponentials), so a
seed no longer gives the bit-identical model of before. This script trains package defaults
(K = 44, 2 arms) on ``mop_10x`` with each source tree and each seed in a fresh process and
scores the fused labels against the reference labels: the distributions should match.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/equivalence.py --src before=/work/main/src after=src \
        [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MOP = HERE.parent.parent / "shared" / "data" / "mop_10x.h5ad"


def run_child(seed: int) -> dict:
    import anndata as ad
    import scvi
    import torch

    from cplmixvi import CplMixVI
    from cplmixvi.metrics import clustering_scores

    torch.set_num_threads(1)
    adata = ad.read_h5ad(MOP)
    CplMixVI.setup_anndata(adata, layer="counts")
    scvi.settings.seed = seed
    model = CplMixVI(adata, n_types=44, n_arms=2)
    start = time.perf_counter()
    model.train(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    train_s = time.perf_counter() - start
    model.write_results(adata)
    scores = clustering_scores(adata.obs["cell_type"], adata.obs["cplmixvi_type"])
    return {
        "seed": seed,
        **{k: round(float(v), 4) for k, v in scores.items()},
        "n_clusters": int(adata.obs["cplmixvi_type"].nunique()),
        "arm_agreement": round(float(adata.obs["cplmixvi_arm_agreement"].mean()), 4),
        "final_train_loss": round(float(model.history["train_loss"].iloc[-1, 0]), 2),
        "train_s": round(train_s, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", nargs="+", default=["after=src"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(run_child(args.child)))
        return
    import pandas as pd

    rows = []
    for seed in args.seeds:
        for name, src in (item.split("=", 1) for item in args.src):
            env = {**os.environ, "PYTHONPATH": str(Path(src).resolve()), "OMP_NUM_THREADS": "1"}
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(seed)],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-3000:])
            rows.append({"implementation": name, **json.loads(done.stdout.splitlines()[-1])})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "equivalence.csv", index=False)
    cols = [c for c in table.columns if c not in ("implementation", "seed")]
    mean = table.groupby("implementation", sort=False)[cols].mean().round(3)
    lines = [
        "# Package defaults on MOp before/after the speed changes (K = 44, 2 arms, 1 thread)",
        "",
        table.to_markdown(index=False),
        "",
        "Means over seeds:",
        "",
        mean.reset_index().to_markdown(index=False),
        "",
    ]
    (args.out / "equivalence.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
