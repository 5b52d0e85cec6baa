"""Composition of augmenters: apply several perturbations, in order, to each arm's copy."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._counts import Augmenter


class Compose(Augmenter):
    """Apply ``augmenters`` one after the other to each copy (each draws its own randomness).

    ``Compose([BinomialThinning(0.5), GeneDropout(0.1)])`` thins the UMIs of each copy and then
    drops genes from it. The composition keeps counts if every part does.

    Parameters
    ----------
    augmenters
        The augmenters, applied in this order.
    """

    def __init__(self, augmenters: Sequence[Augmenter]):
        augmenters = list(augmenters)
        bad = [a for a in augmenters if not isinstance(a, Augmenter)]
        if bad:
            raise TypeError(f"Compose takes Augmenter instances, got {bad!r}.")
        self.augmenters = augmenters

    @property
    def strength(self) -> float:  # type: ignore[override]
        """Largest strength of the parts (0 only when every part is the identity)."""
        return max([a.strength for a in self.augmenters], default=0.0)  # a list: torch.compile

    @property
    def preserves_counts(self) -> bool:  # type: ignore[override]
        """Whether every part keeps integer counts."""
        return all(a.preserves_counts for a in self.augmenters)

    @property
    def requires_counts(self) -> bool:  # type: ignore[override]
        """Whether some part needs raw counts."""
        return any(a.requires_counts for a in self.augmenters)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        for augmenter in self.augmenters:
            if augmenter.strength != 0:
                x = augmenter.augment(x)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.augmenters!r})"
