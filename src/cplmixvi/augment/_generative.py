"""The augmenter that draws each arm's copy from a fitted generative augmenter's networks.

The networks (:class:`~cplmixvi.module.GenerativeAugmenterModule`) are fitted by the model
:class:`~cplmixvi.GenerativeAugmenter`; :meth:`~cplmixvi.GenerativeAugmenter.as_augmenter`
wraps a frozen copy of them here.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ._counts import Augmenter


class LatentNoiseAugmenter(Augmenter):
    """Each arm's copy is integer counts decoded near the cell by a trained generative augmenter.

    Made by :meth:`cplmixvi.GenerativeAugmenter.as_augmenter`. The networks are a frozen copy (never
    trained further by the model using them) and follow the minibatch to its device.

    Parameters
    ----------
    module
        A trained :class:`~cplmixvi.module.GenerativeAugmenterModule` (its ``sample_counts``).
    strength
        Scale of the latent noise in units of the posterior standard deviation of ``q(z|x)``;
        0 is the identity.
    distribution
        ``"poisson"`` or ``"nb"`` (the decoder's NB, noisier) for the counts at the decoded mean.
    """

    requires_counts = True

    def __init__(
        self,
        module: nn.Module,
        strength: float = 1.0,
        distribution: str = "poisson",
    ):
        if strength < 0:
            raise ValueError(f"LatentNoiseAugmenter strength must be >= 0, got {strength}.")
        if distribution not in ("poisson", "nb"):
            raise ValueError(f"distribution must be 'poisson' or 'nb', got {distribution!r}.")
        self.strength, self.distribution = float(strength), distribution
        self._module = copy.deepcopy(module).cpu().eval().requires_grad_(False)

    @property
    def module(self) -> nn.Module:
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
