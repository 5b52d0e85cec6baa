"""Per-epoch curves of the consensus phase: when do categories lose their cells, and which?

One default CplMixVI fit per (dataset, seed, epoch factor) in a fresh process (one torch
thread). From the k-means start on, after every epoch, the fused argmax of every cell gives:
ACC / ARI / AMI against the reference, the number of categories holding cells, and, for each
category that lost its cells since the previous record, its size at the start and the reference
type it was mostly made of. Rows go to ``benchmarks/results/category_curves.jsonl``. Usage::

    python benchmarks/experiments/category_curves.py --datasets mop_10x mouse_bladder --seeds 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import append_jsonl, in_fresh_processes  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results" / "category_curves.jsonl"


def run_one(dataset: str, seed: int, factor: float) -> list[dict]:
    import numpy as np
    import scvi
    import torch
    from lightning.pytorch.callbacks import Callback

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE.parent))
    from clustering import DATASETS, load

    import cplmixvi.model._training as model_module
    from cplmixvi import CplMixVI
    from cplmixvi.metrics import clustering_scores, fuse
    from cplmixvi.model._training import default_max_epochs

    adata = load(dataset)
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata)
    model = CplMixVI(adata, n_types=DATASETS[dataset])
    rows: list[dict] = []
    state = {"start_labels": None, "alive": None}

    def record(epoch: int) -> None:
        log_probs, _ = model._infer(model.adata, None, 1024)
        labels = fuse(log_probs).argmax(-1)
        agree = (log_probs.argmax(-1) == labels[None]).all(0).mean()
        alive = set(np.unique(labels).tolist())
        row = {"dataset": dataset, "seed": seed, "factor": factor, "epoch": epoch}
        row.update(clustering_scores(truth, labels))
        row["types_with_cells"] = len(alive)
        row["consensus"] = float(agree)
        if state["start_labels"] is None:
            state["start_labels"] = labels
        else:
            died = sorted(state["alive"] - alive)
            start = state["start_labels"]
            row["died"] = [
                {
                    "start_cells": int((start == k).sum()),
                    "ref_type": _mode(truth[start == k]),
                    "ref_type_cells": int((truth == _mode(truth[start == k])).sum()),
                }
                for k in died
            ]
        state["alive"] = alive
        rows.append(row)

    original = model_module.init_types_by_kmeans

    def init_and_record(m, *args, **kwargs):
        original(m, *args, **kwargs)
        record(-1)

    model_module.init_types_by_kmeans = init_and_record

    class Curve(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            if state["start_labels"] is not None:
                record(trainer.current_epoch)

    max_epochs = round(factor * default_max_epochs(adata.n_obs))
    model.train(
        max_epochs=max_epochs,
        pretrain_epochs=default_max_epochs(adata.n_obs) // 2,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Curve()],
    )
    return rows


def _mode(values) -> str:
    import pandas as pd

    return str(pd.Series(values).mode().iloc[0]) if len(values) else ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["mop_10x", "mouse_bladder"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--factors", nargs="+", type=float, default=[1.0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    runs = [(d, s, f) for f in args.factors for s in args.seeds for d in args.datasets]
    calls = [(run_one, run) for run in runs]
    append_jsonl(in_fresh_processes(calls, args.jobs, threads=1), OUT)


if __name__ == "__main__":
    main()
