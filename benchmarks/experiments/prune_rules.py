"""Pruning rules compared on the same trained models: fine-tuning between rounds or not.

One CplMixVI fit per (dataset, seed) from the ``2x`` start of ``benchmarks/pruning.py``
(``n_types`` twice the reference number of types, package defaults, ``prune=False``) is saved
to ``--models`` (not committed); every rule then prunes a fresh copy of it:

- ``tune2``: the package's ``prune()`` (2 fine-tuning epochs after each round);
- ``none``: the same rounds without fine-tuning (removed categories' cells go to their next
  category);
- ``none+final2``: rounds without fine-tuning, then 2 epochs of training at the end.

Rows (selected K, categories holding cells, ACC / ARI / AMI) are appended to
``benchmarks/results/prune_rules.jsonl``. Usage::

    python benchmarks/experiments/prune_rules.py --datasets pbmc_10x_4k --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import append_jsonl, in_fresh_processes  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results" / "prune_rules.jsonl"
RULES = ("tune2", "none", "none+final2")
QUIET = {"accelerator": "cpu", "enable_progress_bar": False, "enable_model_summary": False}


def prune_with(model, rule: str) -> None:
    """Prune ``model`` in place by ``rule``."""
    if rule == "tune2":
        model.prune(**QUIET)
        return
    train = model.train
    model.train = lambda *args, **kwargs: None  # rounds without fine-tuning
    try:
        model.prune(**QUIET)
    finally:
        del model.train
    if rule == "none+final2":
        tau = float(model.module.temperature)
        model.train(max_epochs=2, temperature_start=tau, temperature_end=tau, **QUIET)
    assert model.train == train


def run_one(dataset: str, seed: int, models: str) -> list[dict]:
    import numpy as np
    import scvi
    import torch

    torch.set_num_threads(1)
    from clustering import DATASETS, load

    from cplmixvi import CplMixVI
    from cplmixvi.metrics import clustering_scores

    adata = load(dataset)
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    path = Path(models) / f"{dataset}_2x_{seed}"
    if not path.exists():
        scvi.settings.seed = seed
        CplMixVI.setup_anndata(adata)
        model = CplMixVI(adata, n_types=2 * DATASETS[dataset])
        model.train(prune=False, **QUIET)
        model.save(str(path), overwrite=True)
    rows = []
    for rule in RULES:
        scvi.settings.seed = seed
        model = CplMixVI.load(str(path), adata)
        prune_with(model, rule)
        labels = model.get_type_assignments()["type"].to_numpy()
        row = {"dataset": dataset, "seed": seed, "rule": rule, "k_ref": DATASETS[dataset]}
        row.update(k_selected=len(model.active_types), n_clusters=len(np.unique(labels)))
        row.update(clustering_scores(truth, labels))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--datasets", nargs="+", default=["mop_10x", "pbmc_10x_4k", "worm_neuron", "mouse_bladder"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--models", default="/tmp/prune_models")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    Path(args.models).mkdir(parents=True, exist_ok=True)
    runs = [(d, s, args.models) for s in args.seeds for d in args.datasets]
    calls = [(run_one, run) for run in runs]
    append_jsonl(in_fresh_processes(calls, args.jobs, threads=1), OUT)


if __name__ == "__main__":
    main()
