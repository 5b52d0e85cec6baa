"""Type-preserving augmenters applied on the fly, independently for each arm.

An augmenter maps a dense minibatch ``x`` of shape ``(B, G)`` to ``n_arms`` copies of shape
``(A, B, G)``. Each copy keeps the cell's type while perturbing technical noise. Every augmenter
has a ``strength`` (0 is the identity) and acts on each row of a ``(..., G)`` tensor
independently through :meth:`Augmenter.augment`, which is what makes them composable
(:class:`~cplmixvi.augment.Compose`).
"""

from __future__ import annotations

from os import PathLike

import torch

from cplmixvi.nn._dispatch import formulation


class Augmenter:
    """Base class: callable ``(x, n_arms) -> (n_arms, B, G)`` copies of the minibatch.

    Subclasses implement :meth:`augment`, which perturbs every row of a ``(..., G)`` tensor
    independently and returns a tensor of the same shape and dtype.
    """

    #: whether the copies stay non-negative integers (so a count likelihood still applies)
    preserves_counts: bool = True
    #: whether the input must be raw counts (thinning, the generative augmenter)
    requires_counts: bool = False
    #: size of the perturbation; 0 is the identity
    strength: float = 0.0

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Perturb every row of ``x`` (shape ``(..., G)``) independently."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, n_arms: int) -> torch.Tensor:
        copies = x.expand(n_arms, *x.shape)
        if self.strength == 0:
            return copies
        return self.augment(copies)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"

    def save(self, path: str | PathLike) -> None:
        """Write the augmenter (settings and any weights) to ``path`` with :func:`torch.save`."""
        torch.save(self, path)

    @staticmethod
    def load(path: str | PathLike) -> Augmenter:
        """Read an augmenter written by :meth:`save` (on the CPU)."""
        obj = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(obj, Augmenter):
            raise TypeError(f"{path} holds a {type(obj).__name__}, not an Augmenter.")
        return obj


def _check_strength(name: str, value: float, upper: float = 1.0) -> float:
    if not 0.0 <= value < upper:
        raise ValueError(f"{name} strength (rate) must be in [0, {upper}), got {value}.")
    return float(value)


class BinomialThinning(Augmenter):
    """Downsample UMIs: each count is kept with probability ``p`` drawn per copy and cell.

    ``p ~ Uniform(1 - strength, 1)``, and the copy is ``Binomial(x, p)``, which is what
    sequencing the same cell less deeply produces. Thinning never increases a count, keeps
    zeros at zero and integers integer, and ``strength=0`` is the identity.

    Parameters
    ----------
    strength
        Largest fraction of UMIs removed, in ``[0, 1)``.
    """

    requires_counts = True

    def __init__(self, strength: float = 0.5):
        self.strength = _check_strength("BinomialThinning", strength)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        keep = 1.0 - self.strength * torch.rand(*x.shape[:-1], 1, device=x.device, dtype=x.dtype)
        binomial = formulation("binomial", torch.binomial)
        return binomial(x.contiguous(), keep.expand_as(x).contiguous())


class GeneDropout(Augmenter):
    """Set a random fraction ``strength`` of each copy's entries to zero (any non-negative data).

    Zeros stay zero and integers stay integers; ``strength=0`` is the identity. Under
    ``torch.compile`` the mask comes from counter-based random bits
    (``train/_compiled_forms.py``), which the compiler fuses into the product; the
    rate is then rounded to a multiple of ``2^-24``.

    Parameters
    ----------
    strength
        Probability that an entry is zeroed, in ``[0, 1)``.
    rate
        Former name of ``strength`` (kept for compatibility).
    """

    def __init__(self, strength: float = 0.1, *, rate: float | None = None):
        self.strength = _check_strength("GeneDropout", strength if rate is None else rate)

    @property
    def rate(self) -> float:
        """Alias of :attr:`strength`."""
        return self.strength

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return x * formulation("dropout_keep", _dropout_keep)(x, self.strength)


class Identity(Augmenter):
    """Every arm sees the cell unchanged (the "no augmentation" control)."""

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _dropout_keep(x: torch.Tensor, strength: float) -> torch.Tensor:
    """Which entries of ``x`` a gene dropout keeps: each with probability ``1 - strength``."""
    return torch.rand(x.shape, device=x.device) >= strength
