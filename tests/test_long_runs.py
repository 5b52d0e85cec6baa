"""Long runs: checkpoints, resume after SIGKILL, interrupts, non-finite losses, atomic save."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback

import cplmixvi.model._pruning as pruning
import cplmixvi.model._training as cplmixvi_model
from cplmixvi import CplMixVI
from cplmixvi.train import NonFiniteLossError, latest_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
import long_run_job as job  # noqa: E402

JOB = Path(__file__).resolve().parent / "long_run_job.py"


def _run_job(kind: str, checkpoint_dir: Path) -> None:
    """Run ``long_run_job.py`` in a fresh interpreter and check that it died of SIGKILL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [sys.executable, str(JOB), kind, str(checkpoint_dir), str(torch.get_num_threads())]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]


def _weights(model) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.module.state_dict().items()}


def _assert_same_weights(model, reference: dict[str, torch.Tensor]) -> None:
    state = model.module.state_dict()
    assert state.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(state[key], value), key


def _assert_same_history(history: dict, reference: dict) -> None:
    assert history.keys() == reference.keys()
    for key, frame in reference.items():
        pd.testing.assert_frame_equal(history[key], frame, check_dtype=False)


@pytest.fixture(scope="module")
def uninterrupted():
    """The job's model trained without interruption: weights and history."""
    _, model = job.build()
    model.train(job.MAX_EPOCHS, **job.FIT)
    return _weights(model), model.history


class StopAt(Callback):
    """Raise ``error`` at the second minibatch of ``epoch``."""

    def __init__(self, epoch: int, error: BaseException):
        self.epoch, self.error = epoch, error

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == 1:
            raise self.error


# ----- resume ------------------------------------------------------------------------------------
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path, uninterrupted, monkeypatch):
    _run_job("train", tmp_path)
    folder = latest_checkpoint(tmp_path)
    assert os.path.basename(folder) == f"000002-epoch{job.KILL_EPOCH}"  # epochs 1, 2 and 4
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]
    adata, _ = job.build()
    model = CplMixVI.load(str(tmp_path), adata)
    assert model.training_stopped_["epoch"] == job.KILL_EPOCH
    with pytest.warns(UserWarning, match="not fully trained"):
        model.get_type_probabilities()  # a checkpoint is usable, with a warning
    calls = []
    monkeypatch.setattr(cplmixvi_model, "init_types_by_kmeans", lambda m, k: calls.append(m))
    model.train(resume=True)  # after the k-means start at epoch 3: not done again
    assert calls == []
    assert model.training_stopped_ is None and model.is_trained_
    weights, history = uninterrupted
    _assert_same_weights(model, weights)
    _assert_same_history(model.history, history)


def test_resume_before_the_type_initialisation_does_it(tmp_path, uninterrupted):
    adata, model = job.build()
    with pytest.raises(RuntimeError, match="stop"), pytest.warns(UserWarning, match="stopped"):
        model.train(
            job.MAX_EPOCHS,
            checkpoint_dir=tmp_path,
            checkpoint_every=2,
            callbacks=[StopAt(2, RuntimeError("stop"))],
            **job.FIT,
        )
    assert os.path.basename(latest_checkpoint(tmp_path)) == "000000-epoch2"
    resumed = CplMixVI.load(str(tmp_path), adata)
    resumed.train(resume=True)  # k-means at epoch 3 = pretrain_epochs, still to come
    weights, history = uninterrupted
    _assert_same_weights(resumed, weights)
    _assert_same_history(resumed.history, history)
    assert os.path.basename(latest_checkpoint(tmp_path)) == "000001-epoch4"


def test_resume_with_validation_early_stopping_and_schedules(tmp_path):
    settings = {
        "early_stopping": True,
        "plan_kwargs": {
            "n_epochs_kl_warmup": 4,
            "reduce_lr_on_plateau": True,
            "lr_scheduler_metric": "elbo_validation",
        },
        **job.FIT,
    }
    _, model = job.build()
    model.train(job.MAX_EPOCHS, **settings)
    adata, stopped = job.build()
    with pytest.raises(RuntimeError, match="stop"), pytest.warns(UserWarning, match="stopped"):
        stop = [StopAt(5, RuntimeError("stop"))]
        stopped.train(job.MAX_EPOCHS, checkpoint_dir=tmp_path, callbacks=stop, **settings)
    resumed = CplMixVI.load(str(tmp_path), adata)
    resumed.train(resume=True)
    _assert_same_weights(resumed, _weights(model))
    _assert_same_history(resumed.history, model.history)
    assert "elbo_validation" in resumed.history and "lr-Adam" in resumed.history


def test_pruning_killed_between_rounds_resumes(tmp_path, monkeypatch):
    _run_job("prune", tmp_path)
    monkeypatch.setattr(pruning, "weak_types", job.one_per_round(pruning.weak_types))
    assert os.path.basename(latest_checkpoint(tmp_path)) == f"000001-round{job.KILL_ROUND}"
    adata, model = job.build()
    model.train(4, **job.TRAIN)
    reference = model.prune(**job.PRUNE, **job.TRAIN)
    resumed = CplMixVI.load(str(tmp_path), adata)
    assert len(resumed.pruning_history_) == job.KILL_ROUND  # the finished rounds
    history = resumed.train(resume=True)  # the same as resumed.prune(resume=True) here
    pd.testing.assert_frame_equal(history, reference)
    pd.testing.assert_frame_equal(resumed.pruning_agreement_, model.pruning_agreement_)
    _assert_same_weights(resumed, _weights(model))
    assert resumed.active_types.tolist() == model.active_types.tolist()


