"""CplMixVI: the user-facing scvi-tools model for cell types and cell states."""

from __future__ import annotations

from typing import Literal

import pandas as pd
from anndata import AnnData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.model.base import BaseModelClass
from scvi.train import TrainRunner
from scvi.utils import setup_anndata_dsp

from cplmixvi.augment import Augmenter, get_augmenter
from cplmixvi.model import _long_runs as long_runs
from cplmixvi.model._pruning import auto_upper_bound
from cplmixvi.model._results import ResultsMixin
from cplmixvi.model._saving import AtomicSaveMixin
from cplmixvi.model._training import TrainingMixin
from cplmixvi.model._traversal import TraversalMixin
from cplmixvi.model._validation import (
    check_choice,
    check_input_values,
    check_keys,
    check_module_kwargs,
    check_mudata_batch,
    check_saved_genes,
    check_sizes,
)
from cplmixvi.module import CplMixVAE
from cplmixvi.train import CplMixDataSplitter, CplMixTrainingPlan
from cplmixvi.train._checkpoint import resolve_checkpoint


class CplMixVI(
    TrainingMixin,
    ResultsMixin,
    long_runs.LongRunsMixin,
    AtomicSaveMixin,
    TraversalMixin,
    BaseModelClass,
):
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
    objective
        ``"consensus"`` (default): the arms are first trained as autoencoders for
        ``pretrain_epochs`` (see :meth:`train`), their type heads are then set to the k-means
        clusters of their pretrained type codes, and every arm is trained towards the arms' common
        sharpened target ``p`` (``KL(p || q_a)``, :func:`cplmixvi.nn.sharpened_target`) while each
        arm's ELBO keeps training its encoder, state and decoder, but not its type head (the type
        sample enters them detached). ``"paper"``: Eq. 7 of the paper, the entropy bonus and the
        perturbed Aitchison distance between the arms' relaxed type samples, from the first epoch
        (the module's ``coupling_weight``, ``entropy_weight`` and ``coupling_min_prob`` apply).
        ``"info"``: the arms' aggregate type entropy minus their cross-entropy, weighted by
        ``coupling_weight`` (:func:`cplmixvi.nn.information_coupling`; the MNIST recipe, with
        ``coupling_weight=50``, ``entropy_weight=0``, ``marginal_entropy_weight=25``).
    augmentation
        How each arm's copy of a training cell is made: ``"auto"`` (binomial thinning then gene
        dropout of counts, gene dropout for continuous data, none for one arm), ``"thinning"``,
        ``"dropout"``, ``"affine"``, ``"none"``, an :class:`~cplmixvi.augment.Augmenter`, a fitted
        :class:`~cplmixvi.GenerativeAugmenter` or a list of these (see
        :func:`~cplmixvi.augment.get_augmenter`); :meth:`train` can override it.
    state_encoder
        ``"shared"`` (default): the state posterior ``q(s|x, c)`` reads the hidden layer of the
        type encoder. ``"separate"``: the state has its own encoder network, out of reach of the
        coupling's gradients, which otherwise drown the weak within-type signal; use it (with a KL
        warm-up, ``plan_kwargs={"n_epochs_kl_warmup": max_epochs}``) when the state itself is
        the object of study (traversals, state genes; see ``benchmarks/results/states_*.md``).
    **model_kwargs
        Passed to :class:`~cplmixvi.CplMixVAE`: ``state_prior`` (``"type"``, the learned
        ``p(s|c)``, or ``"normal"``), and the weights and bounds of the ``"paper"`` and
        ``"info"`` objectives (``coupling_weight``, ``entropy_weight``,
        ``marginal_entropy_weight``, ``coupling_min_prob``, ``coupling_min_sigma``).

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
        augmentation: str | Augmenter | None = "auto",
        state_encoder: Literal["shared", "separate"] = "shared",
        objective: Literal["consensus", "paper", "info"] = "consensus",
        **model_kwargs,
    ):
        super().__init__(adata)
        check_choice("gene_likelihood", gene_likelihood, ("nb", "zinb", "normal", "bernoulli"))
        check_choice("state_encoder", state_encoder, ("shared", "separate"))
        check_choice("objective", objective, ("consensus", "paper", "info"))
        check_module_kwargs(model_kwargs)
        self.prunes_in_train_ = n_types == "auto"
        if self.prunes_in_train_:
            n_types = auto_upper_bound(self.summary_stats.n_cells)
        check_sizes(n_types, n_state, n_arms, self.summary_stats.n_cells)
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
            augmenter=augmenter,
            state_encoder=state_encoder,
            objective=objective,
            **model_kwargs,
        )
        self.module = self._module_cls(n_types=n_types, **self._module_kwargs)
        self._model_summary_string = (
            f"CplMixVI model with {n_arms} arm(s), {n_types} types, {n_state} state dimensions, "
            f"likelihood {gene_likelihood!r}, state prior {self.module.state_prior!r}, "
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
