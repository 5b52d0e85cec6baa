"""Training plan: scvi-tools' ``TrainingPlan`` plus the Gumbel-softmax temperature schedule."""

from __future__ import annotations

import math
from collections.abc import Callable

from scvi.train import TrainingPlan

from cplmixvi.train._compile import FastTrainingMixin
from cplmixvi.train._epoch_metrics import EpochMetricsMixin
from cplmixvi.train._upstream import HAS_FUSED_OPTION


def annealed_temperature(epoch: int, n_epochs: int, start: float, end: float) -> float:
    """Exponential decay from ``start`` (first epoch) to ``end`` (last epoch)."""
    if n_epochs <= 1 or start == end:
        return end if n_epochs <= 1 else start
    frac = min(epoch / (n_epochs - 1), 1.0)
    return start * math.exp(frac * math.log(end / start))


class CplMixTrainingPlan(FastTrainingMixin, EpochMetricsMixin, TrainingPlan):
    """Train a :class:`~cplmixvi.module.CplMixVAE` with an annealed type temperature.

    Parameters
    ----------
    module
        The module to train.
    temperature_start, temperature_end
        Gumbel-softmax temperature at the first and the last epoch (exponential decay).
    compile
        ``torch.compile`` the training forward and backward pass (validation stays eager); see
        :mod:`cplmixvi.train._compile` for what changes. Off by default.
    fused_optimizer
        Use the single-kernel ``Adam(fused=True)`` (or AdamW); rounds differently from the
        default Adam. Off by default.
    **kwargs
        Passed to :class:`scvi.train.TrainingPlan` (``lr``, ``weight_decay``,
        ``n_epochs_kl_warmup``, ``reduce_lr_on_plateau``, ...).
    """

    def __init__(
        self,
        module,
        *,
        temperature_start: float = 1.0,
        temperature_end: float = 0.5,
        n_epochs_kl_warmup: int | None = None,
        compile: bool = False,
        fused_optimizer: bool = False,
        pretrain_epochs: int = 0,
        init_types: Callable[[], None] | None = None,
        **kwargs,
    ):
        if not 0 < temperature_end <= temperature_start:
            raise ValueError(
                "Need 0 < temperature_end <= temperature_start, got "
                f"{temperature_end} and {temperature_start}."
            )
        if HAS_FUSED_OPTION:
            kwargs.setdefault("fused_optimizer", False)
        super().__init__(module, n_epochs_kl_warmup=n_epochs_kl_warmup, **kwargs)
        self._init_fast(compile, fused_optimizer)
        self.temperature_start = temperature_start
        self.temperature_end = temperature_end
        self.pretrain_epochs = pretrain_epochs
        self.init_types = init_types

    def on_train_epoch_start(self) -> None:
        """Set the module's phase and temperature for this epoch."""
        epoch = self.current_epoch - self.pretrain_epochs
        self.module.pretraining = epoch < 0
        if epoch == 0 and self.init_types is not None:
            self.init_types()
        tau = annealed_temperature(
            max(epoch, 0),
            self.trainer.max_epochs - self.pretrain_epochs,
            self.temperature_start,
            self.temperature_end,
        )
        self.module.temperature.fill_(tau)
