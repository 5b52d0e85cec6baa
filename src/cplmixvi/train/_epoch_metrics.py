"""Epoch-level logging of the loss terms without a Lightning ``log`` call per step and metric.

scvi-tools' :class:`~scvi.train.TrainingPlan` logs every extra metric of a training step with
``self.log(..., on_epoch=True)``; Lightning then averages them over the epoch. Each call costs
host time (about a millisecond on one CPU thread), which at a few dozen steps per second is a
sizeable share of a step. :class:`EpochMetricsMixin` keeps detached, batch-size weighted
running sums on the device instead and logs their means once per epoch: the same numbers under
the same keys, with no host synchronisation inside the epoch.
"""

from __future__ import annotations

import torch


class EpochMetricsMixin:
    """Accumulate a training plan's extra training metrics and log their means per epoch.

    Mix in before :class:`~scvi.train.TrainingPlan`. Applies only when the plan logs per
    epoch and not per step (scvi-tools' default); otherwise the parent's logging is used.
    """

    def compute_and_log_metrics(self, loss_output, metrics, mode: str) -> None:
        """Log the ELBO as the parent does; keep the extra training metrics for the epoch end."""
        if mode != "train" or self.on_step or not loss_output.extra_metrics:
            return super().compute_and_log_metrics(loss_output, metrics, mode)
        extra = loss_output.extra_metrics
        object.__setattr__(loss_output, "extra_metrics", {})
        try:
            super().compute_and_log_metrics(loss_output, metrics, mode)
        finally:
            object.__setattr__(loss_output, "extra_metrics", extra)
        self._accumulate(extra, loss_output.n_obs_minibatch)

    def _accumulate(self, extra: dict, n_obs: int) -> None:
        sums = self.__dict__.setdefault("_epoch_sums", {})
        for key, value in extra.items():
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                continue  # what the parent would not log either
            weighted = value.detach().float() * n_obs
            sums[key] = weighted if key not in sums else sums[key] + weighted
        self.__dict__["_epoch_n_obs"] = self.__dict__.get("_epoch_n_obs", 0) + n_obs

    def on_train_epoch_end(self) -> None:
        """Log the epoch means of the accumulated metrics as ``<key>_train``."""
        sums = self.__dict__.pop("_epoch_sums", {})
        n_obs = self.__dict__.pop("_epoch_n_obs", 0)
        for key, total in sums.items():
            self.log(f"{key}_train", total / n_obs, on_epoch=True, sync_dist=self.use_sync_dist)
        parent = getattr(super(), "on_train_epoch_end", None)
        if parent is not None:
            parent()
