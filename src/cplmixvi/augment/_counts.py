"""Type-preserving augmenters applied on the fly, independently for each arm.

An augmenter maps a dense minibatch ``x`` of shape ``(B, G)`` to ``n_arms`` copies of shape
``(A, B, G)``. Each copy keeps the cell's type while perturbing technical noise.
"""

from __future__ import annotations

import torch


class Augmenter:
    """Base class: callable ``(x, n_arms) -> (n_arms, B, G)`` copies of the minibatch."""

    #: whether the copies stay non-negative integers (so a count likelihood still applies)
    preserves_counts: bool = True

    def __call__(self, x: torch.Tensor, n_arms: int) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class BinomialThinning(Augmenter):
    """Downsample UMIs: each count is kept with probability ``p`` drawn per copy and cell.

    ``p ~ Uniform(1 - strength, 1)``, and the copy is ``Binomial(x, p)``, which is what
    sequencing the same cell less deeply produces. Thinning never increases a count and
    ``strength=0`` is the identity.

    Parameters
    ----------
    strength
        Largest fraction of UMIs removed, in ``[0, 1)``.
    """

    def __init__(self, strength: float = 0.5):
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"BinomialThinning strength must be in [0, 1), got {strength}.")
        self.strength = strength

    def __call__(self, x: torch.Tensor, n_arms: int) -> torch.Tensor:
        copies = x.expand(n_arms, *x.shape)
        if self.strength == 0:
            return copies
        keep = 1.0 - self.strength * torch.rand(n_arms, x.shape[0], 1, device=x.device)
        return torch.binomial(copies.contiguous(), keep.expand_as(copies).contiguous())


class GeneDropout(Augmenter):
    """Set a random fraction ``rate`` of each copy's entries to zero (any non-negative data)."""

    def __init__(self, rate: float = 0.1):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"GeneDropout rate must be in [0, 1), got {rate}.")
        self.rate = rate

    def __call__(self, x: torch.Tensor, n_arms: int) -> torch.Tensor:
        copies = x.expand(n_arms, *x.shape)
        if self.rate == 0:
            return copies
        keep = torch.rand(copies.shape, device=x.device) >= self.rate
        return copies * keep


class Identity(Augmenter):
    """Every arm sees the cell unchanged (the "no augmentation" control)."""

    def __call__(self, x: torch.Tensor, n_arms: int) -> torch.Tensor:
        return x.expand(n_arms, *x.shape)
