"""The private and version-dependent parts of scvi-tools and Lightning that the package uses
(``cplmixvi.train._upstream``), checked against the installed versions."""

import pytest
import scvi
import torch
from lightning.pytorch import Trainer
from packaging.version import Version
from scvi.module.base import LossOutput

from cplmixvi.train._upstream import (
    HAS_FUSED_OPTION,
    extra_metrics_hidden,
    has_scib_callback,
    step_logs_written,
)


def test_fused_optimizer_option_is_detected_for_this_scvi_tools():
    assert HAS_FUSED_OPTION == (Version(scvi.__version__) >= Version("1.5"))


def test_lightning_still_says_whether_step_logs_are_written():
    trainer = Trainer(logger=False, enable_progress_bar=False, log_every_n_steps=1)
    connector = trainer._logger_connector  # the private attribute step_logs_written reads
    assert isinstance(connector.should_update_logs, bool)
    assert step_logs_written(trainer) is connector.should_update_logs


def test_extra_metrics_are_hidden_and_restored_on_the_loss_output():
    extra = {"coupling": torch.tensor(2.0)}
    out = LossOutput(loss=torch.tensor(1.0), n_obs_minibatch=4, extra_metrics=extra)
    with extra_metrics_hidden(out):
        assert out.extra_metrics == {}
    assert out.extra_metrics is extra
    with pytest.raises(RuntimeError), extra_metrics_hidden(out):
        raise RuntimeError
    assert out.extra_metrics is extra


def test_scib_autotune_callback_is_recognised_by_name():
    class ScibCallback:
        pass

    class Other:
        pass

    assert has_scib_callback(type("T", (), {"callbacks": [Other(), ScibCallback()]})())
    assert not has_scib_callback(type("T", (), {"callbacks": [Other()]})())
    assert not has_scib_callback(object())
