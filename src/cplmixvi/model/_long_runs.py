"""Long runs: checkpoints and resume of ``train``/``prune``, and interrupted fits.

A checkpoint folder (see :mod:`cplmixvi.train._checkpoint`) holds

- ``model.pt``: the model as :meth:`~cplmixvi.CplMixVI.save` writes it, loadable with
  :meth:`~cplmixvi.CplMixVI.load`; a checkpoint taken during training is marked as not fully
  trained (``training_stopped_``) and its ``history`` ends at the checkpoint's epoch;
- ``resume.pt``: what :meth:`~cplmixvi.CplMixVI.train` or :meth:`~cplmixvi.CplMixVI.prune`
  needs to go on: the call's arguments, the random state, the data split, the history so far
  and the state of the model before the call;
- ``trainer.ckpt`` (training only): Lightning's checkpoint of the fit (weights, optimizer,
  schedulers, epoch and step counters, callback states).
"""

from __future__ import annotations

import inspect
import os
import pickle
import signal
import warnings
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import pandas as pd
import scvi
import torch
from lightning.pytorch.callbacks import Callback
from scvi.model.base import BaseModelClass

from cplmixvi.train._checkpoint import (
    TRAINER_FILE,
    EpochCheckpoint,
    copy_history,
    latest_checkpoint,
    new_checkpoint,
    next_checkpoint_name,
    random_state,
    resolve_checkpoint,
    set_random_state,
)
from cplmixvi.train._guard import TrainingGuard

RESUME_FILE = "resume.pt"
#: trainer arguments never stored in a checkpoint: they hold live objects (give them again)
_NOT_SAVED = ("callbacks", "logger", "ckpt_path", "plugins", "profiler")


class LongRunsMixin:
    """A warning on every use of a model whose fit stopped early."""

    #: ``None``, or where the fit stopped: ``{"epoch", "max_epochs", "reason"}``
    training_stopped_: dict | None = None

    def _check_if_trained(self, warn: bool = True, message: str | None = None) -> None:
        kwargs = {} if message is None else {"message": message}
        super()._check_if_trained(warn=warn, **kwargs)
        stopped = self.training_stopped_
        if stopped:
            warnings.warn(
                f"This model is not fully trained: its training stopped after epoch "
                f"{stopped['epoch']} of {stopped['max_epochs']} ({stopped['reason']}); "
                "`model.history` ends there. Continue it with `model.train(resume=True)` from a "
                "checkpoint, or train it again.",
                UserWarning,
                stacklevel=scvi.settings.warnings_stacklevel,
            )


# ----- the arguments of a call -------------------------------------------------------------------
def call_arguments(local_vars: dict) -> dict:
    """A call's arguments from its ``locals()`` (taken first thing in the method)."""
    call = {key: value for key, value in local_vars.items() if key not in ("self", "__class__")}
    call["trainer_kwargs"] = dict(call.get("trainer_kwargs") or {})
    return call


def given_arguments(method: Callable, call: dict) -> dict:
    """The arguments of ``call`` that differ from ``method``'s defaults (and every ``**`` one)."""
    given = dict(call.get("trainer_kwargs", {}))
    for name, param in inspect.signature(method).parameters.items():
        if name in call and param.kind is not param.VAR_KEYWORD:
            value = call[name]
            if param.default is param.empty or not _same(value, param.default):
                given[name] = value
    given.pop("resume", None)
    return given


def _same(value, default) -> bool:
    try:
        return bool(value is default or value == default)
    except Exception:  # e.g. arrays
        return False


def storable(call: dict) -> tuple[dict, list[str]]:
    """The call without what cannot or should not be pickled into a checkpoint, and those names."""
    kept, dropped = {}, []
    for key, value in call.items():
        if key in ("trainer_kwargs", "train_kwargs"):
            sub, lost = storable({k: v for k, v in value.items() if k not in _NOT_SAVED})
            kept[key] = sub
            dropped += lost + [k for k in value if k in _NOT_SAVED and k != "ckpt_path"]
            continue
        try:
            pickle.dumps(value)
        except Exception:
            dropped.append(key)
            continue
        kept[key] = value
    return kept, dropped


