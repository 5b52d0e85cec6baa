"""Building blocks: arm-batched layers and the coupling distance."""

from ._arm_layers import ArmBatchNorm, ArmLinear, ArmMLP
from ._coupling import perturbed_aitchison_sq

__all__ = ["ArmBatchNorm", "ArmLinear", "ArmMLP", "perturbed_aitchison_sq"]
