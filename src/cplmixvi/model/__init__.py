"""User-facing models."""

from ._cplmixvi import CplMixVI

__all__ = ["CplMixVI"]