def replay(call: dict) -> dict:
    """Keyword arguments that repeat a stored call (the trainer arguments flattened)."""
    args = {key: value for key, value in call.items() if key not in ("trainer_kwargs", "resume")}
    return {**args, **call.get("trainer_kwargs", {})}


# ----- training: callbacks, checkpoints, stopping ------------------------------------------------
class _RestoreFit(Callback):
    """On resume: put the checkpoint's history back into the logger and its random state back."""

    def __init__(self, state: dict):
        self.state = state

    def on_fit_start(self, trainer, pl_module) -> None:
        history = getattr(trainer.logger, "history", None)
        if isinstance(history, dict) and self.state.get("history"):
            history.update(copy_history(self.state["history"]))
        set_random_state(self.state["random_state"])


def fault_callbacks(
    model, call: dict, max_epochs: int, pretrain_epochs: int
) -> tuple[TrainingGuard, list[Callback]]:
    """The callbacks of a ``train`` call: the guard, checkpoints and the resume of a fit.

    Checkpoints store the call with its resolved ``max_epochs`` and ``pretrain_epochs``, so
    that a resume with another ``max_epochs`` keeps the pretraining phase it had.
    """
    resume = model.__dict__.pop("_resume", None)
    call = resume["call"] if resume else call
    call = {**call, "max_epochs": max_epochs, "pretrain_epochs": pretrain_epochs}
    guard = TrainingGuard()
    callbacks: list[Callback] = [guard]
    if resume:
        callbacks.append(_RestoreFit(resume["state"]))
    if call.get("checkpoint_dir") is not None:
        saved, dropped = storable(call)
        if dropped:
            warnings.warn(
                f"Checkpoints do not store the arguments {dropped}; give them again to "
                "`train(resume=True)`.",
                UserWarning,
                stacklevel=scvi.settings.warnings_stacklevel,
            )
        write_files = _TrainingFiles(model, saved, max_epochs)
        every, start = call.get("checkpoint_every", 1), resume["state"]["epoch"] if resume else 0
        callbacks.append(EpochCheckpoint(call["checkpoint_dir"], every, write_files, start))
    return guard, callbacks


class _TrainingFiles:
    """Writes ``resume.pt`` and ``model.pt`` into a training checkpoint (a picklable callable)."""

    def __init__(self, model, call: dict, max_epochs: int):
        self.model, self.call, self.max_epochs = model, call, max_epochs
        history = model.history_ if isinstance(model.history_, dict) else None
        self.before = {  # the model before this train() call, which resume puts back
            "is_trained": model.is_trained_,
            "history": copy_history(history),
            "training_stopped": model.training_stopped_,
        }

    def __call__(self, folder: str, info: dict) -> None:
        state = {"kind": "train", "call": self.call, "max_epochs": self.max_epochs, **info}
        state.update(before=self.before, seed=scvi.settings.seed)
        torch.save(state, os.path.join(folder, RESUME_FILE))
        stopped = {"epoch": info["epoch"], "max_epochs": self.max_epochs, "reason": "checkpoint"}
        attrs = {"is_trained_": True, "training_stopped_": stopped}
        attrs["history_"] = merge_history(self.before, info["history"])
        with _attributes(self.model, attrs):
            BaseModelClass.save(self.model, folder, overwrite=True)


def merge_history(before: dict, history: dict | None) -> dict | None:
    """This fit's history after the earlier fits' one, as scvi-tools merges them after a fit."""
    if not before["is_trained"] or not isinstance(before["history"], dict):
        return copy_history(history)
    merged = copy_history(before["history"])
    for key, frame in (history or {}).items():
        if key in merged:
            frame = frame.set_axis(np.arange(len(merged[key]), len(merged[key]) + len(frame)))
            merged[key] = pd.concat([merged[key], frame]).rename_axis(merged[key].index.name)
    return merged


