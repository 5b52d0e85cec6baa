"""Training plan and schedules."""

from ._plan import CplMixTrainingPlan, annealed_temperature

__all__ = ["CplMixTrainingPlan", "annealed_temperature"]
