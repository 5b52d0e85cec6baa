"""Early, explicit checks of the data a model is asked to train on."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
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
    check_numeric(matrix, where)
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


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")


def check_keys(adata: AnnData, layer: str | None, batch_key: str | None) -> None:
    """Check what ``setup_anndata`` registers: the layer exists and holds numbers, the batch
    column exists and every cell has a batch."""
    if layer is not None and layer not in adata.layers:
        raise KeyError(
            f"Layer {layer!r} is not in adata.layers (available: {list(adata.layers)}); "
            "pass layer=None to use adata.X."
        )
    where = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    check_numeric(adata.X if layer is None else adata.layers[layer], where)
    if batch_key is not None:
        if batch_key not in adata.obs:
            raise KeyError(f"batch_key {batch_key!r} is not a column of adata.obs.")
        check_batch(adata.obs, batch_key, "adata.obs")


def check_numeric(matrix, where: str) -> None:
    """Raise a ``TypeError`` when ``matrix`` holds strings or objects instead of numbers."""
    if matrix is None:  # no data at all: scvi-tools says so
        return
    dtype = np.dtype(getattr(matrix, "dtype", object))
    if dtype.kind not in "biuf":
        raise TypeError(
            f"{where} has dtype {dtype} ({'strings' if dtype.kind in 'USO' else dtype.kind}), "
            "but the model needs numbers. Convert it first, e.g. "
            f"`{where} = {where}.astype(np.float32)` when it holds numbers as text, or point "
            "`layer` at a numeric layer."
        )


def check_batch(obs: pd.DataFrame, batch_key: str, where: str) -> None:
    """Raise a ``ValueError`` naming the cells whose batch is missing (NaN or None)."""
    missing = obs[batch_key].isna().to_numpy()
    if missing.any():
        cells = obs.index[missing]
        shown = ", ".join(map(str, cells[:5])) + (", ..." if len(cells) > 5 else "")
        raise ValueError(
            f"{where}[{batch_key!r}] has {len(cells)} missing values (NaN or None) of "
            f"{len(obs)}, in cells {shown}; every cell needs a batch. Give them one, e.g. "
            f"`obs[{batch_key!r}] = obs[{batch_key!r}].astype(object).fillna('unknown')"
            ".astype('category')`, or drop them: "
            f"`adata = adata[adata.obs[{batch_key!r}].notna()].copy()`."
        )


def check_mudata_batch(mdata, batch_key: str | None, mod: str | None) -> None:
    """:func:`check_batch` on the MuData's batch column (``mdata.obs`` or a modality's)."""
    obs = mdata.obs if mod is None else mdata.mod[mod].obs
    if batch_key is not None and batch_key in obs:
        check_batch(obs, batch_key, "mdata.obs" if mod is None else f"mdata.mod[{mod!r}].obs")


def check_saved_genes(dir_path: str, adata: AnnData, prefix: str | None) -> None:
    path = os.path.join(dir_path, f"{prefix or ''}model.pt")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No saved model at {path}; save one with model.save(dir_path).")
    saved = torch.load(path, map_location="cpu", weights_only=False).get("var_names")
    if saved is None:
        return
    if isinstance(saved, dict):  # MuData: one gene list per modality
        for mod, genes in saved.items():
            _compare_genes(genes, adata.mod[mod].var_names, f"mdata.mod[{mod!r}]")
    else:
        _compare_genes(saved, adata.var_names, "adata")


def _compare_genes(saved, current: pd.Index, where: str) -> None:
    if np.array_equal(np.asarray(saved, dtype=str), current.to_numpy(str)):
        return
    missing = pd.Index(saved).difference(current)
    raise ValueError(
        f"The genes of {where} do not match the {len(saved)} genes the model was trained on "
        f"({len(missing)} missing, {len(current)} given, order may differ). Subset and order "
        "it first: `adata = adata[:, saved_genes].copy()`."
    )


def check_sizes(n_types: int, n_state: int, n_arms: int, n_cells: int) -> None:
    """Raise a ``ValueError`` for impossible model sizes."""
    if n_arms < 1:
        raise ValueError(f"n_arms must be >= 1 (1 is the uncoupled baseline), got {n_arms}.")
    if n_types < 2:
        raise ValueError(f"n_types must be >= 2, got {n_types}.")
    if n_types > n_cells:
        raise ValueError(
            f"n_types={n_types} is larger than the number of cells ({n_cells}); choose fewer types."
        )
    if n_state < 1:
        raise ValueError(f"n_state must be >= 1, got {n_state}.")


#: the module's options that ``CplMixVI(**model_kwargs)`` passes on
MODULE_OPTIONS = (
    "state_prior",
    "coupling_weight",
    "entropy_weight",
    "marginal_entropy_weight",
    "coupling_min_prob",
    "coupling_min_sigma",
)


def check_module_kwargs(model_kwargs: dict) -> None:
    """Known names and valid values for the module options given to the model."""
    unknown = sorted(set(model_kwargs) - set(MODULE_OPTIONS))
    if unknown:
        raise TypeError(
            f"CplMixVI got unknown arguments {unknown}; besides its named arguments it passes "
            f"{list(MODULE_OPTIONS)} to the module (see CplMixVAE)."
        )
    check_choice("state_prior", model_kwargs.get("state_prior", "type"), ("type", "normal"))
    if model_kwargs.get("marginal_entropy_weight", 0.0) < 0:
        raise ValueError(
            f"marginal_entropy_weight must be >= 0 (a negative weight rewards putting every "
            f"cell into one type), got {model_kwargs['marginal_entropy_weight']}; use 0 to turn "
            "it off."
        )
