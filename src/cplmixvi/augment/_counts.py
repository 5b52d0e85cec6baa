"""Type-preserving augmenters applied on the fly, independently for each arm.

An augmenter maps a dense minibatch ``x`` of shape ``(B, G)`` to ``n_arms`` copies of shape
``(A, B, G)``. Each copy keeps the cell's type while perturbing technical noise. Every augmenter
has a ``strength`` (0 is the identity) and acts on each row of a ``(..., G)`` tensor
independently through :meth:`Augmenter.augment`, which is what makes them composable
(:class:`~cplmixvi.augment.Compose`).
"""

from __future__ import annotations

import math
from os import PathLike

import torch


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
        return torch.binomial(x.contiguous(), keep.expand_as(x).contiguous())


class GeneDropout(Augmenter):
    """Set a random fraction ``strength`` of each copy's entries to zero (any non-negative data).

    Zeros stay zero and integers stay integers; ``strength=0`` is the identity. Under
    ``torch.compile`` the mask comes from 16-bit random integers, four per 64-bit draw (a quarter
    of the draws; the rate is rounded to a multiple of ``2^-16``).

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
        if torch.compiler.is_compiling():
            return x * hashed_keep_mask(x.shape, self.strength, x.device)
        keep = torch.rand(x.shape, device=x.device) >= self.strength
        return x * keep


def hashed_keep_mask(shape: torch.Size, rate: float, device: torch.device) -> torch.Tensor:
    """Bernoulli ``1 - rate`` keep mask (bool) from a counter-based hash, for ``torch.compile``.

    One 32-bit key is drawn from torch's generator (so a seed fixes the mask); every entry's
    24 random bits are the ``lowbias32`` integer hash of its row's hashed index plus its column.
    Unlike a draw from the CPU generator, which fills memory one value at a time, the hash is
    vectorised integer arithmetic that the compiler fuses into the consumer of the mask: no
    random tensor is drawn or stored. The drop probability is ``rate`` rounded to a multiple of
    ``2^-24``.
    """
    key = torch.randint(-(2**31), 2**31 - 1, (1,), dtype=torch.int32, device=device)
    rows = torch.arange(math.prod(shape[:-1]), dtype=torch.int32, device=device)
    cols = torch.arange(shape[-1], dtype=torch.int32, device=device)
    row_keys = _lowbias32(rows ^ key).reshape(*shape[:-1], 1)
    bits = (_lowbias32(row_keys + cols) >> 8) & 0xFFFFFF
    return bits >= round(rate * 2**24)


def _lowbias32(h: torch.Tensor) -> torch.Tensor:
    """C. Wellons' ``lowbias32`` integer hash on int32 tensors (wrapping arithmetic)."""
    h = h ^ ((h >> 16) & 0xFFFF)
    h = h * 0x7FEB352D
    h = h ^ ((h >> 15) & 0x1FFFF)
    h = h * (0x846CA68B - 2**32)
    return h ^ ((h >> 16) & 0xFFFF)


class Identity(Augmenter):
    """Every arm sees the cell unchanged (the "no augmentation" control)."""

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return x
