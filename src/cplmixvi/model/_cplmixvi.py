"""CplMixVI: the user-facing scvi-tools model for cell types and cell states."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.model.base import BaseModelClass
from scvi.train import TrainRunner
from scvi.utils import setup_anndata_dsp

from cplmixvi.augment import Augmenter, get_augmenter
from cplmixvi.model import _long_runs as long_runs
from cplmixvi.model._pruning import auto_upper_bound, prune_types, round_options
from cplmixvi.model._results import assignments, fuse
from cplmixvi.model._saving import AtomicSaveMixin
from cplmixvi.model._traversal import TraversalMixin
from cplmixvi.model._type_init import (
    checked_pretrain_epochs,
    init_types_by_kmeans,
    narrow_after_fit,
    widen_for_pretraining,
)
from cplmixvi.model._validation import (
    check_choice,
    check_input_values,
    check_keys,
    check_mudata_batch,
    check_saved_genes,
    check_sizes,
)
from cplmixvi.module import CplMixVAE
from cplmixvi.train import CplMixDataSplitter, CplMixTrainingPlan, is_distributed
from cplmixvi.train._checkpoint import resolve_checkpoint

logger = logging.getLogger(__name__)


def default_max_epochs(n_cells: int) -> int:
    """The epochs :meth:`CplMixVI.train` runs by default: ``min(400, max(20, 300000 // n_cells))``
    (about 1 200 minibatch steps)."""
    return int(min(400, max(20, 300_000 // n_cells)))


class CplMixVI(long_runs.LongRunsMixin, AtomicSaveMixin, TraversalMixin, BaseModelClass):
    """Coupled mixture VAE (cpl-mixVAE) for discrete cell types and continuous cell states.

    ``n_arms`` autoencoder arms each see a different type-preserving copy of every cell and are
    trained to agree on its type (Marghi et al., "Mixture representation learning with coupled
    autoencoders"); each arm learns a type-dependent continuous state.

    Parameters
    ----------
    adata
        AnnData (or MuData) registered with :meth:`setup_anndata` (:meth:`setup_mudata`).
    n_types
        Number of cell types ``K`` (categories of the discrete latent variable), or ``"auto"``
        when it is not known: the model starts from an upper bound of ``n_cells // 100``
        categories, at least 30 and at most 100, and :meth:`train` prunes them to the types the
        arms find (:meth:`prune`; ``pruning_history_`` records the rounds). For another bound,
        give it as ``n_types`` and train with ``prune=True``.
    n_state
        Dimensions of the continuous cell state.
    n_arms
        Number of coupled arms ``A``; 1 is the uncoupled single-VAE baseline.
    n_hidden
        Width of the hidden layers of every encoder and decoder.
    n_layers
        Number of hidden layers of every encoder and decoder.
    dropout_rate
        Dropout in the encoders; with the consensus objective while pretraining only.
    gene_likelihood
        ``"nb"`` (default) or ``"zinb"`` on raw counts, ``"normal"`` on continuous data such as
        log-normalised expression (the paper's choice), ``"bernoulli"`` on values in ``[0, 1]``.
    state_prior
        ``"type"``: learned type-dependent prior ``p(s|c)``; ``"normal"``: ``N(0, I)`` for every
        type.
    coupling_weight
        Weight ``lambda`` of the coupling distance (1 in the paper).
    coupling_min_prob
        Floor on ``c`` inside the log of the coupling distance, which keeps it finite.
    entropy_weight
        Weight of the entropy ``H(c|x)`` of each arm's posterior (1 in Eq. 7, a confidence
        penalty); 0 drops it, a negative weight rewards confident posteriors.
    marginal_entropy_weight
        Weight of the entropy of each arm's minibatch aggregate posterior ``H(q(c))``, which
        rewards using every category (0 in Eq. 7). With ``entropy_weight < 0`` the two maximise
        the mutual information ``I(x; c)`` of information-maximising clustering (IMSAT).
    objective
        ``"consensus"`` (default): the arms are first trained as autoencoders for
        ``pretrain_epochs`` (see :meth:`train`), their type heads are then set to the k-means
        clusters of their pretrained type codes, and every arm is trained towards the arms' common
        sharpened target ``p`` (``KL(p || q_a)``, :func:`cplmixvi.nn.sharpened_target`) while each
        arm's ELBO keeps training its encoder, state and decoder, but not its type head (the type
        sample enters them detached). ``"paper"``: Eq. 7 of the paper, the entropy bonus and the
        perturbed Aitchison distance between the arms' relaxed type samples, from the first epoch
        (``coupling_weight``, ``entropy_weight``, ``coupling_min_prob`` apply). ``"info"``: the
        arms' aggregate type entropy minus their cross-entropy, weighted by ``coupling_weight``
        (:func:`cplmixvi.nn.information_coupling`; the MNIST recipe, with ``coupling_weight=50``,
        ``entropy_weight=0``, ``marginal_entropy_weight=25``).
    augmentation
        How each arm's copy of a training cell is made: ``"auto"`` (binomial thinning then gene
        dropout of counts, gene dropout for continuous data, none for one arm), ``"thinning"``,
        ``"dropout"``, ``"affine"``, ``"none"``, an :class:`~cplmixvi.augment.Augmenter`, a fitted
        :class:`~cplmixvi.augment.GenerativeAugmenter` or a list of these (see
        :func:`~cplmixvi.augment.get_augmenter`); :meth:`train` can override it.
    state_encoder
        ``"shared"`` (default): the state posterior ``q(s|x, c)`` reads the hidden layer of the
        type encoder. ``"separate"``: the state has its own encoder network, out of reach of the
        coupling's gradients, which otherwise drown the weak within-type signal; use it (with a KL
        warm-up, ``plan_kwargs={"n_epochs_kl_warmup": max_epochs}``) when the state itself is
        the object of study (traversals, state genes; see ``benchmarks/results/states_*.md``).

    Examples
    --------
    >>> cplmixvi.CplMixVI.setup_anndata(adata, layer="counts")
    >>> model = cplmixvi.CplMixVI(adata, n_types=44)
    >>> model.train()
    >>> model.write_results(adata)
    >>> sc.pl.umap(adata, color="cplmixvi_type")
    """

    _module_cls = CplMixVAE
    _training_plan_cls = CplMixTrainingPlan
    _data_splitter_cls = CplMixDataSplitter
    _train_runner_cls = TrainRunner

    def __init__(
        self,
        adata: AnnData,
        n_types: int | Literal["auto"] = 10,
        n_state: int = 2,
        n_arms: int = 2,
        n_hidden: int = 128,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        gene_likelihood: Literal["nb", "zinb", "normal", "bernoulli"] = "nb",
        state_prior: Literal["type", "normal"] = "type",
        coupling_weight: float = 1.0,
        coupling_min_prob: float = 1e-2,
        augmentation: str | Augmenter | None = "auto",
        state_encoder: Literal["shared", "separate"] = "shared",
        entropy_weight: float = 1.0,
        marginal_entropy_weight: float = 0.0,
        objective: Literal["consensus", "paper", "info"] = "consensus",
    ):
        super().__init__(adata)
        check_choice("gene_likelihood", gene_likelihood, ("nb", "zinb", "normal", "bernoulli"))
        check_choice("state_prior", state_prior, ("type", "normal"))
        check_choice("state_encoder", state_encoder, ("shared", "separate"))
        check_choice("objective", objective, ("consensus", "paper", "info"))
        self.prunes_in_train_ = n_types == "auto"
        if self.prunes_in_train_:
            n_types = auto_upper_bound(self.summary_stats.n_cells)
        check_sizes(n_types, n_state, n_arms, self.summary_stats.n_cells)
        if marginal_entropy_weight < 0:
            raise ValueError(
                f"marginal_entropy_weight must be >= 0 (a negative weight rewards putting every "
                f"cell into one type), got {marginal_entropy_weight}; use 0 to turn it off."
            )
        check_input_values(
            self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY),
            gene_likelihood,
            self._data_description(),
        )
        augmenter = get_augmenter(augmentation, gene_likelihood, n_arms)
        if not isinstance(augmentation, str | None):
            augmentation = augmenter  # store the light augmenter, not e.g. a fitted model
        n_batch = self.summary_stats.n_batch
        self._module_kwargs = dict(
            n_input=self.summary_stats.n_vars,
            n_state=n_state,
            n_arms=n_arms,
            n_batch=n_batch,
            n_hidden=n_hidden,
            n_layers=n_layers,
            dropout_rate=dropout_rate,
            gene_likelihood=gene_likelihood,
            state_prior=state_prior,
            coupling_weight=coupling_weight,
            augmenter=augmenter,
            min_prob=coupling_min_prob,
            state_encoder=state_encoder,
            entropy_weight=entropy_weight,
            marginal_entropy_weight=marginal_entropy_weight,
            objective=objective,
        )
        self.module = self._module_cls(n_types=n_types, **self._module_kwargs)
        self._model_summary_string = (
            f"CplMixVI model with {n_arms} arm(s), {n_types} types, {n_state} state dimensions, "
            f"likelihood {gene_likelihood!r}, state prior {state_prior!r}, "
            f"objective {objective!r}, augmentation {augmenter}, "
            f"{n_layers}x{n_hidden} hidden layers, {max(n_batch, 1)} batch(es)."
        )
        self.init_params_ = self._get_init_params(locals())
        self.pruning_history_: pd.DataFrame | None = None  # see prune(); saved with the model
        self.pruning_agreement_: pd.DataFrame | None = None

    # ----- registration -------------------------------------------------------------------
    @classmethod
    @setup_anndata_dsp.dedent
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = None,
        batch_key: str | None = None,
        **kwargs,
    ) -> None:
        """%(summary)s.

        Parameters
        ----------
        %(param_adata)s
        %(param_layer)s
        %(param_batch_key)s
        """
        check_keys(adata, layer, batch_key)
        setup_method_args = cls._get_setup_method_args(**locals())
        anndata_fields = [
            fields.LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=False),
            fields.CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key),
        ]
        adata_manager = AnnDataManager(fields=anndata_fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(adata, **kwargs)
        cls.register_manager(adata_manager)

    @classmethod
    def setup_mudata(
        cls,
        mdata,
        rna_layer: str | None = None,
        batch_key: str | None = None,
        modalities: dict[str, str] | None = None,
        **kwargs,
    ) -> None:
        """Register a MuData object: expression from one modality, batch from any.

        Parameters
        ----------
        mdata
            :class:`mudata.MuData` with an expression modality.
        rna_layer
            Layer of the expression modality to model (``None`` for its ``.X``).
        batch_key
            Key of the batch annotation in ``.obs`` of ``modalities["batch_key"]`` (or of
            ``mdata.obs`` when not given).
        modalities
            ``{"rna_layer": "rna", "batch_key": ...}``: which modality holds each field.
        """
        modalities = dict(modalities or {"rna_layer": "rna"})
        rna_mod = modalities.get("rna_layer")
        if rna_mod not in mdata.mod:
            raise KeyError(
                f"Modality {rna_mod!r} is not in the MuData (it has {list(mdata.mod)}); pass "
                "modalities={'rna_layer': <name of the expression modality>}."
            )
        check_keys(mdata.mod[rna_mod], rna_layer, None)
        check_mudata_batch(mdata, batch_key, modalities.get("batch_key"))
        setup_method_args = cls._get_setup_method_args(**locals())
        mudata_fields = [
            fields.MuDataLayerField(
                REGISTRY_KEYS.X_KEY,
                rna_layer,
                mod_key=rna_mod,
                is_count_data=False,
                mod_required=True,
            ),
            fields.MuDataCategoricalObsField(
                REGISTRY_KEYS.BATCH_KEY, batch_key, mod_key=modalities.get("batch_key")
            ),
        ]
        adata_manager = AnnDataManager(fields=mudata_fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(mdata, **kwargs)
        cls.register_manager(adata_manager)

    # ----- training -----------------------------------------------------------------------
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

    # ----- accessors ----------------------------------------------------------------------
    @torch.inference_mode()
    def _encode(
        self, adata: AnnData | None, indices: Sequence[int] | None, batch_size: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-arm log q(c|x) ``(A, n, K)`` and state means ``(A, n, D)`` for every cell."""
        self._check_if_trained(warn=False)
        new_data = adata is not None and adata is not self.adata
        adata = self._validate_anndata(adata)
        if new_data:
            matrix = self.get_anndata_manager(adata).get_from_registry(REGISTRY_KEYS.X_KEY)
            check_input_values(matrix, self.module.gene_likelihood, "the given data")
        return self._infer(adata, indices, batch_size)

    @torch.inference_mode()
    def _infer(
        self, adata: AnnData, indices: Sequence[int] | None, batch_size: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_encode` without its checks: also usable while the model is training."""
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        log_probs, states = [], []
        was_training = self.module.training
        self.module.eval()  # no augmentation, argmax types, batch-norm running statistics
        for tensors in loader:
            out = self.module.inference(
                **self.module._get_inference_input(tensors), deterministic=True
            )
            log_probs.append(out["log_probs"].cpu())
            states.append(out["qs_mean"].cpu())
        self.module.train(was_training)
        return torch.cat(log_probs, 1).numpy(), torch.cat(states, 1).numpy()

    def get_type_probabilities(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        per_arm: bool = False,
    ) -> np.ndarray:
        """Posterior type probabilities ``q(c|x)``.

        Returns
        -------
        ``(n_cells, n_types)`` fused across arms (normalised geometric mean of the arms'
        posteriors, whose argmax is that of their product), or ``(n_arms, n_cells, n_types)``
        per arm when ``per_arm`` is ``True``.
        """
        log_probs, _ = self._encode(adata, indices, batch_size)
        if per_arm:
            return np.exp(log_probs)
        return fuse(log_probs)

    def get_type_assignments(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """Fused type label of each cell with its confidence.

        Returns
        -------
        DataFrame indexed by cell with columns ``type`` (argmax of the fused posterior),
        ``confidence`` (the arms' mean posterior probability of that type) and
        ``arm_agreement`` (fraction of arms whose own argmax is that type).
        """
        log_probs, _ = self._encode(adata, indices, batch_size)
        return assignments(log_probs, fuse(log_probs), self._obs_names(adata, indices))

    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        arm: int = 0,
    ) -> np.ndarray:
        """Continuous state coordinates: the mean of ``q(s|x, c)`` at the inferred type.

        Returns
        -------
        ``(n_cells, n_state)`` for the given arm (each arm learns its own state space).
        """
        if not 0 <= arm < self.module.n_arms:
            raise ValueError(f"arm must be in [0, {self.module.n_arms - 1}], got {arm}.")
        _, states = self._encode(adata, indices, batch_size)
        return states[arm]

    def write_results(
        self, adata: AnnData | None = None, key_prefix: str = "cplmixvi", batch_size: int = 1024
    ) -> None:
        """Write types, confidences, probabilities and states into ``adata`` (in place).

        Keys (with the default prefix ``cplmixvi``):

        - ``obs["cplmixvi_type"]``: categorical fused type label (``"0"`` ... ``"K-1"``);
        - ``obs["cplmixvi_confidence"]``: arms' mean posterior probability of that type;
        - ``obs["cplmixvi_arm_agreement"]``: fraction of arms whose argmax is that type;
        - ``obsm["cplmixvi_type_probs"]``: ``(n_cells, K)`` fused type probabilities;
        - ``obsm["X_cplmixvi_state"]``: ``(n_cells, n_state)`` state of arm 0;
        - ``obsm["X_cplmixvi_state_arms"]``: ``(n_cells, A * n_state)`` states of all arms;
        - ``uns["cplmixvi"]``: model settings and the overall arm agreement;
        - ``uns["cplmixvi"]["type_agreement"]``: DataFrame, one row per surviving type (index:
          type id as a string) with ``agreement`` between arms, ``min_pair_agreement`` and
          ``n_cells``, ``mean_prob`` (:func:`cplmixvi.tl.category_agreement`; two or more arms);
        - ``uns["cplmixvi"]["pruning_history"]``: ``model.pruning_history_`` once pruned.

        After :meth:`prune`, removed types never appear as labels and their column of the type
        probabilities is exactly 0 (columns keep the original ids).
        """
        adata = self.adata if adata is None else adata
        log_probs, states = self._encode(adata, None, batch_size)
        fused = fuse(log_probs)
        table = assignments(log_probs, fused, adata.obs_names)
        n_types = self.module.n_types
        labels = table["type"].astype(str)
        adata.obs[f"{key_prefix}_type"] = pd.Categorical(
            labels, categories=[str(k) for k in range(n_types) if str(k) in set(labels)]
        )
        adata.obs[f"{key_prefix}_confidence"] = table["confidence"].to_numpy()
        adata.obs[f"{key_prefix}_arm_agreement"] = table["arm_agreement"].to_numpy()
        adata.obsm[f"{key_prefix}_type_probs"] = fused
        adata.obsm[f"X_{key_prefix}_state"] = states[0]
        adata.obsm[f"X_{key_prefix}_state_arms"] = np.concatenate(states, axis=1)
        adata.uns[key_prefix] = {
            "params": {k: _plain(v) for k, v in self.init_params_["non_kwargs"].items()},
            "arm_agreement": float(table["arm_agreement"].mean()),
            **self._consensus_uns(log_probs),
        }

    # ----- persistence --------------------------------------------------------------------
    @classmethod
    def load(cls, dir_path: str, adata: AnnData | None = None, prefix: str | None = None, **kw):
        """Load a saved model, or the newest checkpoint of a ``checkpoint_dir``.

        Raises ``ValueError`` if ``adata``'s genes differ from training.
        """
        dir_path = resolve_checkpoint(dir_path)
        if adata is not None:
            check_saved_genes(dir_path, adata, prefix)
        model = super().load(dir_path, adata=adata, prefix=prefix, **kw)
        return long_runs.remember_checkpoint(model, dir_path)

    # ----- helpers ------------------------------------------------------------------------
    def _data_description(self) -> str:
        field = self.adata_manager.data_registry[REGISTRY_KEYS.X_KEY]
        mod = getattr(field, "mod_key", None)
        where = "adata" if mod is None else f"mdata.mod[{mod!r}]"
        if field.attr_name == "layers":
            return f"{where}.layers[{field.attr_key!r}]"
        return f"{where}.X"

    def _consensus_uns(self, log_probs: np.ndarray) -> dict:
        """Per-type agreement and the pruning history, for ``uns``."""
        from cplmixvi.tl import category_agreement  # tl reads models; imported late (no cycle)

        out = {}
        if self.module.n_arms > 1:
            table = category_agreement(np.exp(log_probs), types=self.active_types)
            out["type_agreement"] = table.set_axis(table.index.astype(str), axis=0)
        if self.pruning_history_ is not None:
            out["pruning_history"] = self.pruning_history_.astype({"removed": str})
        return out

    def _obs_names(self, adata: AnnData | None, indices: Sequence[int] | None) -> pd.Index:
        names = (self.adata if adata is None else adata).obs_names
        return names if indices is None else names[np.asarray(indices)]


def _plain(value):
    """A value that AnnData can write to ``.uns``."""
    return value if isinstance(value, int | float | str | bool) else str(value)
