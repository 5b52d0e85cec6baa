"""Checkpoints of a running fit: numbered folders written atomically, and the random state.

A checkpoint folder (``checkpoint_dir``) holds one finished checkpoint, a numbered sub-folder
``000007-epoch12`` (the number orders checkpoints, the label says what it holds). A new one is
written into a hidden ``.000008-epoch14.partial`` folder, flushed to disk and only then renamed
to its final name, which is atomic on POSIX file systems; the older checkpoint is deleted after
that. A crash (even ``SIGKILL``) while a checkpoint is written therefore leaves the previous one
complete, and :func:`latest_checkpoint` never returns a partly written folder.

:class:`EpochCheckpoint` writes such a folder every ``every_n_epochs`` epochs with Lightning's
own checkpoint of the fit (``trainer.ckpt``: weights, optimizer, learning-rate schedulers, loop
counters, callback states) and lets the model add its files (the random state and the epochs'
history among them).
"""

from __future__ import annotations

import os
import random
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

TRAINER_FILE = "trainer.ckpt"
_NUMBERED = re.compile(r"(\d{6})-[A-Za-z0-9_=.-]+")


def random_state() -> dict:
    """The state of the global random generators of torch (CPU and CUDA), numpy and Python."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (the legacy global generator)
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict) -> None:
    """Restore the generators saved by :func:`random_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_checkpoint(checkpoint_dir: str) -> str | None:
    """The newest finished checkpoint folder inside ``checkpoint_dir``, or ``None``."""
    if not os.path.isdir(checkpoint_dir):
        return None
    names = sorted(
        name
        for name in os.listdir(checkpoint_dir)
        if _NUMBERED.fullmatch(name) and os.path.isdir(os.path.join(checkpoint_dir, name))
    )
    return os.path.join(checkpoint_dir, names[-1]) if names else None


def resolve_checkpoint(path: str, file_name: str = "model.pt") -> str:
    """``path`` itself when it holds ``file_name``, else its newest checkpoint (if it has one)."""
    if os.path.exists(os.path.join(path, file_name)):
        return path
    return latest_checkpoint(path) or path


def fsync_tree(path: str) -> None:
    """Flush every file in ``path`` and the folder itself to disk."""
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            with open(full, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(path)


def fsync_dir(path: str) -> None:
    """Flush a folder's entries (renames, new files) to disk, where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def next_checkpoint_name(checkpoint_dir: str, label: str) -> str:
    """The name of the next numbered checkpoint folder, e.g. ``000008-epoch14``."""
    latest = latest_checkpoint(checkpoint_dir)
    number = int(os.path.basename(latest)[:6]) + 1 if latest else 0
    return f"{number:06d}-{label}"


def staging_folder(checkpoint_dir: str, name: str) -> str:
    """Where checkpoint ``name`` is written before it is published."""
    return os.path.join(checkpoint_dir, f".{name}.partial")


def begin_checkpoint(checkpoint_dir: str, name: str) -> str:
    """Create (empty) and return the staging folder of checkpoint ``name``."""
    staging = staging_folder(checkpoint_dir, name)
    os.makedirs(checkpoint_dir, exist_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    return staging


def publish_checkpoint(checkpoint_dir: str, name: str) -> str:
    """Flush the staging folder of ``name``, rename it into place, delete older checkpoints."""
    staging = staging_folder(checkpoint_dir, name)
    fsync_tree(staging)
    final = os.path.join(checkpoint_dir, name)
    os.rename(staging, final)
    fsync_dir(checkpoint_dir)
    _remove_older(checkpoint_dir, keep=name)
    return final


@contextmanager
def new_checkpoint(checkpoint_dir: str, name: str) -> Iterator[str]:
    """Yield the staging folder of checkpoint ``name``; publish it atomically when done.

    Files written into the yielded folder become ``checkpoint_dir/name`` only once the block
    finishes without an error: they are flushed, the folder is renamed into place and the
    folder entry flushed; the older checkpoints and left-over staging folders are then
    deleted. On an error the staging folder is removed and the previous checkpoint stays.
    """
    staging = begin_checkpoint(checkpoint_dir, name)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish_checkpoint(checkpoint_dir, name)


def _remove_older(checkpoint_dir: str, keep: str) -> None:
    for entry in os.listdir(checkpoint_dir):
        stale = _NUMBERED.fullmatch(entry) or (entry.startswith(".") and entry.endswith(".partial"))
        if stale and entry != keep:
            shutil.rmtree(os.path.join(checkpoint_dir, entry), ignore_errors=True)


def copy_history(history: dict | None) -> dict | None:
    """A copy of a ``{metric: DataFrame}`` training history (``None`` stays ``None``)."""
    if history is None:
        return None
    return {key: frame.copy() for key, frame in history.items()}


class EpochCheckpoint(Callback):
    """Write a resumable checkpoint of the fit every ``every_n_epochs`` epochs.

    At the end of epoch ``e`` (when ``e + 1`` is a multiple of ``every_n_epochs`` and not the
    last epoch) the random state is taken and Lightning's checkpoint of the fit is written
    (``trainer.ckpt``, all processes take part; Lightning resumes from such end-of-epoch
    checkpoints at the next epoch). At the start of epoch ``e + 1``, once Lightning has logged
    epoch ``e``, the first process adds the model's files with ``write_files(folder, info)``
    and publishes the folder atomically; ``info`` holds the ``epoch`` count ``e + 1``, the
    ``random_state``, this fit's ``history`` so far (from a logger with a ``history``, such as
    scvi-tools' default) and the data ``split`` (training, validation, test indices).

    No checkpoint is taken at the end of the epoch before the one in which the plan
    initialises its types (``pl_module.init_types`` at epoch ``pl_module.pretrain_epochs``):
    that initialisation draws random numbers, which a resumed fit would draw after Lightning
    has set up its first minibatches instead of before, so the resumed fit would differ.

    Parameters
    ----------
    dirpath
        The checkpoint folder (it keeps the newest checkpoint, see :func:`new_checkpoint`).
    every_n_epochs
        Epochs between checkpoints.
    write_files
        ``write_files(folder, info)``: writes the model's own files into the staging folder.
    start_epoch
        Epochs already finished when this fit starts (a resumed fit: Lightning repeats the end
        of that epoch, which is not checkpointed again).
    """

    def __init__(
        self,
        dirpath: str,
        every_n_epochs: int = 1,
        write_files: Callable[[str, dict], None] | None = None,
        start_epoch: int = 0,
    ):
        if every_n_epochs < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {every_n_epochs}.")
        self.dirpath = os.fspath(dirpath)
        self.every_n_epochs = int(every_n_epochs)
        self.write_files = write_files
        self.start_epoch = start_epoch
        self._staged: tuple[str, dict] | None = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Take the random state and Lightning's checkpoint when one is due."""
        done = trainer.current_epoch + 1
        init_epoch = getattr(pl_module, "pretrain_epochs", None)
        if getattr(pl_module, "init_types", None) is None:
            init_epoch = None
        due = done % self.every_n_epochs == 0 and done not in (trainer.max_epochs, init_epoch)
        if not due or done <= self.start_epoch:
            return
        info = {"epoch": done, "random_state": random_state()}
        name = (
            next_checkpoint_name(self.dirpath, f"epoch{done}") if trainer.is_global_zero else None
        )
        name = trainer.strategy.broadcast(name, src=0)
        if trainer.is_global_zero:
            begin_checkpoint(self.dirpath, name)
        trainer.strategy.barrier("EpochCheckpoint.begin")
        trainer.save_checkpoint(os.path.join(staging_folder(self.dirpath, name), TRAINER_FILE))
        self._staged = (name, info)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """Complete and publish the checkpoint taken at the end of the previous epoch."""
        if self._staged is None:
            return
        name, info = self._staged
        if trainer.is_global_zero:
            history = getattr(trainer.logger, "history", None)
            info["history"] = copy_history(history) if isinstance(history, dict) else None
            splitter = trainer.datamodule
            keys = ("train_idx", "val_idx", "test_idx")
            info["split"] = [_indices(splitter, key) for key in keys]
            if self.write_files is not None:
                self.write_files(staging_folder(self.dirpath, name), info)
            publish_checkpoint(self.dirpath, name)
        self._staged = None
        trainer.strategy.barrier("EpochCheckpoint.publish")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Drop a checkpoint that was not complete (the previous one stays)."""
        if self._staged is not None and trainer.is_global_zero:
            shutil.rmtree(staging_folder(self.dirpath, self._staged[0]), ignore_errors=True)
        self._staged = None


def _indices(splitter, key: str) -> np.ndarray:
    """A data splitter's cell indices ``key`` as integers (empty when it has none)."""
    value = getattr(splitter, key, None)
    return np.asarray([] if value is None else value, dtype=np.int64)
