"""cplmixvi: cell types and cell states with coupled mixture variational autoencoders."""

from importlib.metadata import PackageNotFoundError, version

from . import augment, data, metrics, nn, pl, tl, train
from .model import CplMixVI, GenerativeAugmenter
from .module import CplMixVAE

try:
    __version__ = version("cplmixvi")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "CplMixVAE",
    "CplMixVI",
    "GenerativeAugmenter",
    "augment",
    "data",
    "metrics",
    "nn",
    "pl",
    "tl",
    "train",
]
