"""The deep generative augmenter of cpl-mixVAE (paper Sec. 3.1 and Supplement F), scvi-tools style.

An unsupervised VAE-GAN / DAGAN-style model of raw counts: a VAE (encoder ``q(z|x)``, decoder to
a negative binomial at the cell's library size) trained jointly with a pair discriminator. The
augmented copy of a cell is decoded from a point near the cell in latent space,
``z' = mu(x) + strength * sigma(x) * eps``, and sampled as integer counts at the cell's library.

Loss of the generator (encoder + decoder), every term differentiable:

- ``reconstruction``: negative binomial NLL of ``x`` (VAE);
- ``kl``: ``KL(q(z|x) || N(0, I))``;
- ``adversarial``: the discriminator must take ``(x, x')`` for a real pair, where ``x'`` is a
  continuous (reparameterised, Gaussian-approximated NB) count sample decoded from ``z'``;
- ``latent``: ``|| mu(x') - z' ||^2``, the augmented sample must encode back to where it was
  drawn, so that it stays in the vicinity of the cell (Eq. 70).

The discriminator (DAGAN: it sees pairs, not single samples) learns to tell a real pair -- the
cell and its nearest other cell of the minibatch in latent space, an unsupervised stand-in for
"another cell of the same type" -- from the cell and its generated copy. Unlike the public
reference code, no loss term is built on thresholded tensors, so every term trains its network.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from anndata import AnnData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.dataloaders import DataSplitter
from scvi.model.base import BaseModelClass
from scvi.train import TrainRunner

from ._counts import Augmenter
from ._generative_module import Distribution, GenerativeAugmenterModule, GenerativeAugmenterPlan


class GenerativeAugmenter(BaseModelClass):
    """Deep generative augmenter for raw counts (VAE-GAN / DAGAN style), fitted without labels.

    Fit it once on the same AnnData as the clustering model, then pass it (or
    :meth:`as_augmenter`) as the ``augmentation`` of any :class:`~cplmixvi.CplMixVI`, where it
    is frozen and gives each arm integer counts decoded near the cell in latent space.

    Cost: it is a second model to train (about as long as one epoch of a 2-arm CplMixVI per
    epoch of its own), and at every CplMixVI step it runs an encoder and a decoder on each arm's
    copy, several times the cost of thinning or dropout (see ``benchmarks/results``).

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata` (raw counts).
    n_latent, n_hidden, n_layers, dropout_rate, adversarial_weight, latent_weight
        See :class:`GenerativeAugmenterModule`.

    Examples
    --------
    >>> GenerativeAugmenter.setup_anndata(adata, layer="counts")
    >>> gen = GenerativeAugmenter(adata)
    >>> gen.train()
    >>> gen.save("augmenter/")
    >>> CplMixVI.setup_anndata(adata, layer="counts")
    >>> model = CplMixVI(adata, n_types=44)
    >>> model.train(augmentation=gen)
    """

    _module_cls = GenerativeAugmenterModule
    _training_plan_cls = GenerativeAugmenterPlan
    _data_splitter_cls = DataSplitter
    _train_runner_cls = TrainRunner

    def __init__(
        self,
        adata: AnnData,
        n_latent: int = 10,
        n_hidden: int = 128,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        adversarial_weight: float = 1.0,
        latent_weight: float = 1.0,
    ):
        super().__init__(adata)
        _check_counts(self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY))
        self.module = self._module_cls(
            n_input=self.summary_stats.n_vars,
            n_latent=n_latent,
            n_hidden=n_hidden,
            n_layers=n_layers,
            dropout_rate=dropout_rate,
            adversarial_weight=adversarial_weight,
            latent_weight=latent_weight,
        )
        self._model_summary_string = (
            f"GenerativeAugmenter (VAE-GAN) with {n_latent} latent dimensions, "
            f"{n_layers}x{n_hidden} hidden layers."
        )
        self.init_params_ = self._get_init_params(locals())

    @classmethod
    def setup_anndata(cls, adata: AnnData, layer: str | None = None, **kwargs) -> None:
        """Register raw counts (``adata.X`` or ``adata.layers[layer]``).

        Parameters
        ----------
        adata
            AnnData with raw integer counts.
        layer
            Layer holding the counts (``None`` for ``.X``).
        """
        if layer is not None and layer not in adata.layers:
            raise KeyError(
                f"Layer {layer!r} is not in adata.layers ({list(adata.layers)}); pass the layer "
                "with raw counts, or layer=None for adata.X."
            )
        setup_method_args = cls._get_setup_method_args(**locals())
        anndata_fields = [fields.LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=True)]
        adata_manager = AnnDataManager(fields=anndata_fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(adata, **kwargs)
        cls.register_manager(adata_manager)

    def train(
        self,
        max_epochs: int | None = None,
        lr: float = 1e-3,
        batch_size: int = 256,
        train_size: float | None = None,
        validation_size: float | None = None,
        early_stopping: bool = False,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs,
    ):
        """Fit the augmenter (alternating generator and discriminator steps).

        Parameters
        ----------
        max_epochs
            Passes over the cells; default ``min(200, max(10, 200 000 // n_cells))``.
        lr
            Adam learning rate of both networks.
        batch_size
            Cells per minibatch (the discriminator's real pairs are minibatch neighbours).
        train_size, validation_size, early_stopping, accelerator, devices
            As in :meth:`cplmixvi.CplMixVI.train`.
        plan_kwargs
            Extra arguments for :class:`GenerativeAugmenterPlan`.
        datasplitter_kwargs
            Extra arguments for :class:`scvi.dataloaders.DataSplitter`.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer`.
        """
        if max_epochs is None:
            max_epochs = int(min(200, max(10, 200_000 // self.adata.n_obs)))
        plan = self._training_plan_cls(self.module, lr=lr, **(plan_kwargs or {}))
        splitter = self._data_splitter_cls(
            self.adata_manager,
            train_size=train_size,
            validation_size=validation_size,
            batch_size=batch_size,
            **(datasplitter_kwargs or {}),
        )
        runner = self._train_runner_cls(
            self,
            training_plan=plan,
            data_splitter=splitter,
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            early_stopping=early_stopping,
            **trainer_kwargs,
        )
        self.module.train()  # Lightning keeps the eval mode a previous fit ended in
        return runner()

    def as_augmenter(
        self, strength: float = 1.0, distribution: Distribution = "poisson"
    ) -> LatentNoiseAugmenter:
        """A frozen copy of the trained networks as an :class:`~cplmixvi.augment.Augmenter`."""
        self._check_if_trained(warn=True)
        return LatentNoiseAugmenter(self.module, strength=strength, distribution=distribution)

    @torch.inference_mode()
    def sample(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        strength: float = 1.0,
        distribution: Distribution = "poisson",
        batch_size: int = 1024,
    ) -> np.ndarray:
        """One augmented copy (integer counts, ``(n_cells, n_genes)``) of every cell."""
        self._check_if_trained(warn=True)
        adata = self._validate_anndata(adata)
        self.module.eval()
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        out = []
        for tensors in loader:
            x = tensors[REGISTRY_KEYS.X_KEY].to(self.device)
            out.append(self.module.sample_counts(x, strength, distribution).cpu())
        return torch.cat(out).numpy()


class LatentNoiseAugmenter(Augmenter):
    """Each arm's copy is integer counts decoded near the cell by a trained generative augmenter.

    Made by :meth:`GenerativeAugmenter.as_augmenter`. The networks are a frozen copy (never
    trained further by the model using them) and follow the minibatch to its device.

    Parameters
    ----------
    module
        A trained :class:`GenerativeAugmenterModule`.
    strength
        Scale of the latent noise in units of the posterior standard deviation of ``q(z|x)``;
        0 is the identity.
    distribution
        ``"poisson"`` or ``"nb"`` (the decoder's NB, noisier) for the counts at the decoded mean.
    """

    requires_counts = True

    def __init__(
        self,
        module: GenerativeAugmenterModule,
        strength: float = 1.0,
        distribution: Distribution = "poisson",
    ):
        if strength < 0:
            raise ValueError(f"LatentNoiseAugmenter strength must be >= 0, got {strength}.")
        if distribution not in ("poisson", "nb"):
            raise ValueError(f"distribution must be 'poisson' or 'nb', got {distribution!r}.")
        self.strength, self.distribution = float(strength), distribution
        self._module = copy.deepcopy(module).cpu().eval().requires_grad_(False)

    @property
    def module(self) -> GenerativeAugmenterModule:
        """The frozen networks."""
        return self._module

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        n_genes = self._module.n_input
        if x.shape[-1] != n_genes:
            raise ValueError(
                f"The generative augmenter was fitted on {n_genes} genes but the data have "
                f"{x.shape[-1]}; fit it on the same genes as the model."
            )
        if next(self._module.parameters()).device != x.device:
            self._module.to(x.device)
        flat = x.reshape(-1, n_genes)
        return (
            self._module.sample_counts(flat, self.strength, self.distribution)
            .reshape(x.shape)
            .to(x.dtype)
        )

    def __repr__(self) -> str:
        return (
            f"LatentNoiseAugmenter(strength={self.strength}, distribution={self.distribution!r}, "
            f"n_latent={self._module.n_latent})"
        )


def _check_counts(matrix) -> None:
    """Raise if the first rows of ``matrix`` are not non-negative integers."""
    head = matrix[: min(matrix.shape[0], 500)]
    values = head.data if sp.issparse(head) else np.asarray(head)
    if values.size and (values.min() < 0 or not np.all(np.mod(values, 1) == 0)):
        raise ValueError(
            "GenerativeAugmenter models raw counts, but the registered data have negative or "
            "non-integer values; call GenerativeAugmenter.setup_anndata(adata, layer=<counts>)."
        )
