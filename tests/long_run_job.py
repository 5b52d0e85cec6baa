"""A training or pruning job that kills itself with SIGKILL part-way (for ``test_long_runs.py``).

Usage: ``python long_run_job.py train|prune CHECKPOINT_DIR N_THREADS``. ``train`` kills the
process in the middle of epoch ``KILL_EPOCH`` of :func:`fit`; ``prune`` kills it when the
fine-tuning of pruning round ``KILL_ROUND`` starts, i.e. between two finished rounds.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import scvi
import torch
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import make_counts_adata  # noqa: E402

import cplmixvi.model._pruning as pruning  # noqa: E402
from cplmixvi import CplMixVI  # noqa: E402

TRAIN = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "batch_size": 64}
FIT = {**TRAIN, "pretrain_epochs": 3}  # a fit of MAX_EPOCHS: k-means at the start of epoch 3
MAX_EPOCHS, KILL_EPOCH = 6, 4
PRUNE = {"threshold": 1.0, "min_types": 2, "epochs_per_round": 1, "max_rounds": 3}
KILL_ROUND = 2


def one_per_round(weak_types):
    """The pruning rule cut to one removal per round, so that the job has several rounds."""

    def first(*args, **kwargs):
        return weak_types(*args, **kwargs)[:1]

    return first


def build():
    """The seeded data and model shared by the job and the tests."""
    scvi.settings.seed = 0
    adata = make_counts_adata(n_cells=200, n_genes=30)
    CplMixVI.setup_anndata(adata)
    return adata, CplMixVI(adata, n_types=5, n_hidden=16, n_layers=1)


class KillMidEpoch(Callback):
    """SIGKILL this process at the second minibatch of ``epoch``."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == 1:
            os.kill(os.getpid(), signal.SIGKILL)


class KillAtFit(Callback):
    """SIGKILL this process when its ``n``-th fit with this callback starts."""

    def __init__(self, n: int):
        self.n, self.fits = n, 0

    def on_train_start(self, trainer, pl_module) -> None:
        self.fits += 1
        if self.fits == self.n:
            os.kill(os.getpid(), signal.SIGKILL)


def main(kind: str, checkpoint_dir: str, n_threads: int) -> None:
    torch.set_num_threads(n_threads)
    adata, model = build()
    if kind == "train":
        callbacks = [KillMidEpoch(KILL_EPOCH)]
        model.train(MAX_EPOCHS, checkpoint_dir=checkpoint_dir, callbacks=callbacks, **FIT)
    else:
        pruning.weak_types = one_per_round(pruning.weak_types)
        model.train(4, **TRAIN)
        callbacks = [KillAtFit(KILL_ROUND + 1)]
        model.prune(checkpoint_dir=checkpoint_dir, callbacks=callbacks, **PRUNE, **TRAIN)
    raise SystemExit("the job was not killed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
