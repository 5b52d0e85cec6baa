"""Where would a parameter-free K land? The pretrained codes of a fit started at an upper bound.

One CplMixVI fit per (dataset, seed) with ``n_types = K_max`` (twice the reference number of
types by default) is stopped at the k-means start; the arms' clr codes are saved to
``--codes-dir`` (``<dataset>_<seed>_<kmax>.npz``, not committed) for offline analysis of K
selection criteria. Usage::

    python benchmarks/experiments/auto_k.py --datasets pbmc_10x_4k --seeds 0 --factor 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import append_jsonl, in_fresh_processes  # noqa: E402
from start_quality import codes_at_start

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results" / "auto_k.jsonl"


def run_one(dataset: str, seed: int, factor: float, codes_dir: str) -> list[dict]:
    import numpy as np
    import scvi
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE.parent))
    from clustering import DATASETS, load

    from cplmixvi import CplMixVI

    adata = load(dataset)
    k_max = round(factor * DATASETS[dataset])
    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata)
    model = CplMixVI(adata, n_types=k_max)

    codes = codes_at_start(model)
    path = Path(codes_dir) / f"{dataset}_{seed}_{k_max}.npz"
    np.savez_compressed(path, codes=codes.astype(np.float32))
    return [{"dataset": dataset, "seed": seed, "k_max": k_max, "codes": "saved"}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--datasets", nargs="+", default=["mop_10x", "pbmc_10x_4k", "worm_neuron", "mouse_bladder"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--codes-dir", default="/tmp/auto_k")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    Path(args.codes_dir).mkdir(parents=True, exist_ok=True)
    runs = [(d, s, args.factor, args.codes_dir) for s in args.seeds for d in args.datasets]
    calls = [(run_one, run) for run in runs]
    append_jsonl(in_fresh_processes(calls, args.jobs, threads=1), Path("/tmp/auto_k/rows.jsonl"))


if __name__ == "__main__":
    main()
