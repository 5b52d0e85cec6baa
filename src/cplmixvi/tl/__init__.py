"""Analysis of a trained model's results: state-regulated genes, confusion with references."""

from ._confusion import confusion_table, tree_leaf_order
from ._state_genes import check_flat, rank_state_genes, state_gene_type_dependence, top_state_genes

__all__ = [
    "check_flat",
    "confusion_table",
    "rank_state_genes",
    "state_gene_type_dependence",
    "top_state_genes",
    "tree_leaf_order",
]
