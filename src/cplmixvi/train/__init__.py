"""Training plan, schedules and minibatch loading."""

from ._loader import CplMixDataLoader, CplMixDataSplitter, SortedReadDataset, is_distributed
from ._plan import CplMixTrainingPlan, annealed_temperature

__all__ = [
    "CplMixDataLoader",
    "CplMixDataSplitter",
    "CplMixTrainingPlan",
    "SortedReadDataset",
    "annealed_temperature",
    "is_distributed",
]
