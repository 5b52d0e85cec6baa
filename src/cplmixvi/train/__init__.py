"""Training plan, schedules and minibatch loading."""

from ._loader import CplMixDataLoader, CplMixDataSplitter, SortedBatchSampler, is_distributed
from ._plan import CplMixTrainingPlan, annealed_temperature

__all__ = [
    "CplMixDataLoader",
    "CplMixDataSplitter",
    "CplMixTrainingPlan",
    "SortedBatchSampler",
    "annealed_temperature",
    "is_distributed",
]
