"""Single-seed MNIST screens on a subset: one fit, its accuracy, loss terms and confusion table.

Used to choose the MNIST recipe of ``benchmarks/mnist.py`` (README, issue 3). Each run fits one
2-arm model (seed 0, 1 torch thread) on ``--n-cells`` images drawn as in ``mnist.py`` (the
same subset and seed give the same model as ``mnist.py --n-cells``), scores the fused labels
and each arm with the Hungarian accuracy, and appends a row (with the digit-by-cluster table) to
``benchmarks/results/mnist_screen.jsonl``; ``mnist_screen.md`` summarises every row.

Usage::

    python benchmarks/experiments/mnist_screen.py NAME '{"objective": "info", ...}'
        [--stroke '{}'] [--affine '{"strength": 1.5}'] [--n-cells 10000] [--epochs 40]
    python benchmarks/experiments/mnist_screen.py --summary-only

The JSON holds :class:`cplmixvi.CplMixVI` arguments (``n_hidden`` defaults to 256 and
``n_state`` to 10); ``--stroke`` adds :class:`~cplmixvi.augment.RandomStrokeWidth` (with these
arguments) after ``RandomAffine``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import DATA, require_bench_extra  # noqa: E402

HERE = Path(__file__).resolve().parent
MNIST = DATA / "mnist.npz"
OUT = HERE.parent / "results"


def fit_and_score(
    name: str, kwargs: dict, stroke: dict | None, n_cells: int, epochs: int, affine: dict
) -> dict:
    """Fit one model and return its scores, last-epoch loss terms and confusion table."""
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    import scvi
    import torch

    import cplmixvi
    from cplmixvi.augment import Compose, RandomAffine, RandomStrokeWidth
    from cplmixvi.metrics import hungarian_accuracy

    torch.set_num_threads(1)
    adata = cplmixvi.data.mnist(MNIST)
    rng = np.random.default_rng(0)
    adata = adata[np.sort(rng.choice(adata.n_obs, n_cells, replace=False))].copy()
    scvi.settings.seed = 0
    cplmixvi.CplMixVI.setup_anndata(adata)
    augmentation = RandomAffine(**affine)
    if stroke is not None:
        augmentation = Compose([augmentation, RandomStrokeWidth(**stroke)])
    settings = {"n_types": 10, "n_state": 10, "n_hidden": 256, **kwargs}
    model = cplmixvi.CplMixVI(
        adata, gene_likelihood="bernoulli", augmentation=augmentation, **settings
    )
    start = time.perf_counter()
    model.train(
        max_epochs=epochs, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False
    )
    seconds = time.perf_counter() - start
    truth = adata.obs["digit"].astype(str).to_numpy()
    assignments = model.get_type_assignments(batch_size=2048)
    fused = assignments["type"].astype(int).to_numpy()
    per_arm = model.get_type_probabilities(batch_size=2048, per_arm=True).argmax(-1)
    history = model.history
    last = {
        key[: -len("_train")]: round(float(history[key].iloc[-1, 0]), 3)
        for key in history
        if key.endswith("_train") and not key.startswith(("elbo", "kl_", "reconstruction_loss"))
    }
    return {
        "name": name,
        "kwargs": settings,
        "stroke": stroke,
        "affine": affine,
        "n_cells": n_cells,
        "epochs": epochs,
        "acc": hungarian_accuracy(truth, fused.astype(str)),
        "acc_arms": [hungarian_accuracy(truth, arm.astype(str)) for arm in per_arm],
        "arm_agreement": float(assignments["arm_agreement"].mean()),
        "last_epoch": last,
        "confusion": pd.crosstab(fused, truth).to_dict(orient="index"),
        "train_s": seconds,
        "threads": 1,
    }


def summarise(rows: list[dict]) -> str:
    """Markdown: one line per screen, then the confusion table of each."""
    table = pd.DataFrame(
        {
            "screen": row["name"],
            "ACC fused (%)": round(100 * row["acc"], 2),
            "ACC arms (%)": " / ".join(f"{100 * a:.1f}" for a in row["acc_arms"]),
            "arm agreement (all images)": round(row["arm_agreement"], 3),
            "arm agreement (training copies)": row["last_epoch"].get("arm_agreement"),
            "H(c|x)": row["last_epoch"].get("type_entropy"),
            "H(q(c))": row["last_epoch"].get("marginal_entropy"),
            "settings": json.dumps(
                row["kwargs"] | {"stroke": row["stroke"], "affine": row.get("affine", {})}
            ),
            "images": row["n_cells"],
            "epochs": row["epochs"],
            "train s": round(row["train_s"]) if row.get("train_s") else "n/a",
            "run by": "first draft (log)" if row.get("note") else "this script",
        }
        for row in rows
    )
    parts = [
        "Single seed (0), 1 torch thread; `python benchmarks/experiments/mnist_screen.py` "
        "(see its docstring).",
        "Rows run by the script's first draft (the same fit and scores, the "
        "arguments of `stroke`/`n_hidden` spelled differently) were parsed from its log (their "
        "`note` in the jsonl); `paper` "
        "reproduces `mnist.py --n-cells 10000 --epochs 40` (row `scr_paper` of "
        "`mnist_explore.csv`) to the last digit.",
        "",
        table.to_markdown(index=False),
    ]
    for row in rows:
        confusion = pd.DataFrame(row["confusion"]).T.fillna(0).astype(int)
        confusion.index.name = "cluster \\ digit"
        parts += ["", f"### {row['name']}", "", confusion.to_markdown()]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?")
    parser.add_argument("kwargs", nargs="?", default="{}")
    parser.add_argument("--stroke", default=None, help="RandomStrokeWidth arguments (JSON)")
    parser.add_argument("--affine", default="{}", help="RandomAffine arguments (JSON)")
    parser.add_argument("--n-cells", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args(argv)
    log = OUT / "mnist_screen.jsonl"
    if not args.summary_only:
        if args.name is None:
            parser.error("give a NAME (and settings) or --summary-only")
        stroke = None if args.stroke is None else json.loads(args.stroke)
        row = fit_and_score(
            args.name,
            json.loads(args.kwargs),
            stroke,
            args.n_cells,
            args.epochs,
            json.loads(args.affine),
        )
        with log.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print({k: row[k] for k in ("name", "acc", "acc_arms", "arm_agreement", "last_epoch")})
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    (OUT / "mnist_screen.md").write_text(summarise(rows))


if __name__ == "__main__":
    main()
