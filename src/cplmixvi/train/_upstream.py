"""Every use of a private or version-dependent part of scvi-tools and Lightning, in one place.

``tests/test_upstream.py`` checks each against the installed versions (scvi-tools 1.4 on
Python 3.11, 1.5 on 3.12), so that an upstream change fails there, by name, and not deep in a
fit.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager

from scvi.train import TrainingPlan

#: scvi-tools 1.5 adds ``TrainingPlan(fused_optimizer=...)`` and defaults it to ``Adam(fused=
#: True)``, whose rounding differs from 1.4's Adam; passing ``False`` makes a seed give the same
#: model on both versions.
HAS_FUSED_OPTION = "fused_optimizer" in inspect.signature(TrainingPlan.__init__).parameters


def step_logs_written(trainer) -> bool:
    """Whether Lightning writes this step's step-level logs (every ``log_every_n_steps``).

    Reads the private ``trainer._logger_connector.should_update_logs`` (Lightning 2.x); if it
    is missing, every step counts as written (the logged values stay right, only more often).
    """
    connector = getattr(trainer, "_logger_connector", None)
    return bool(getattr(connector, "should_update_logs", True) or trainer.fast_dev_run)


@contextmanager
def extra_metrics_hidden(loss_output) -> Iterator[None]:
    """Let scvi-tools' ``compute_and_log_metrics`` see a ``LossOutput`` without extra metrics.

    ``extra_metrics`` is swapped out and restored around the block, through
    ``object.__setattr__`` so that it also works where the dataclass is frozen.
    """
    extra = loss_output.extra_metrics
    object.__setattr__(loss_output, "extra_metrics", {})
    try:
        yield
    finally:
        object.__setattr__(loss_output, "extra_metrics", extra)


def has_scib_callback(trainer) -> bool:
    """Whether scvi-tools' autotune scib-metrics callback (which needs per-step outputs) runs."""
    callbacks = getattr(trainer, "callbacks", None) or []
    return any("Scib" in type(callback).__name__ for callback in callbacks)
