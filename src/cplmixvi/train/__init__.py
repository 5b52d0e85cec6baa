"""Training plan, schedules, minibatch loading, checkpoints and the fault guard."""

from ._checkpoint import EpochCheckpoint, latest_checkpoint
from ._generative_plan import GenerativeAugmenterPlan
from ._guard import NonFiniteLossError, TrainingGuard
from ._loader import CplMixDataLoader, CplMixDataSplitter, SortedReadDataset, is_distributed
from ._plan import CplMixTrainingPlan, annealed_temperature

__all__ = [
    "CplMixDataLoader",
    "CplMixDataSplitter",
    "CplMixTrainingPlan",
    "EpochCheckpoint",
    "GenerativeAugmenterPlan",
    "NonFiniteLossError",
    "SortedReadDataset",
    "TrainingGuard",
    "annealed_temperature",
    "is_distributed",
    "latest_checkpoint",
]