def test_resume_needs_a_checkpoint(adata):
    CplMixVI.setup_anndata(adata)
    model = CplMixVI(adata, n_types=3)
    with pytest.raises(ValueError, match="resume=True needs"):
        model.train(resume=True)


# ----- stopping early ----------------------------------------------------------------------------
def test_keyboard_interrupt_leaves_the_last_finished_epoch(tmp_path):
    adata, model = job.build()
    handler = signal.getsignal(signal.SIGINT)
    stop = StopAt(4, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning, match="after epoch 4"):
        model.train(job.MAX_EPOCHS, checkpoint_dir=tmp_path, callbacks=[stop], **job.FIT)
    assert signal.getsignal(signal.SIGINT) == handler  # Lightning had ignored SIGINT
    assert model.is_trained_
    assert model.training_stopped_ == {"epoch": 4, "max_epochs": 6, "reason": "KeyboardInterrupt"}
    assert list(model.history["train_loss"].index) == [0, 1, 2, 3]
    checkpoint = CplMixVI.load(latest_checkpoint(tmp_path), adata)  # written after epoch 4
    _assert_same_weights(model, _weights(checkpoint))
    with pytest.warns(UserWarning, match="stopped after epoch 4 of 6"):
        assert np.isfinite(model.get_latent_representation()).all()


def test_non_finite_loss_stops_with_the_epoch_and_term(tmp_path):
    adata, model = job.build()
    module, calls = model.module, []
    original = module.reconstruction_nll

    def poisoned(x, gen):  # NaN from the second minibatch of epoch 2 (3 minibatches an epoch)
        calls.append(1)
        return original(x, gen) * (float("nan") if len(calls) > 7 else 1.0)

    module.reconstruction_nll = poisoned
    with pytest.raises(NonFiniteLossError, match="epoch 2") as info:
        with pytest.warns(UserWarning, match="stopped"):
            model.train(job.MAX_EPOCHS, checkpoint_dir=tmp_path, **job.FIT)
    assert {"train_loss", "reconstruction_loss_train"} <= info.value.terms.keys()
    assert info.value.epoch == 2 and model.training_stopped_["epoch"] == 2
    assert all(torch.isfinite(v.float()).all() for v in module.state_dict().values())
    assert os.path.basename(latest_checkpoint(tmp_path)) == "000001-epoch2"  # no NaN checkpoint
    del module.reconstruction_nll
    checkpoint = CplMixVI.load(str(tmp_path), adata)
    _assert_same_weights(model, _weights(checkpoint))
    losses = model.history["train_loss"]["train_loss"]  # ends with the failed epoch
    assert list(losses.index) == [0, 1, 2] and np.isnan(losses[2]) and np.isfinite(losses[1])


# ----- saving ------------------------------------------------------------------------------------
@pytest.fixture
def two_models():
    _, first = job.build()
    first.train(1, **job.TRAIN)
    _, second = job.build()
    second.train(2, **job.TRAIN)
    return first, second


@pytest.mark.parametrize("error", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left")])
def test_interrupted_save_leaves_the_old_model_loadable(tmp_path, two_models, monkeypatch, error):
    first, second = two_models
    first.save(str(tmp_path / "run"), save_anndata=True)
    real_save = torch.save

    def half_written(obj, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"\x80\x02 partial")
        raise error

    monkeypatch.setattr(torch, "save", half_written)
    expected = KeyboardInterrupt if isinstance(error, KeyboardInterrupt) else OSError
    with pytest.raises(expected, match=None if expected is KeyboardInterrupt else "unchanged"):
        second.save(str(tmp_path / "run"), overwrite=True, save_anndata=True)
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(os.listdir(tmp_path)) == ["run"]  # no staging folder left
    loaded = CplMixVI.load(str(tmp_path / "run"))
    _assert_same_weights(loaded, _weights(first))


def test_save_into_an_impossible_place_fails_clearly(tmp_path, two_models):
    first, _ = two_models
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="Cannot save the model"):
        first.save(str(blocker / "run"))
    with pytest.raises(ValueError, match="already exists"):
        first.save(str(tmp_path))


def test_failed_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    adata, model = job.build()
    real_save, saves = torch.save, []

    def fail_second_resume_file(obj, path, *args, **kwargs):
        if str(path).endswith("resume.pt"):
            saves.append(path)
            if len(saves) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fail_second_resume_file)
    with pytest.raises(OSError, match="No space"), pytest.warns(UserWarning, match="stopped"):
        model.train(job.MAX_EPOCHS, checkpoint_dir=tmp_path, **job.FIT)
    monkeypatch.setattr(torch, "save", real_save)
    assert os.listdir(tmp_path) == ["000000-epoch1"]
    resumed = CplMixVI.load(str(tmp_path), adata)
    assert resumed.training_stopped_["epoch"] == 1
