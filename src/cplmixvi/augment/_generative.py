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
import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from anndata import AnnData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.dataloaders import DataSplitter
from scvi.distributions import NegativeBinomial
from scvi.model.base import BaseModelClass
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from scvi.train import TrainingPlan, TrainRunner
from torch import nn
from torch.distributions import Normal, kl_divergence

from ._counts import Augmenter

logger = logging.getLogger(__name__)

Distribution = Literal["poisson", "nb"]


def _mlp(n_in: int, n_hidden: int, n_layers: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers += [nn.Linear(n_in if i == 0 else n_hidden, n_hidden), nn.LayerNorm(n_hidden)]
        layers += [nn.LeakyReLU(0.2), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def _log_normalise(x: torch.Tensor) -> torch.Tensor:
    """``log1p`` of counts per 10 000 (the discriminator's view of a profile)."""
    return torch.log1p(1e4 * x / x.sum(-1, keepdim=True).clamp_min(1.0))


class GenerativeAugmenterModule(BaseModuleClass):
    """VAE-GAN on counts: encoder, NB decoder and a pair discriminator (see the module docs).

    Parameters
    ----------
    n_input
        Number of genes.
    n_latent
        Dimensions of the latent space.
    n_hidden, n_layers
        Width and depth of the encoder, decoder and discriminator.
    dropout_rate
        Dropout in the encoder and discriminator.
    adversarial_weight, latent_weight
        Weights of the adversarial and latent-consistency terms of the generator loss.
    """

    def __init__(
        self,
        n_input: int,
        n_latent: int = 10,
        n_hidden: int = 128,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        adversarial_weight: float = 1.0,
        latent_weight: float = 1.0,
    ):
        super().__init__()
        self.n_input, self.n_latent = n_input, n_latent
        self.adversarial_weight, self.latent_weight = adversarial_weight, latent_weight
        self.encoder = _mlp(n_input, n_hidden, n_layers, dropout_rate)
        self.z_head = nn.Linear(n_hidden, 2 * n_latent)
        self.decoder = _mlp(n_latent, n_hidden, n_layers, 0.0)
        self.px_head = nn.Linear(n_hidden, n_input)
        self.log_theta = nn.Parameter(torch.zeros(n_input))
        self.discriminator = nn.Sequential(
            _mlp(2 * n_input, n_hidden, n_layers, dropout_rate), nn.Linear(n_hidden, 1)
        )

    # ----- scvi-tools plumbing -------------------------------------------------------------
    def _get_inference_input(self, tensors: dict[str, torch.Tensor], **kwargs) -> dict:
        return {"x": tensors[REGISTRY_KEYS.X_KEY]}

    def _get_generative_input(self, tensors, inference_outputs, **kwargs) -> dict:
        return {"z": inference_outputs["z"], "library": inference_outputs["library"]}

    # ----- the model ----------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of ``q(z|x)`` for counts ``x`` of shape ``(B, G)``."""
        mean, logvar = self.z_head(self.encoder(torch.log1p(x))).chunk(2, dim=-1)
        return mean, torch.exp(0.5 * logvar.clamp(-15.0, 15.0)) + 1e-4

    def decode(self, z: torch.Tensor, library: torch.Tensor) -> torch.Tensor:
        """NB mean ``library * softmax(f(z))``."""
        return library * torch.softmax(self.px_head(self.decoder(z)), dim=-1)

    @auto_move_data
    def inference(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encode ``x`` and draw ``z ~ q(z|x)``."""
        mean, std = self.encode(x)
        z = mean + std * torch.randn_like(std)
        return {"qz_mean": mean, "qz_std": std, "z": z, "library": x.sum(-1, keepdim=True)}

    @auto_move_data
    def generative(self, z: torch.Tensor, library: torch.Tensor) -> dict[str, torch.Tensor]:
        """Decode ``z`` into the NB mean at the cell's library size."""
        return {"px_mean": self.decode(z, library)}

    def augmented_sample(
        self, inference_outputs: dict[str, torch.Tensor], strength: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A latent point near each cell and a differentiable count-like sample decoded from it.

        The sample is the Gaussian approximation of ``NB(mean, theta)`` (reparameterised, kept
        non-negative), so that gradients reach the decoder through it.
        """
        inf = inference_outputs
        z_aug = inf["qz_mean"] + strength * inf["qz_std"] * torch.randn_like(inf["qz_std"])
        mean = self.decode(z_aug, inf["library"])
        var = mean + mean.pow(2) / self.log_theta.exp()
        return z_aug, F.relu(mean + var.sqrt() * torch.randn_like(mean))

    def discriminate(self, anchor: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """Logit that ``(anchor, other)`` is a real pair of nearby cells."""
        return self.discriminator(
            torch.cat([_log_normalise(anchor), _log_normalise(other)], -1)
        ).squeeze(-1)

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict[str, torch.Tensor],
        generative_outputs: dict[str, torch.Tensor],
        kl_weight: float = 1.0,
    ) -> LossOutput:
        """Generator loss (see :meth:`loss_terms`): the weighted sum, averaged over cells."""
        terms = self.loss_terms(tensors, inference_outputs, generative_outputs)
        total = (
            terms["reconstruction"]
            + kl_weight * terms["kl"]
            + self.adversarial_weight * terms["adversarial"]
            + self.latent_weight * terms["latent"]
        )
        return LossOutput(
            loss=total.mean(),
            reconstruction_loss=terms["reconstruction"],
            kl_local={"kl": terms["kl"]},
            extra_metrics={k: v.mean().detach() for k, v in terms.items()},
        )

    def loss_terms(self, tensors, inference_outputs, generative_outputs) -> dict:
        """Per-cell ``reconstruction``, ``kl``, ``adversarial`` and ``latent`` generator terms."""
        x = tensors[REGISTRY_KEYS.X_KEY]
        inf = inference_outputs
        theta = self.log_theta.exp()
        rec = -NegativeBinomial(mu=generative_outputs["px_mean"], theta=theta).log_prob(x).sum(-1)
        kl = kl_divergence(
            Normal(inf["qz_mean"], inf["qz_std"]), Normal(0.0, torch.ones_like(inf["qz_std"]))
        ).sum(-1)
        z_aug, x_aug = self.augmented_sample(inf)
        logit = self.discriminate(x, x_aug)
        adversarial = F.binary_cross_entropy_with_logits(
            logit, torch.ones_like(logit), reduction="none"
        )
        latent = (self.encode(x_aug)[0] - z_aug).pow(2).sum(-1)
        return {"reconstruction": rec, "kl": kl, "adversarial": adversarial, "latent": latent}

    def discriminator_loss(
        self, x: torch.Tensor, inference_outputs: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """BCE of the pair discriminator: (cell, nearest other cell) real, (cell, copy) fake."""
        inf = {k: v.detach() for k, v in inference_outputs.items()}
        with torch.no_grad():
            _, x_aug = self.augmented_sample(inf)
            dist = torch.cdist(inf["qz_mean"], inf["qz_mean"])
            dist.fill_diagonal_(float("inf"))
            neighbour = x[dist.argmin(-1)]
        real = self.discriminate(x, neighbour)
        fake = self.discriminate(x, x_aug)
        return F.binary_cross_entropy_with_logits(
            real, torch.ones_like(real)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))

    @torch.no_grad()
    def sample_counts(
        self, x: torch.Tensor, strength: float = 1.0, distribution: Distribution = "poisson"
    ) -> torch.Tensor:
        """Integer counts decoded near each cell of ``x`` ``(N, G)`` at its own library size."""
        mean, std = self.encode(x)
        z = mean + strength * std * torch.randn_like(std)
        mu = self.decode(z, x.sum(-1, keepdim=True)).clamp_min(1e-8)
        if distribution == "nb":
            theta = self.log_theta.exp().expand_as(mu)
            mu = torch.distributions.Gamma(theta, theta / mu).sample()
        return torch.poisson(mu)


class GenerativeAugmenterPlan(TrainingPlan):
    """Alternate one generator step (VAE + adversarial + latent terms) and one discriminator step.

    Parameters
    ----------
    module
        A :class:`GenerativeAugmenterModule`.
    lr_discriminator
        Learning rate of the discriminator (default: ``lr``).
    **kwargs
        Passed to :class:`scvi.train.TrainingPlan` (``lr``, ``weight_decay``, ...).
    """

    def __init__(self, module, *, lr_discriminator: float | None = None, **kwargs):
        kwargs.setdefault("n_epochs_kl_warmup", None)
        super().__init__(module, **kwargs)
        self.lr_discriminator = lr_discriminator
        self.automatic_optimization = False

    def configure_optimizers(self):
        """Adam for the generator (encoder, decoder) and for the discriminator."""
        gen = [p for n, p in self.module.named_parameters() if not n.startswith("discriminator.")]
        opt_g = torch.optim.Adam(gen, lr=self.lr, eps=0.01, weight_decay=self.weight_decay)
        opt_d = torch.optim.Adam(
            self.module.discriminator.parameters(), lr=self.lr_discriminator or self.lr
        )
        return [opt_g, opt_d]

    def training_step(self, batch, batch_idx):
        """One generator step, then one discriminator step, on the same minibatch."""
        if "kl_weight" in self.loss_kwargs:
            self.loss_kwargs.update({"kl_weight": self.kl_weight})
        opt_g, opt_d = self.optimizers()
        inference_outputs, _, scvi_loss = self.forward(batch, loss_kwargs=self.loss_kwargs)
        self.log("train_loss", scvi_loss.loss, on_epoch=True, on_step=False, prog_bar=True)
        self.compute_and_log_metrics(scvi_loss, self.train_metrics, "train")
        opt_g.zero_grad()
        self.manual_backward(scvi_loss.loss)
        opt_g.step()
        d_loss = self.module.discriminator_loss(batch[REGISTRY_KEYS.X_KEY], inference_outputs)
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        self.log("discriminator_train", d_loss.detach(), on_epoch=True, on_step=False)
        return scvi_loss.loss.detach()


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
