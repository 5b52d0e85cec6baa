"""Which model setting lets the simulator's planted state be learned? (seed 0, one fit each)

Runs the simulator part of ``benchmarks/states.py`` (3 000 cells, 5 types, default slopes) with
other model settings and prints, for the cells grid, the Hungarian ACC, the mean top-n
precision of the planted state genes and the mean |Spearman| between the inferred state and the
planted one. Usage::

    OMP_NUM_THREADS=1 python benchmarks/experiments/states_variants.py [NAME ...]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import scvi
import torch

import cplmixvi

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import states  # noqa: E402

VARIANTS = {  # model arguments; "max_epochs" goes to train()
    "default": {},
    "thinning": {"augmentation": "thinning"},
    "prior_normal": {"state_prior": "normal"},
    "none_aug": {"augmentation": "none"},
    "epochs400": {"max_epochs": 400},
    "n_state5": {"n_state": 5},
}


def fitter(kwargs: dict):
    """A replacement for ``states.fit`` that builds the model with ``kwargs``."""

    def fit(adata, n_types: int, seed: int, layer: str = "counts") -> cplmixvi.CplMixVI:
        model_kwargs = dict(kwargs)
        max_epochs = model_kwargs.pop("max_epochs", None)
        scvi.settings.seed = seed
        cplmixvi.CplMixVI.setup_anndata(adata, layer=layer)
        model = cplmixvi.CplMixVI(adata, n_types=n_types, **model_kwargs)
        model.train(max_epochs=max_epochs, accelerator="cpu", enable_progress_bar=False)
        model.write_results(adata)
        return model

    return fit


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    states.simulator_figure = lambda *args, **kwargs: None
    for name in names:
        states.fit = fitter(VARIANTS[name])
        start = time.time()
        rows = pd.DataFrame(states.simulator_rows(0))
        cells = rows[rows["grid"] == "cells"]
        print(
            f"{name}: acc={cells['acc'].iloc[0]:.3f} "
            f"precision={cells['precision_at_n'].mean():.3f} "
            f"abs_spearman={cells['abs_spearman_state'].mean():.3f} "
            f"per type precision {cells['precision_at_n'].round(2).tolist()} "
            f"({time.time() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:] or list(VARIANTS))
