"""User-facing models."""

from ._cplmixvi import CplMixVI
from ._generative_augmenter import GenerativeAugmenter

__all__ = ["CplMixVI", "GenerativeAugmenter"]
