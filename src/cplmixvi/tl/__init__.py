"""Analysis of a trained model: consensus of the arms, pruning history and choice of K."""

from ._consensus import category_agreement, co_assignment, consensus
from ._select import pruning_history, select_n_types

__all__ = ["category_agreement", "co_assignment", "consensus", "pruning_history", "select_n_types"]
