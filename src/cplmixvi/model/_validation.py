"""Early, explicit checks of the data a model is asked to train on."""

from __future__ import annotations

import numpy as np
from scipy import sparse

_CHUNK = 8192


def _chunks(matrix):
    """Yield row blocks of a dense, sparse or backed matrix without densifying it whole."""
    for start in range(0, matrix.shape[0], _CHUNK):
        block = matrix[start : start + _CHUNK]
        yield block if sparse.issparse(block) else np.asarray(block)


def _values(block) -> np.ndarray:
    return block.data if sparse.issparse(block) else block


def check_input_values(matrix, likelihood: str, where: str) -> None:
    """Raise a ``ValueError`` naming the problem when ``matrix`` does not suit ``likelihood``.

    Checks, chunk by chunk: NaN/inf everywhere; negative or non-integer values and cells with
    zero total counts for count likelihoods (``nb``, ``zinb``); values outside ``[0, 1]`` for
    ``bernoulli``.
    """
    counts = likelihood in ("nb", "zinb")
    n_empty = 0
    for block in _chunks(matrix):
        values = _values(block)
        if not np.all(np.isfinite(values)):
            raise ValueError(
                f"{where} contains NaN or infinite values; remove or impute them before training."
            )
        if counts:
            _check_counts(values, likelihood, where)
            n_empty += int(np.sum(np.asarray(block.sum(axis=1)).ravel() == 0))
        elif likelihood == "bernoulli" and values.size and (values.min() < 0 or values.max() > 1):
            raise ValueError(
                f"{where} has values outside [0, 1], which gene_likelihood='bernoulli' needs; "
                "rescale (e.g. pixels / 255) or use gene_likelihood='normal'."
            )
    if n_empty:
        raise ValueError(
            f"{where} has {n_empty} cells with zero total counts, which have no library size; "
            "remove them first, e.g. `sc.pp.filter_cells(adata, min_counts=1)`."
        )


def _check_counts(values: np.ndarray, likelihood: str, where: str) -> None:
    if values.size and values.min() < 0:
        raise ValueError(
            f"{where} has negative values, but gene_likelihood={likelihood!r} needs raw counts. "
            "Point `layer` at the raw counts, or use gene_likelihood='normal' for "
            "log-normalised data."
        )
    if values.size and not np.all(np.equal(np.mod(values, 1), 0)):
        raise ValueError(
            f"{where} has non-integer values, but gene_likelihood={likelihood!r} needs raw "
            "counts. Point `layer` at the raw counts (e.g. setup_anndata(adata, layer='counts')), "
            "or use gene_likelihood='normal' for log-normalised data."
        )
