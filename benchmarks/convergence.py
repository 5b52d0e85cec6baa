"""Curves over training: fused ACC/ARI/AMI, categories holding cells and arm consensus per epoch.

Trains CplMixVI on a shared dataset for ``--epochs-factor`` times the default number of epochs
and evaluates, every ``--every`` epochs, the fused labels of a fixed random subset of cells
(without augmentation). With the default objective the first clustering epoch comes right after
the k-means initialisation of the type heads. Writes ``convergence_<dataset>_<config>.csv``
(one row per evaluation, with the epoch's loss terms) under ``--out``.

Usage::

    python benchmarks/convergence.py --dataset mop_10x --epochs-factor 4
    python benchmarks/convergence.py --dataset mouse_bladder --config paper --epochs-factor 4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from _env import in_fresh_process, require_bench_extra  # noqa: E402

HERE = Path(__file__).resolve().parent
CONFIGS = {"default": {}, "paper": {"objective": "paper"}}


def curve_callback(model, subset: np.ndarray, truth: np.ndarray, every: int, rows: list):
    """Lightning callback: every ``every`` epochs, the fused labels' scores on ``subset``."""
    from lightning.pytorch.callbacks import Callback

    from cplmixvi.metrics import clustering_scores

    class Curve(Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            epoch = trainer.current_epoch + 1
            if epoch % every and epoch != trainer.max_epochs:
                return
            import torch

            model.is_trained_ = True  # the accessors refuse an untrained model
            # each data loader draws its base seed from torch's generator: without the fork
            # the evaluations would change the fit's random stream, so its course
            with torch.random.fork_rng():
                table = model.get_type_assignments(indices=subset)
            model.is_trained_ = False
            scores = clustering_scores(truth, table["type"].astype(str))
            rows.append(
                {
                    "epoch": epoch,
                    **{key: scores[key] for key in ("acc", "ari", "ami")},
                    "types_with_cells": int(table["type"].nunique()),
                    "consensus": float((table["arm_agreement"] == 1).mean()),
                    "pretraining": bool(model.module.pretraining),
                }
            )

    return Curve()


def summarise(out: Path, clustering_csv: Path) -> str:
    """Markdown: the last evaluation of every 4x curve next to the 1x fits of clustering.py."""
    one_x = pd.read_csv(clustering_csv) if clustering_csv.exists() else pd.DataFrame()
    methods = {"default": "cplmixvi", "paper": "cplmixvi_paper"}
    rows = []
    for path in sorted(out.glob("convergence_*.csv")):
        _, rest = path.stem.split("_", 1)
        name = next(d for d in sorted(DATASETS_K, key=len, reverse=True) if rest.startswith(d))
        config, factor = rest[len(name) + 1 :].rsplit("_x", 1)
        seed = 0
        if "_seed" in config:
            config, seed = config.split("_seed")
        curve = pd.read_csv(path)
        last = curve.iloc[-1]
        row = {"dataset": name, "config": config, "seed": int(seed), "epochs": int(last.epoch)}
        method = methods.get(config.split("_")[0])
        fits = one_x[(one_x.get("dataset") == name) & (one_x.get("method") == method)]
        for col in ("acc", "ari", "ami"):
            row[f"{col} 4x"] = round(float(last[col]), 3)
            if len(fits):
                same = fits[fits.seed == int(seed)][col]
                row[f"{col} 1x (same seed)"] = round(float(same.iloc[0]), 3) if len(same) else None
                row[f"{col} 1x s.d."] = round(float(fits[col].std()), 3)
        row["types 4x"] = int(last.types_with_cells)
        row["consensus 4x"] = round(float(last.consensus), 3)
        rows.append(row)
    return pd.DataFrame(rows).to_markdown(index=False)


DATASETS_K = ("mop_10x", "pbmc_10x_4k", "worm_neuron", "mouse_bladder")


def main(argv: list[str] | None = None) -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mop_10x")
    parser.add_argument("--config", default="default", choices=list(CONFIGS))
    parser.add_argument("--epochs-factor", type=float, default=4.0)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-kwargs", type=json.loads, default={}, help="JSON, e.g. '{}'")
    parser.add_argument("--tag", default="", help="suffix of the output file")
    parser.add_argument(
        "--pretrain-factor",
        type=float,
        default=None,
        help="pretraining epochs as a fraction of the default epochs (default: the package's)",
    )
    parser.add_argument("--subset", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "convergence")
    parser.add_argument(
        "--summarise", action="store_true", help="only write results/convergence.md"
    )
    args = parser.parse_args(argv)
    if args.summarise:
        table = summarise(args.out, args.out.parent / "clustering.csv")
        (args.out.parent / "convergence.md").write_text(table + "\n")
        print(table)
        return
    curve = in_fresh_process(fit_curve, args, threads=args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    seed = f"_seed{args.seed}" if args.seed else ""
    stem = f"convergence_{args.dataset}_{args.config}{args.tag}{seed}_x{args.epochs_factor:g}"
    curve.to_csv(args.out / f"{stem}.csv")
    print(curve.round(3).to_string())


def fit_curve(args: argparse.Namespace) -> pd.DataFrame:
    """One fit in this (fresh) process; its evaluations and loss terms per epoch."""
    import scvi
    import torch
    from clustering import DATASETS, load

    from cplmixvi import CplMixVI
    from cplmixvi.model._training import default_max_epochs

    torch.set_num_threads(args.threads)
    adata = load(args.dataset)
    rng = np.random.default_rng(args.seed)
    subset = np.sort(rng.choice(adata.n_obs, min(args.subset, adata.n_obs), replace=False))
    truth = adata.obs["cell_type"].astype(str).to_numpy()[subset]
    scvi.settings.seed = args.seed
    CplMixVI.setup_anndata(adata)
    model = CplMixVI(
        adata, n_types=DATASETS[args.dataset], **CONFIGS[args.config], **args.model_kwargs
    )
    epochs = int(round(args.epochs_factor * default_max_epochs(adata.n_obs)))
    pretrain = None if args.config == "default" else 0
    if args.pretrain_factor is not None:
        pretrain = int(round(args.pretrain_factor * default_max_epochs(adata.n_obs)))
    rows: list = []
    model.train(
        max_epochs=epochs,
        pretrain_epochs=pretrain,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[curve_callback(model, subset, truth, args.every, rows)],
    )
    curve = pd.DataFrame(rows).set_index("epoch")
    terms = model.history
    for key in (
        "reconstruction_train",
        "kl_state_train",
        "type_entropy_train",
        "coupling_train",
        "consensus_kl_train",
        "arm_agreement_train",
    ):
        if key in terms:
            curve[key.removesuffix("_train")] = (
                terms[key].iloc[:, 0].reindex(curve.index - 1).values
            )
    return curve


if __name__ == "__main__":
    main()
