"""Building blocks: arm-batched layers, the type objectives' terms and the input transform."""

from ._arm_layers import ArmBatchNorm, ArmLinear, ArmMLP
from ._consensus import consensus_kl, sharpened_target
from ._coupling import perturbed_aitchison_sq
from ._fast import gaussian_nll, gumbel_softmax, normal_kl
from ._information import information_coupling, marginal_entropy
from ._transforms import log_normalise

__all__ = [
    "ArmBatchNorm",
    "ArmLinear",
    "ArmMLP",
    "consensus_kl",
    "gaussian_nll",
    "gumbel_softmax",
    "normal_kl",
    "information_coupling",
    "log_normalise",
    "marginal_entropy",
    "perturbed_aitchison_sq",
    "sharpened_target",
]
