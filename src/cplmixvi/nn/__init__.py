"""Building blocks: arm-batched layers and the coupling distance."""

from ._arm_layers import ArmBatchNorm, ArmLinear, ArmMLP
from ._coupling import perturbed_aitchison_sq
from ._fast import gaussian_nll, gumbel_softmax, normal_kl

__all__ = [
    "ArmBatchNorm",
    "ArmLinear",
    "ArmMLP",
    "gaussian_nll",
    "gumbel_softmax",
    "normal_kl",
    "perturbed_aitchison_sq",
]
