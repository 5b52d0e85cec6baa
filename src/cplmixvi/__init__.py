"""cplmixvi: cell types and cell states with coupled mixture variational autoencoders."""

import os

# OpenMP's default spin-waiting slows small-matrix training many-fold on shared CPUs; it must be
# set before torch is imported to take effect.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from importlib.metadata import PackageNotFoundError, version  # noqa: E402

from . import augment, data, metrics, nn, pl, tl, train  # noqa: E402
from .model import CplMixVI  # noqa: E402
from .module import CplMixVAE  # noqa: E402

try:
    __version__ = version("cplmixvi")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["CplMixVAE", "CplMixVI", "augment", "data", "metrics", "nn", "pl", "tl", "train"]
