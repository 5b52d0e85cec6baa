"""Epoch-level logging of the loss terms without a Lightning ``log`` call per step and metric.

scvi-tools' :class:`~scvi.train.TrainingPlan` logs, at every training step, the loss
(``train_loss``), the ELBO metric objects (``elbo_train``, ``reconstruction_loss_train``,
``kl_local_train``, ``kl_global_train``) and every extra metric with ``self.log(...,
on_epoch=True)``; Lightning then averages them over the epoch. Each call costs host time
(about a millisecond on one CPU thread), which at a few dozen steps per second is a sizeable
share of a step. :class:`EpochMetricsMixin` keeps detached running sums on the device instead
and logs the epoch values once per epoch: the same quantities under the same keys (up to float
rounding of the sums), with no host synchronisation inside the epoch. ``kl_weight`` is logged
only at the steps whose step-level logs Lightning writes (every ``log_every_n_steps``), which
gives the same history as logging it at every step.
"""

from __future__ import annotations

import torch

from cplmixvi.train._upstream import extra_metrics_hidden, has_scib_callback, step_logs_written


class EpochMetricsMixin:
    """Accumulate a training plan's training metrics and log their epoch values once per epoch.

    Mix in before :class:`~scvi.train.TrainingPlan`. Applies only when the plan logs per
    epoch and not per step (scvi-tools' default) and no scib-metrics autotune callback needs
    the per-step outputs; otherwise the parent's training step and logging are used.
    """

    def training_step(self, batch, batch_idx):
        """scvi-tools' training step with the epoch metrics accumulated on the device."""
        if self.on_step or not self.on_epoch or has_scib_callback(self.trainer):
            return super().training_step(batch, batch_idx)
        if "kl_weight" in self.loss_kwargs:
            kl_weight = self.kl_weight
            self.loss_kwargs.update({"kl_weight": kl_weight})
            if step_logs_written(self.trainer):  # scvi-tools logs it at every step
                self.log("kl_weight", kl_weight, on_step=True, on_epoch=False)
        loss, n_obs, terms = self._training_terms(batch, self.loss_kwargs)
        self._accumulate(terms, n_obs)
        return loss

    def _training_terms(self, batch, loss_kwargs: dict) -> tuple[torch.Tensor, int, dict]:
        """The minibatch loss, its number of cells and its batch-size weighted logged terms."""
        _, _, loss_output = self.forward(batch, loss_kwargs=loss_kwargs)
        n_obs = loss_output.n_obs_minibatch
        terms = {
            "train_loss": loss_output.loss * n_obs,  # Lightning's batch-size weighted mean
            "reconstruction_loss_train": loss_output.reconstruction_loss_sum,
            "kl_local_train": loss_output.kl_local_sum,
            "kl_global_train": loss_output.kl_global_sum,
            **self._scalar_extras(loss_output, n_obs),
        }
        return loss_output.loss, n_obs, {key: torch.as_tensor(v) for key, v in terms.items()}

    def compute_and_log_metrics(self, loss_output, metrics, mode: str) -> None:
        """Log the ELBO as the parent does; keep the extra training metrics for the epoch end."""
        if mode != "train" or self.on_step or not loss_output.extra_metrics:
            return super().compute_and_log_metrics(loss_output, metrics, mode)
        with extra_metrics_hidden(loss_output):
            super().compute_and_log_metrics(loss_output, metrics, mode)
        n_obs = loss_output.n_obs_minibatch
        self._accumulate(self._scalar_extras(loss_output, n_obs), n_obs)

    @staticmethod
    def _scalar_extras(loss_output, n_obs: int) -> dict:
        """Batch-size weighted extra metrics under their logged names (0-d tensors only)."""
        return {
            f"{key}_train": value.float() * n_obs
            for key, value in (loss_output.extra_metrics or {}).items()
            if isinstance(value, torch.Tensor) and value.dim() == 0
        }

    def _accumulate(self, terms: dict, n_obs: int) -> None:
        sums = self.__dict__.setdefault("_epoch_sums", {})
        if sums.keys() == terms.keys():  # one foreach call for every term
            torch._foreach_add_(list(sums.values()), [v.detach() for v in terms.values()])
        else:
            for key, value in terms.items():
                value = torch.as_tensor(value).detach()
                sums[key] = value.clone() if key not in sums else sums[key] + value
        self.__dict__["_epoch_n_obs"] = self.__dict__.get("_epoch_n_obs", 0) + n_obs
        self.__dict__["_epoch_n_batches"] = self.__dict__.get("_epoch_n_batches", 0) + 1

    def on_train_epoch_end(self) -> None:
        """Log the epoch values of the accumulated metrics under scvi-tools' keys."""
        sums = self.__dict__.pop("_epoch_sums", {})
        n_obs = self.__dict__.pop("_epoch_n_obs", 0)
        n_batches = self.__dict__.pop("_epoch_n_batches", 0)
        values = {key: total / n_obs for key, total in sums.items()}
        if "kl_global_train" in values:  # scvi-tools: per minibatch, scaled in the ELBO
            values["kl_global_train"] = sums["kl_global_train"] / n_batches
            n_total = self.n_obs_training if self.n_obs_training else 1
            values["elbo_train"] = (
                values["reconstruction_loss_train"]
                + values["kl_local_train"]
                + values["kl_global_train"] / n_total
            )
        for key, value in values.items():
            self.log(
                key,
                value,
                on_step=False,
                on_epoch=True,
                prog_bar=key == "train_loss",
                sync_dist=self.use_sync_dist,
            )
        parent = getattr(super(), "on_train_epoch_end", None)
        if parent is not None:
            parent()
