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

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from anndata import AnnData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.dataloaders import DataSplitter
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin
from scvi.train import TrainRunner

from cplmixvi.augment import LatentNoiseAugmenter
from cplmixvi.module import GenerativeAugmenterModule
from cplmixvi.module._generative_augmenter import Distribution
from cplmixvi.train import GenerativeAugmenterPlan


class GenerativeAugmenter(UnsupervisedTrainingMixin, BaseModelClass):
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
        See :class:`~cplmixvi.module.GenerativeAugmenterModule`.

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
        plan_kwargs: dict | None = None,
        **kwargs,
    ):
        """Fit the augmenter (alternating generator and discriminator steps).

        Parameters
        ----------
        max_epochs
            Passes over the cells; default ``min(200, max(10, 200 000 // n_cells))``.
        lr
            Adam learning rate of both networks.
        plan_kwargs
            Extra arguments for :class:`~cplmixvi.train.GenerativeAugmenterPlan`.
        **kwargs
            Passed to :meth:`scvi.model.base.UnsupervisedTrainingMixin.train` (``batch_size``:
            the discriminator's real pairs are minibatch neighbours; ``train_size``,
            ``early_stopping``, ``accelerator``, trainer options...).
        """
        if max_epochs is None:
            max_epochs = int(min(200, max(10, 200_000 // self.adata.n_obs)))
        self.module.train()  # Lightning keeps the eval mode a previous fit ended in
        plan_kwargs = {"lr": lr, **(plan_kwargs or {})}
        return super().train(max_epochs=max_epochs, plan_kwargs=plan_kwargs, **kwargs)

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


def _check_counts(matrix) -> None:
    """Raise if the first rows of ``matrix`` are not non-negative integers."""
    head = matrix[: min(matrix.shape[0], 500)]
    values = head.data if sp.issparse(head) else np.asarray(head)
    if values.size and (values.min() < 0 or not np.all(np.mod(values, 1) == 0)):
        raise ValueError(
            "GenerativeAugmenter models raw counts, but the registered data have negative or "
            "non-integer values; call GenerativeAugmenter.setup_anndata(adata, layer=<counts>)."
        )
