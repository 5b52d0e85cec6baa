"""Pure-torch modules (scvi-tools ``BaseModuleClass``)."""

from ._cplmixvae import COUNT_LIKELIHOODS, CplMixVAE

__all__ = ["COUNT_LIKELIHOODS", "CplMixVAE"]