@contextmanager
def _attributes(obj, values: dict):
    """Set attributes of ``obj`` for the block, then put the old values back."""
    old = {key: getattr(obj, key) for key in values}
    for key, value in values.items():
        setattr(obj, key, value)
    try:
        yield
    finally:
        for key, value in old.items():
            setattr(obj, key, value)


def run_guarded(model, runner, guard: TrainingGuard, max_epochs: int) -> None:
    """Run ``runner()``; if it stops early, leave a usable model at its last finished epoch.

    On any exception after training started, the model keeps the weights of the last
    finished epoch (:class:`~cplmixvi.train.TrainingGuard`), is marked as trained but not
    fully (``training_stopped_``, a warning on use) and the exception propagates; Lightning's
    way of ending a fit on ``KeyboardInterrupt`` (``SystemExit``, ``SIGINT`` ignored) becomes
    a ``KeyboardInterrupt`` again with ``SIGINT`` handled as before.
    """
    sigint = signal.getsignal(signal.SIGINT)
    try:
        runner()
    except BaseException as error:
        _restore_sigint(sigint)
        stopped = guard.finished_epochs
        if stopped is None:  # training never started
            raise
        _mark_stopped(model, runner, stopped, max_epochs, guard.exception or error)
        if isinstance(error, SystemExit) and isinstance(guard.exception, KeyboardInterrupt):
            raise KeyboardInterrupt(
                f"Training interrupted; the model is the one after epoch {stopped}."
            ) from None
        raise
    model.training_stopped_ = None


def _restore_sigint(handler) -> None:
    if handler is not None and signal.getsignal(signal.SIGINT) != handler:
        try:
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            pass


def _mark_stopped(model, runner, epoch: int, max_epochs: int, error: BaseException) -> None:
    model.module.eval()
    if epoch == 0 and not model.is_trained_:
        return  # nothing was trained: the model stays untrained
    model.is_trained_ = True
    model.training_stopped_ = {
        "epoch": epoch,
        "max_epochs": max_epochs,
        "reason": type(error).__name__,
    }
    splitter = runner.data_splitter
    for attr, key in (("train", "train_idx"), ("validation", "val_idx"), ("test", "test_idx")):
        if getattr(splitter, key, None) is not None:
            setattr(model, f"{attr}_indices", getattr(splitter, key))
    warnings.warn(
        f"Training stopped ({type(error).__name__}) after epoch {epoch} of {max_epochs}; the "
        "model keeps the weights of that epoch and is marked as not fully trained.",
        UserWarning,
        stacklevel=scvi.settings.warnings_stacklevel,
    )


# ----- resume ------------------------------------------------------------------------------------
def remember_checkpoint(model, folder: str):
    """Note the checkpoint a loaded model came from, for ``train(resume=True)``."""
    if os.path.exists(os.path.join(folder, RESUME_FILE)):
        model.__dict__["_checkpoint_path"] = folder
    return model


