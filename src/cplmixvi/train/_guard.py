"""Keep the weights of the last finished epoch when a fit stops, and stop on non-finite losses."""

from __future__ import annotations

import math

import torch
from lightning.pytorch.callbacks import Callback


class NonFiniteLossError(FloatingPointError):
    """A loss term of a training epoch is NaN or infinite.

    Attributes
    ----------
    epoch
        The epoch (counted from 0, as the index of ``model.history``) whose loss was not finite.
    terms
        The non-finite logged terms of that epoch, ``{name: value}``.
    """

    def __init__(self, epoch: int, terms: dict[str, float]):
        self.epoch, self.terms = epoch, terms
        listed = ", ".join(f"{key}={value}" for key, value in terms.items())
        super().__init__(
            f"Non-finite loss in training epoch {epoch} (counted from 0, as in model.history): "
            f"{listed}. The model keeps the weights of the {epoch} epochs before it, the last "
            "with finite terms. Lower the learning rate (lr), check the data for extreme "
            "values, or resume from the last checkpoint with other settings."
        )


def non_finite(metrics: dict) -> dict[str, float]:
    """The entries of ``metrics`` (tensors or numbers) that are NaN or infinite."""
    bad = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, int | float) and not math.isfinite(value):
            bad[key] = value
    return bad


class TrainingGuard(Callback):
    """Stop on a non-finite epoch loss and put back the last finished epoch's weights on errors.

    Once an epoch's terms are logged (checked at the start of the next epoch, before any other
    callback of this package runs, and at the end of training), every logged value is
    checked; a NaN or infinite one raises :class:`NonFiniteLossError` naming the epoch and the
    terms. Otherwise a copy of the plan's weights and buffers is kept in memory. When the fit
    stops with any exception (the non-finite loss, ``KeyboardInterrupt``, an out-of-memory
    error...), that copy is loaded back, so the model is the one of the last finished epoch
    with finite terms. The check reads the logged values once per epoch: no synchronisation
    per step.

    Attributes
    ----------
    finished_epochs
        Epochs finished when the fit stopped (``None`` before training started).
    exception
        The exception that stopped the fit, or ``None``.
    """

    def __init__(self):
        self.finished_epochs: int | None = None
        self.exception: BaseException | None = None
        self._weights: dict[str, torch.Tensor] | None = None
        self._ended: int | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        """Keep the weights at the start (a fit stopped in its first epoch goes back to them)."""
        self._keep(trainer.current_epoch, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Note the epoch whose terms Lightning logs next."""
        self._ended = trainer.current_epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """Check the previous epoch's terms and keep its weights."""
        self._check(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        """Check the last epoch's terms."""
        self._check(trainer, pl_module)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Put back the weights of the last finished epoch."""
        self.exception = exception
        if self._weights is not None:
            pl_module.load_state_dict(self._weights)

    def _check(self, trainer, pl_module) -> None:
        if self._ended is None:
            return
        epoch, self._ended = self._ended, None
        bad = non_finite(trainer.callback_metrics)
        if bad:
            raise NonFiniteLossError(epoch, bad)
        self._keep(epoch + 1, pl_module)

    def _keep(self, finished: int, pl_module) -> None:
        self.finished_epochs = finished
        self._weights = {
            key: value.detach().clone() for key, value in pl_module.state_dict().items()
        }
