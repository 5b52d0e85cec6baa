"""Training a CplMixVI model: the fit, its pruning rounds and the categories in use."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from cplmixvi.augment import Augmenter, get_augmenter
from cplmixvi.model import _long_runs as long_runs
from cplmixvi.model._pruning import prune_types, round_options
from cplmixvi.model._type_init import (
    checked_pretrain_epochs,
    init_types_by_kmeans,
    narrow_after_fit,
    widen_for_pretraining,
)
from cplmixvi.train import is_distributed


def default_max_epochs(n_cells: int) -> int:
    """The epochs :meth:`CplMixVI.train` runs by default: ``min(400, max(20, 300000 // n_cells))``
    (about 1 200 minibatch steps)."""
    return int(min(400, max(20, 300_000 // n_cells)))


class TrainingMixin:
    """:meth:`train` and :meth:`prune` of :class:`~cplmixvi.CplMixVI` (mixed in before
    scvi-tools' ``BaseModelClass``)."""

    def train(
        self,
        max_epochs: int | None = None,
        lr: float = 1e-3,
        batch_size: int = 256,
        train_size: float | None = None,
        validation_size: float | None = None,
        early_stopping: bool = False,
        temperature_start: float = 1.0,
        temperature_end: float = 0.5,
        augmentation: str | Augmenter | list | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        strategy: str | object = "auto",
        prune: bool | dict | None = None,
        compile: bool = False,
        pretrain_epochs: int | None = None,
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        checkpoint_dir: str | None = None,
        checkpoint_every: int = 1,
        resume: bool | str = False,
        **trainer_kwargs,
    ):
        """Train the model with Lightning (progress bar, validation split, early stopping).

        Seed with ``scvi.settings.seed = ...`` before building the model for identical results.

        If training stops early (``KeyboardInterrupt``, a non-finite loss, which raises
        :class:`~cplmixvi.train.NonFiniteLossError`, or another error), the model keeps the
        weights of its last finished epoch and is marked as not fully trained
        (``training_stopped_``, a warning on use); ``history`` ends there (after a non-finite
        loss, with the failed epoch).

        Parameters
        ----------
        max_epochs
            Passes over the training cells; default ``min(400, max(20, 300 000 // n_cells))``
            (about 1 200 minibatch steps); with the consensus objective longer training
            holds or improves the types (``docs/model.md``).
        lr
            Adam learning rate.
        batch_size
            Cells per minibatch; the coupling distance uses minibatch variances, so keep it
            large enough to see most types (>= 128).
        train_size, validation_size
            Fractions of cells for training and validation (the rest is a test set); by default
            90 % / 10 %, moving a lone last cell to validation so batch norm never sees one cell.
        early_stopping
            Stop when ``elbo_validation`` stops improving (see ``early_stopping_patience``).
        temperature_start, temperature_end
            Gumbel-softmax temperature at the first and last epoch (exponential decay).
        augmentation
            Replaces the augmentation given at construction for this and later training
            (same values; pass ``"none"`` for no augmentation). ``None`` keeps the current one.
        accelerator, devices
            Lightning device selection (``"cpu"``, ``"gpu"``, ``"auto"``...).
        strategy
            Lightning strategy, e.g. ``"ddp"`` to train on several GPUs (or CPU processes) with
            ``devices=N``: each process reads its own share of every epoch's cells
            (``batch_size`` cells per process and step). Early stopping is off under DDP.
        prune
            After training, remove the categories the arms do not find with :meth:`prune`:
            ``True`` for its defaults, or a dict of its arguments (e.g.
            ``{"threshold": 0.5, "min_types": 10}``); the options of this call (device, batch,
            ``enable_progress_bar``...) reach its rounds. The history is in
            ``pruning_history_``. Default: ``True`` for a ``n_types="auto"`` model.
        compile
            Train with a ``torch.compile``-d training step and the fused Adam (both options of
            :class:`~cplmixvi.train.CplMixTrainingPlan`): on one CPU thread about 1.4x the
            eager speed, 2x with ``precision="bf16-mixed"`` (bfloat16 matrix units), after
            about a minute of compilation at the first step; close to, not bit-identical with,
            the eager model of the same seed.
        pretrain_epochs
            Epochs at the start during which the arms are trained as autoencoders only; the
            type heads are then set from k-means on the arms' type codes (see ``objective``).
            A first fit pretrains a code of ``max(n_types, 32)`` categories, merged to
            ``n_types`` at the start.
            Default: three quarters of ``max_epochs`` for the first fit of a consensus model, at
            most three quarters of the default epochs (the epochs of a longer fit go to the
            consensus phase), 0 otherwise (continued training, pruning rounds and the other
            objectives).
        plan_kwargs
            Extra arguments for :class:`~cplmixvi.train.CplMixTrainingPlan`, e.g.
            ``{"max_kl_weight": 0.25}`` to weight the state's KL term by 0.25 (the setting for
            state analyses with ``state_encoder="separate"``, see the cell-states docs) or
            ``{"n_epochs_kl_warmup": 50}`` to warm it up from 0 (scvi-tools' names).
        datasplitter_kwargs
            Extra arguments for :class:`scvi.dataloaders.DataSplitter`.
        checkpoint_dir, checkpoint_every
            Write a resumable checkpoint into ``checkpoint_dir`` every ``checkpoint_every``
            epochs (and, with ``prune``, after every pruning round), atomically; the folder
            keeps the newest one. See "Long runs" in the user guide.
        resume
            ``True``: go on with the call that wrote the checkpoint this model was loaded from
            (``CplMixVI.load(checkpoint_dir, adata).train(resume=True)``), with its arguments
            (those given here replace them) and its random state; a checkpoint folder may be
            given instead. With the same seed on the CPU the result equals the uninterrupted fit.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer` (e.g. ``early_stopping_patience``,
            ``check_val_every_n_epoch``, ``enable_progress_bar``).
        """
        if prune is None and not resume:  # resolved here, so that a checkpoint keeps it
            prune = self.prunes_in_train_
        call = long_runs.call_arguments(locals())
        if resume:
            return long_runs.resume_training(self, resume, call)
        if max_epochs is None:
            max_epochs = default_max_epochs(self.adata.n_obs)
        pretrain_epochs = checked_pretrain_epochs(
            self, pretrain_epochs, max_epochs, default_max_epochs(self.adata.n_obs)
        )
        n_types = self.init_params_["non_kwargs"]["n_types"]
        widened = widen_for_pretraining(self, pretrain_epochs, n_types)
        if augmentation is not None:
            self.module.augmenter = get_augmenter(
                augmentation, self.module.gene_likelihood, self.module.n_arms
            )
        plan_kwargs = {
            "lr": lr,
            "pretrain_epochs": pretrain_epochs,
            "init_types": partial(init_types_by_kmeans, self, n_types) if pretrain_epochs else None,
            "temperature_start": temperature_start,
            "temperature_end": temperature_end,
            **({"compile": True, "fused_optimizer": True} if compile else {}),
            **(plan_kwargs or {}),
        }
        splitter_kwargs = {
            "distributed_sampler": is_distributed(strategy),
            **(datasplitter_kwargs or {}),
        }
        splitter = self._data_splitter_cls(
            self.adata_manager,
            train_size=train_size,
            validation_size=validation_size,
            batch_size=batch_size,
            **splitter_kwargs,
        )
        plan = self._training_plan_cls(self.module, **plan_kwargs)
        guard, callbacks = long_runs.fault_callbacks(self, call, max_epochs, pretrain_epochs)
        trainer_kwargs["callbacks"] = [*trainer_kwargs.get("callbacks", []), *callbacks]
        runner = self._train_runner_cls(
            self,
            training_plan=plan,
            data_splitter=splitter,
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            strategy=strategy,
            early_stopping=early_stopping,
            **trainer_kwargs,
        )
        self.module.train()  # Lightning keeps the eval mode an earlier fit ended in
        long_runs.run_guarded(self, runner, guard, max_epochs)
        if widened:
            narrow_after_fit(self, n_types)
        if prune:
            options = {"checkpoint_dir": checkpoint_dir, **round_options(call)}
            self.prune(**(options | ({} if prune is True else prune)))

    def prune(
        self,
        threshold: float = 0.5,
        min_cells: int = 10,
        min_types: int = 2,
        epochs_per_round: int = 0,
        max_rounds: int | None = None,
        eval_batch_size: int | None = 1024,
        checkpoint_dir: str | None = None,
        resume: bool | str = False,
        **train_kwargs,
    ) -> pd.DataFrame:
        """Remove the categories the arms do not find, in rounds.

        Each round measures, on every cell, the agreement of each surviving category between
        the arms (:func:`cplmixvi.tl.category_agreement`: the cells both arms put in it over
        the larger of their counts). It removes every clearly empty category (fewer than
        ``min_cells`` cells with it as their fused label) and every inconsistent one (agreement
        below ``threshold``: the arms disagree on more of its cells than they agree on); the
        cells of a removed category go to their next category (with ``epochs_per_round > 0``
        the model is fine-tuned that many epochs through :meth:`train` after each round, as
        in the paper, which erodes small types: ``docs/guide.md``). It stops when no
        category is empty or inconsistent, at ``min_types`` categories (the worst go first),
        or after ``max_rounds`` rounds. A removed category keeps no probability mass at all
        (the softmax, Gumbel sample, coupling and state prior see the survivors only);
        survivors keep their ids, so labels stay comparable across rounds. Call after
        :meth:`train` (``n_types="auto"`` models prune in ``train``); a second call continues
        the history.

        The consensus objective makes the arms agree on the types of the start; from an upper
        bound of K the categories beyond the data's types stay small and the arms split them
        (``docs/guide.md``, "How many types"). The paper's rule, one removal per round until
        every category passes 0.95-0.99, also removes large types whose arms disagree on a
        boundary, and costs a round per category (MOp from K = 60 ended at 11-13 types).

        Parameters
        ----------
        threshold
            Agreement below which a category is removed (0: remove the empty ones only).
        min_cells
            Categories holding fewer cells are removed as empty.
        min_types
            Never prune below this many categories.
        epochs_per_round
            Fine-tuning epochs after each round's removals (none by default).
        max_rounds
            Most rounds of removals in this call (no limit when ``None``).
        eval_batch_size
            Minibatch size of the agreement measurements (every cell is measured).
        checkpoint_dir
            Write a checkpoint after every round into this folder (see :meth:`train`).
        resume
            ``True``: go on from the last finished round of the pruning checkpoint the model was
            loaded from, with that call's arguments and random state (or give its folder).
        **train_kwargs
            Passed to :meth:`train` for fine-tuning (``lr``, ``batch_size``, ``accelerator``,
            ``enable_progress_bar``...); the Gumbel temperature stays at the one training ended
            with unless ``temperature_start``/``temperature_end`` are given.

        Returns
        -------
        The pruning history, also kept as ``model.pruning_history_`` (and saved with the model):
        one row per round with ``n_types``, ``mean_agreement``, ``min_agreement``, ``n_empty``
        (categories with fewer than ``min_cells`` cells), ``epochs`` (fine-tuning epochs
        before the measurement), ``removed`` (the ids removed after it, comma-separated) and
        ``reason``. ``model.pruning_agreement_`` holds each category's agreement per round
        (rounds x original ids; NaN once removed). The model is left at the last round's K,
        which :func:`cplmixvi.tl.select_n_types` also reads from the history; plot the rounds
        with :func:`cplmixvi.pl.pruning_curve`.
        """
        if resume:
            return long_runs.resume_pruning(self, resume, **train_kwargs)
        self._check_if_trained(warn=False, message="Train the model before pruning it.")
        if self.module.n_arms < 2:
            raise ValueError("Pruning needs the agreement of several arms; use n_arms >= 2.")
        if not 0 <= threshold <= 1:
            raise ValueError(
                f"threshold must be in [0, 1] (0 removes empty ones only), got {threshold}."
            )
        if not 1 <= min_types <= self.module.n_types:
            raise ValueError(f"min_types must be in [1, {self.module.n_types}], got {min_types}.")
        if min_cells < 1:
            raise ValueError(f"min_cells must be >= 1, got {min_cells}.")
        if epochs_per_round < 0:
            raise ValueError(f"epochs_per_round must be >= 0, got {epochs_per_round}.")
        tau = float(self.module.temperature)
        train_kwargs = {"temperature_start": tau, "temperature_end": tau, **train_kwargs}
        call = dict(threshold=threshold, min_cells=min_cells, min_types=min_types)
        call.update(epochs_per_round=epochs_per_round)
        call.update(max_rounds=max_rounds, batch_size=eval_batch_size, train_kwargs=train_kwargs)
        on_round = long_runs.prune_checkpoints(self, checkpoint_dir, call)
        history, self.pruning_agreement_ = prune_types(self, **call, on_round=on_round)
        self.pruning_history_ = history
        return history

    @property
    def active_types(self) -> np.ndarray:
        """Ids of the categories still in use (all of ``0 ... n_types - 1`` before pruning)."""
        return np.flatnonzero(self.module.type_mask.cpu().numpy())