def checkpoint_to_resume(model, resume, checkpoint_dir: str | None) -> tuple[str, dict]:
    """The checkpoint folder ``resume`` points to and its ``resume.pt``."""
    if resume is True:
        folder = model.__dict__.get("_checkpoint_path")
        if folder is not None and not os.path.isdir(folder):  # replaced by a newer checkpoint
            folder = latest_checkpoint(os.path.dirname(os.path.abspath(folder)))
        if folder is None and checkpoint_dir is not None:
            folder = latest_checkpoint(checkpoint_dir)
        if folder is None:
            raise ValueError(
                "resume=True needs a model loaded from a checkpoint "
                "(`CplMixVI.load(checkpoint_dir, adata)`), a checkpoint_dir that holds one, or "
                "resume=<checkpoint folder>."
            )
    else:
        folder = resolve_checkpoint(os.fspath(resume), RESUME_FILE)
    path = os.path.join(folder, RESUME_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No checkpoint to resume from in {folder} (no {RESUME_FILE}).")
    return folder, torch.load(path, map_location="cpu", weights_only=False)


def resume_training(model, resume, call: dict):
    """Go on with the ``train`` call a checkpoint was written by (see ``CplMixVI.train``)."""
    folder, info = checkpoint_to_resume(model, resume, call.get("checkpoint_dir"))
    if info["kind"] == "prune":
        return resume_pruning(model, folder, **call["trainer_kwargs"])
    given = given_arguments(model.train, call)
    saved = dict(info["call"], checkpoint_dir=os.path.dirname(os.path.abspath(folder)))
    saved_trainer = {**saved["trainer_kwargs"], **call["trainer_kwargs"]}
    saved = {**saved, **{k: v for k, v in given.items() if k not in call["trainer_kwargs"]}}
    saved["trainer_kwargs"] = saved_trainer
    before = info["before"]
    model.is_trained_, model.history_ = before["is_trained"], copy_history(before["history"])
    model.training_stopped_ = before["training_stopped"]
    _restore_seed(info["seed"])
    args = replay(saved)
    args["ckpt_path"] = os.path.join(folder, TRAINER_FILE)
    args["datasplitter_kwargs"] = {
        **(args.get("datasplitter_kwargs") or {}),
        "external_indexing": [np.asarray(idx, dtype=np.int64) for idx in info["split"]],
    }
    model.__dict__["_resume"] = {"call": saved, "state": info}
    return model.train(**args)


def _restore_seed(seed) -> None:
    """``scvi.settings.seed`` of the interrupted run (the data split and k-means use it)."""
    if seed is not None and scvi.settings.seed != seed:
        scvi.settings.seed = seed


# ----- pruning -----------------------------------------------------------------------------------
def prune_checkpoints(model, checkpoint_dir: str | None, call: dict) -> Callable | None:
    """The hook of :func:`~cplmixvi.model._pruning.prune_types` that writes round checkpoints."""
    if checkpoint_dir is None:
        return None
    from cplmixvi.model._pruning import history_frames

    saved, dropped = storable(call)
    if dropped:
        warnings.warn(
            f"Pruning checkpoints do not store the arguments {dropped}; give them again to "
            "`prune(resume=True)`.",
            UserWarning,
            stacklevel=scvi.settings.warnings_stacklevel,
        )

    def on_round(rows: list, agreement: list, epochs: int, n_removed: int) -> None:
        state = {"kind": "prune", "call": saved, "random_state": random_state()}
        state.update(progress=(rows, agreement, epochs, n_removed), seed=scvi.settings.seed)
        name = next_checkpoint_name(checkpoint_dir, f"round{len(rows)}")
        history, table = history_frames(rows, agreement)
        with new_checkpoint(checkpoint_dir, name) as folder:
            torch.save(state, os.path.join(folder, RESUME_FILE))
            attrs = {"pruning_history_": history, "pruning_agreement_": table}
            with _attributes(model, attrs):
                BaseModelClass.save(model, folder, overwrite=True)

    return on_round


def resume_pruning(model, resume, **train_kwargs):
    """Go on with the ``prune`` call a checkpoint was written by, from its last finished round."""
    from cplmixvi.model._pruning import prune_types

    folder, info = checkpoint_to_resume(model, resume, None)
    if info["kind"] != "prune":
        raise ValueError(
            f"{folder} is a checkpoint of training, not of pruning; use `train(resume=True)`."
        )
    call = dict(info["call"])
    call["train_kwargs"] = {**call["train_kwargs"], **train_kwargs}
    checkpoint_dir = os.path.dirname(os.path.abspath(folder))
    _restore_seed(info["seed"])
    set_random_state(info["random_state"])
    model.pruning_history_, model.pruning_agreement_ = prune_types(
        model,
        **call,
        on_round=prune_checkpoints(model, checkpoint_dir, call),
        start=info["progress"],
    )
    return model.pruning_history_
