"""Analysis of a trained model: consensus of the arms, choice of K, state genes, confusion, the
types' UMAP. Results that plots draw are stored in AnnData under ``key_added``."""

from cplmixvi.metrics import category_agreement, co_assignment, consensus

from ._confusion import confusion_table, tree_leaf_order
from ._select import pruning_history, select_n_types
from ._state_genes import check_flat, rank_state_genes, state_gene_type_dependence, top_state_genes
from ._umap import types_umap

__all__ = [
    "category_agreement",
    "check_flat",
    "co_assignment",
    "confusion_table",
    "consensus",
    "pruning_history",
    "rank_state_genes",
    "select_n_types",
    "state_gene_type_dependence",
    "top_state_genes",
    "tree_leaf_order",
    "types_umap",
]
