"""Networks of the generative augmenter (its model: ``model/_generative_augmenter.py``; its
plan: ``train/_generative_plan.py``)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS
from scvi.distributions import NegativeBinomial
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn
from torch.distributions import Normal, kl_divergence

from cplmixvi.nn import log_normalise

Distribution = Literal["poisson", "nb"]


def _mlp(n_in: int, n_hidden: int, n_layers: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers += [nn.Linear(n_in if i == 0 else n_hidden, n_hidden), nn.LayerNorm(n_hidden)]
        layers += [nn.LeakyReLU(0.2), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


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
            torch.cat([log_normalise(anchor), log_normalise(other)], -1)
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
