"""Type-preserving augmenters that give each arm its own copy of a cell.

- counts: :class:`BinomialThinning`, :class:`GeneDropout` (and :class:`Identity`);
- images stored as pixel rows: :class:`RandomAffine`, :class:`RandomStrokeWidth`;
- the deep generative augmenter: :class:`LatentNoiseAugmenter`, the frozen networks of a
  fitted :class:`cplmixvi.GenerativeAugmenter` (an scvi-tools model to fit once);
- :class:`Compose` chains any of them; :func:`get_augmenter` resolves a user's argument.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._compose import Compose
from ._counts import Augmenter, BinomialThinning, GeneDropout, Identity
from ._generative import LatentNoiseAugmenter
from ._image import RandomAffine
from ._morphology import RandomStrokeWidth

__all__ = [
    "Augmenter",
    "BinomialThinning",
    "Compose",
    "GeneDropout",
    "Identity",
    "LatentNoiseAugmenter",
    "RandomAffine",
    "RandomStrokeWidth",
    "get_augmenter",
]

COUNT_LIKELIHOODS = ("nb", "zinb")
#: what ``"auto"`` means for count likelihoods (chosen by benchmarks/augmentation.py on MOp)
AUTO_COUNTS = "thinning+dropout"
#: what ``"auto"`` means for continuous likelihoods
AUTO_CONTINUOUS = "dropout"
_NAMED = {
    "thinning": BinomialThinning,
    "dropout": GeneDropout,
    "affine": RandomAffine,
    "stroke": RandomStrokeWidth,
}

#: a fitted generative augmenter passes as itself (anything with ``as_augmenter()``)
Spec = str | Augmenter | Sequence | object | None


def get_augmenter(spec: Spec, gene_likelihood: str, n_arms: int) -> Augmenter:
    """Resolve a user's augmentation argument into an :class:`Augmenter`.

    Parameters
    ----------
    spec
        ``"auto"`` (binomial thinning then gene dropout for count likelihoods, the best on MOp in
        ``benchmarks/augmentation.py``; gene dropout otherwise; nothing when there is a single
        arm), ``"thinning"``, ``"dropout"``, ``"affine"``, ``"stroke"`` (images of
        28 x 28 pixels; use :class:`RandomAffine`, :class:`RandomStrokeWidth` for other
        shapes), names joined by ``"+"``
        (``"thinning+dropout"``), ``None``/``"none"``, an :class:`Augmenter`, a fitted
        :class:`cplmixvi.GenerativeAugmenter`, or a list of any of these (applied in order, see
        :class:`Compose`).
    gene_likelihood
        The model's likelihood; thinning and the generative augmenter require counts, and a
        count likelihood requires an augmenter that keeps integer counts.
    n_arms
        Number of arms.
    """
    augmenter = _resolve(spec, gene_likelihood, n_arms)
    counts = gene_likelihood in COUNT_LIKELIHOODS
    if augmenter.requires_counts and not counts:
        raise ValueError(
            f"augmentation {augmenter!r} needs counts (gene_likelihood 'nb' or 'zinb'): "
            "thinning and the generative augmenter model UMIs; use augmentation='dropout' "
            "(or 'affine' for images) for continuous data."
        )
    if counts and not augmenter.preserves_counts:
        raise ValueError(
            f"augmentation {augmenter!r} does not keep integer counts, which gene_likelihood "
            f"{gene_likelihood!r} needs; use 'thinning', 'dropout' or a generative augmenter."
        )
    return augmenter


def _resolve(spec: Spec, gene_likelihood: str, n_arms: int) -> Augmenter:
    if isinstance(spec, Augmenter):
        return spec
    if hasattr(spec, "as_augmenter"):  # a fitted cplmixvi.GenerativeAugmenter
        return spec.as_augmenter()
    if isinstance(spec, list | tuple):
        return Compose([_resolve(s, gene_likelihood, n_arms) for s in spec])
    if spec == "auto":
        counts = gene_likelihood in COUNT_LIKELIHOODS
        spec = "none" if n_arms == 1 else (AUTO_COUNTS if counts else AUTO_CONTINUOUS)
    if spec is None or spec == "none":
        return Identity()
    if isinstance(spec, str) and "+" in spec:
        return Compose([_resolve(s.strip(), gene_likelihood, n_arms) for s in spec.split("+")])
    if isinstance(spec, str) and spec in _NAMED:
        return _NAMED[spec]()
    raise ValueError(
        f"Unknown augmentation {spec!r}: use 'auto', 'thinning', 'dropout', 'affine', 'stroke', "
        "'thinning+dropout', 'none', an Augmenter, a fitted GenerativeAugmenter or a list."
    )


_MOVED = {
    "GenerativeAugmenter": "cplmixvi.GenerativeAugmenter",
    "GenerativeAugmenterModule": "cplmixvi.module.GenerativeAugmenterModule",
    "GenerativeAugmenterPlan": "cplmixvi.train.GenerativeAugmenterPlan",
}


def __getattr__(name: str):
    if name in _MOVED:
        raise AttributeError(
            f"cplmixvi.augment.{name} moved to {_MOVED[name]} (models, modules and plans live "
            "with the others); import it from there."
        )
    raise AttributeError(f"module 'cplmixvi.augment' has no attribute {name!r}")
