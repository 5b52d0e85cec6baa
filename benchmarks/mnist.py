"""MNIST (all 70 000 images, K = 10): coupled arms with affine augmentation, and the controls.

Configurations (paper Table 1 and its JointVAE-dagger control):

- ``2arm_affine``: 2 arms, each sees its own random affine copy (rotation, scale, shift),
  followed by a random stroke width when ``--stroke`` > 0;
- ``1arm``: 1 arm, no augmentation (the single mixture VAE);
- ``1arm_affine``: 1 arm trained on the same augmented images ("augmentation alone").

The model's objective is set by ``--coupling-objective`` (``aitchison``: the paper's Eq. 7;
``info``: marginal entropy minus the arms' cross-entropy; ``consensus``: the package default),
``--coupling-weight``, ``--entropy-weight`` and ``--marginal-entropy-weight``; the 1-arm
configurations use the same arguments (a single arm has no coupling term).

Bernoulli likelihood on pixels in ``[0, 1]``, fused labels of all 70 000 images scored with the
Hungarian accuracy (also each arm's own accuracy: the paper averages over arms). One fresh
process per fit, 1 torch thread, ``OMP_WAIT_POLICY=PASSIVE``. Writes
``benchmarks/results/mnist.csv`` and ``mnist.md``.

Usage::

    python benchmarks/mnist.py [--configs 2arm_affine 1arm 1arm_affine] [--seeds 0 1 2]
        [--epochs 12] [--n-hidden 256] [--n-cells 70000] [--tag name]
        [--coupling-objective info --coupling-weight 50 --entropy-weight 0 --stroke 1]
        [--marginal-entropy-weight 25] [--eval-every 3]

The MNIST recipe (README, issue 3) is ``--epochs 30 --coupling-objective info
--coupling-weight 50 --entropy-weight 0 --stroke 1 --marginal-entropy-weight 25``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _env import DATA, finished_rows, in_fresh_processes, record, require_bench_extra  # noqa: E402

HERE = Path(__file__).resolve().parent
MNIST = DATA / "mnist.npz"
# --coupling-objective names (kept for the rows of mnist.csv) -> CplMixVI(objective=...)
OBJECTIVES = {"aitchison": "paper", "info": "info", "consensus": "consensus"}
CONFIGS = {
    "2arm_affine": {"n_arms": 2, "augment": True},
    "1arm": {"n_arms": 1, "augment": False},
    "1arm_affine": {"n_arms": 1, "augment": True},
}


def accuracy_curve_callback(model, images: np.ndarray, truth: np.ndarray, every: int, curve: list):
    """Lightning callback: every ``every`` epochs, the fused ACC on ``images`` into ``curve``."""
    import torch
    from lightning.pytorch.callbacks import Callback

    from cplmixvi.metrics import fuse, hungarian_accuracy

    class AccuracyCurve(Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            epoch = trainer.current_epoch + 1
            if epoch % every:
                return
            module = model.module
            was_training = module.training
            module.eval()
            with torch.inference_mode():
                log_probs = [
                    module.inference(x=torch.as_tensor(chunk), deterministic=True)["log_probs"]
                    for chunk in np.array_split(images, max(1, len(images) // 2048))
                ]
            module.train(was_training)
            labels = fuse(torch.cat(log_probs, 1).numpy()).argmax(-1).astype(str)
            curve.append(f"{epoch}:{hungarian_accuracy(truth, labels):.4f}")

    return AccuracyCurve()


def run_one(config: str, seed: int, settings: dict) -> dict:
    """Fit one model in this (fresh) process and score it on every image."""
    import scvi
    import torch

    import cplmixvi
    from cplmixvi.augment import Compose, RandomAffine, RandomStrokeWidth
    from cplmixvi.metrics import hungarian_accuracy

    torch.set_num_threads(settings["threads"])
    adata = cplmixvi.data.mnist(MNIST)
    if settings["n_cells"] < adata.n_obs:
        rng = np.random.default_rng(0)
        adata = adata[np.sort(rng.choice(adata.n_obs, settings["n_cells"], replace=False))].copy()
    scvi.settings.seed = seed
    spec = CONFIGS[config]
    augmentation = "none"
    if spec["augment"]:
        augmentation = RandomAffine(strength=settings["strength"])
        if settings["stroke"] > 0:
            augmentation = Compose([augmentation, RandomStrokeWidth(strength=settings["stroke"])])
    cplmixvi.CplMixVI.setup_anndata(adata)
    model = cplmixvi.CplMixVI(
        adata,
        n_types=10,
        n_state=settings["n_state"],
        n_arms=spec["n_arms"],
        n_hidden=settings["n_hidden"],
        n_layers=settings["n_layers"],
        gene_likelihood="bernoulli",
        coupling_weight=settings["coupling_weight"],
        objective=OBJECTIVES[settings["coupling_objective"]],
        entropy_weight=settings["entropy_weight"],
        marginal_entropy_weight=settings["marginal_entropy_weight"],
        augmentation=augmentation,
    )
    truth = adata.obs["digit"].astype(str).to_numpy()
    curve: list[str] = []
    callbacks = []
    if settings.get("eval_every", 0) > 0:
        # a fixed 10 000-image subset keeps the per-epoch check cheap
        pick = np.random.default_rng(1).choice(adata.n_obs, min(10_000, adata.n_obs), replace=False)
        images = np.asarray(adata.X[pick], dtype=np.float32)
        callbacks.append(
            accuracy_curve_callback(model, images, truth[pick], settings["eval_every"], curve)
        )
    start = time.perf_counter()
    model.train(
        max_epochs=settings["epochs"],
        lr=settings["lr"],
        batch_size=settings["batch_size"],
        temperature_start=settings["t_start"],
        temperature_end=settings["t_end"],
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    seconds = time.perf_counter() - start
    assignments = model.get_type_assignments(batch_size=2048)
    fused = assignments["type"].astype(str).to_numpy()
    per_arm = model.get_type_probabilities(batch_size=2048, per_arm=True).argmax(-1)
    arm_accs = [hungarian_accuracy(truth, arm.astype(str)) for arm in per_arm]
    return {
        "config": config,
        "seed": seed,
        "acc": hungarian_accuracy(truth, fused),
        "acc_arm_mean": float(np.mean(arm_accs)),
        "n_clusters": int(pd.Series(fused).nunique()),
        "arm_agreement": float(assignments["arm_agreement"].mean()),
        "acc_curve_10k": ";".join(curve),
        **last_epoch_terms(model),
        "n_cells": adata.n_obs,
        "train_s": seconds,
        "s_per_epoch": seconds / settings["epochs"],
        **settings,
    }


def last_epoch_terms(model) -> dict:
    """The loss terms of the last training epoch (per arm and cell, from the history)."""
    keys = (
        "reconstruction",
        "kl_state",
        "type_entropy",
        "marginal_entropy",
        "coupling",
        "mutual_information",
        "arm_agreement",
    )
    history = model.history
    return {
        f"last_{key}": float(history[f"{key}_train"].iloc[-1, 0])
        for key in keys
        if f"{key}_train" in history
    }


def _coupling(row: pd.Series) -> str:
    if row.coupling_objective in ("mi", "info", "consensus"):
        return f"{row.coupling_weight:g} x {row.coupling_objective}"
    return f"{row.coupling_weight:g} x Aitchison ({row.coupling_on})"


def _mean(group: pd.DataFrame, key: str) -> str:
    values = group[key].dropna() if key in group else pd.Series(dtype=float)
    return f"{values.mean():.2f}" if len(values) else "n/a"


def summarise(results: pd.DataFrame) -> str:
    """Markdown: ACC mean +- s.d. (in %) per tag and configuration."""
    results = results.copy()
    # rows written before these options existed used the paper's objective
    defaults = {
        "coupling_on": "sample",
        "coupling_objective": "aitchison",
        "entropy_weight": 1.0,
        "marginal_entropy_weight": 0.0,
        "stroke": 0.0,
    }
    for key, value in defaults.items():
        results[key] = results[key].fillna(value) if key in results else value
    grouped = results.groupby(["tag", "config"], sort=False)
    rows = []

    def pm(values: pd.Series) -> str:
        spread = f"{100 * values.std():.2f}" if len(values) > 1 else "n/a"
        return f"{100 * values.mean():.2f} ± {spread}"

    for (tag, config), group in grouped:
        rows.append(
            {
                "tag": tag,
                "config": config,
                "ACC fused (%)": pm(group.acc),
                "ACC mean of arms (%)": pm(group.acc_arm_mean),
                "arm agreement": _mean(group, "arm_agreement"),
                "coupling": _coupling(group.iloc[0]) if config.startswith("2arm") else "none",
                r"H(c\|x) weight": group.entropy_weight.iloc[0],
                "H(q(c)) weight": group.marginal_entropy_weight.iloc[0],
                "seeds": len(group),
                "images": int(group.n_cells.iloc[0]),
                "epochs": int(group.epochs.iloc[0]),
                "n_hidden": int(group.n_hidden.iloc[0]),
                "affine strength": group.strength.iloc[0],
                "stroke strength": group.stroke.iloc[0],
                "s/epoch (median)": f"{group.s_per_epoch.median():.1f}",
            }
        )
    return pd.DataFrame(rows).to_markdown(index=False)


def main(argv: list[str] | None = None) -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--n-hidden", type=int, default=256)
    parser.add_argument("--n-state", type=int, default=10)
    parser.add_argument("--n-cells", type=int, default=70_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument(
        "--stroke", type=float, default=0.0, help="RandomStrokeWidth strength (0: affine only)"
    )
    parser.add_argument("--coupling-weight", type=float, default=1.0)
    parser.add_argument("--coupling-objective", default="aitchison", choices=list(OBJECTIVES))
    parser.add_argument("--entropy-weight", type=float, default=1.0)
    parser.add_argument("--marginal-entropy-weight", type=float, default=0.0)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--t-start", type=float, default=1.0)
    parser.add_argument("--t-end", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="log the fused ACC on a fixed 10 000-image subset every N epochs (0: never)",
    )
    parser.add_argument("--tag", default="default")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--name", default="mnist", help="stem of the csv and md files")
    parser.add_argument("--summary-only", action="store_true", help="only rewrite mnist.md")
    args = parser.parse_args(argv)
    if args.summary_only:
        summary = summarise(pd.read_csv(args.out / f"{args.name}.csv"))
        (args.out / f"{args.name}.md").write_text(summary + "\n")
        print(summary)
        return
    settings = {
        "tag": args.tag,
        "epochs": args.epochs,
        "n_hidden": args.n_hidden,
        "n_state": args.n_state,
        "n_cells": args.n_cells,
        "batch_size": args.batch_size,
        "strength": args.strength,
        "stroke": args.stroke,
        "coupling_weight": args.coupling_weight,
        "coupling_on": "sample",
        "coupling_objective": args.coupling_objective,
        "entropy_weight": args.entropy_weight,
        "marginal_entropy_weight": args.marginal_entropy_weight,
        "n_layers": args.n_layers,
        "lr": args.lr,
        "t_start": args.t_start,
        "t_end": args.t_end,
        "threads": args.threads,
        "eval_every": args.eval_every,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / f"{args.name}.csv"
    rows, done = finished_rows(csv, ("tag", "config", "seed"))
    calls = [
        (run_one, (config, seed, settings))
        for seed in args.seeds
        for config in args.configs
        if (args.tag, config, seed) not in done
    ]
    record(in_fresh_processes(calls), rows, csv, digits=4)
    (args.out / f"{args.name}.md").write_text(summarise(pd.DataFrame(rows)) + "\n")
    print(summarise(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
