"""Pure-torch modules (scvi-tools ``BaseModuleClass``)."""

from ._cplmixvae import COUNT_LIKELIHOODS, CplMixVAE
from ._generative_augmenter import GenerativeAugmenterModule

__all__ = ["COUNT_LIKELIHOODS", "CplMixVAE", "GenerativeAugmenterModule"]
