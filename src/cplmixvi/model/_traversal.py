"""Latent traversal: decode expression along one state dimension of ``p(s|c)`` (Sec. 4.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm
from scvi import REGISTRY_KEYS

TypeSpec = int | str | Sequence[int | str] | None


class TraversalMixin:
    """Adds :meth:`traverse` to :class:`~cplmixvi.CplMixVI`."""

    @torch.inference_mode()
    def traverse(
        self,
        cell_type: TypeSpec = None,
        state_dim: int | Sequence[int] | None = None,
        n_steps: int = 11,
        genes: Sequence[str] | None = None,
        quantiles: tuple[float, float] = (0.05, 0.95),
        arm: int | Sequence[int] | None = 0,
        library_size: float = 1e4,
        batch: str | None = None,
        grid: Literal["prior", "cells"] = "prior",
        min_cells: int = 10,
    ) -> pd.DataFrame:
        """Decode expression along a grid of one state dimension of ``p(s|c)``, per type.

        For each type ``c`` and state dimension ``d``, the state moves through the quantiles of
        the prior ``p(s_d|c)`` (``n_steps`` equally spaced levels between ``quantiles``) while
        the other dimensions stay at their type-wise mean (the mean of ``p(s|c)``); each point
        ``(s, c)`` is decoded by the arm's decoder. Marker genes of ``c`` should stay flat,
        state-regulated genes should change (paper Sec. 4.2, Fig. 4). Deterministic: no sampling.

        With ``grid="cells"`` the quantiles and the mean are those of the state coordinates
        (means of ``q(s|x, c)``) of the training cells the arm assigns to ``c``, which keeps the
        grid where the type's cells are when the learned prior is wider than they are.

        Parameters
        ----------
        cell_type
            Type(s) to traverse, as indices or as the labels written by
            :meth:`write_results` (``"0"`` ... ``"K-1"``); ``None`` for all types (with
            ``grid="cells"``: all types with at least ``min_cells`` cells in every chosen arm).
        state_dim
            State dimension(s) to move; ``None`` for all.
        n_steps
            Grid points per dimension (>= 2).
        genes
            Genes (``var_names``) to return, in this order; ``None`` for all genes.
        quantiles
            Lowest and highest quantile level of ``p(s_d|c)`` covered by the grid.
        arm
            Arm(s) whose prior and decoder are used (each arm has its own state space);
            ``None`` for all arms.
        library_size
            Count likelihoods: expression is the decoded mean at this library size
            (``library_size * softmax``, i.e. counts per 10 000 by default).
        batch
            Batch category to decode in when the model has a ``batch_key``; ``None`` averages
            the decoded expression over all batches.
        grid
            ``"prior"``: quantiles and mean of ``p(s|c)``; ``"cells"``: empirical quantiles and
            mean of the states of the cells assigned to the type (by each arm's argmax).
        min_cells
            ``grid="cells"`` needs at least this many cells per traversed type and arm.

        Returns
        -------
        Tidy DataFrame, one row per (type, arm, state_dim, step, gene), in that order, with columns
        ``type`` (label), ``arm``, ``state_dim``, ``step``, ``quantile`` (level of
        ``p(s_d|c)``), ``state`` (value of ``s_d``), ``gene`` and ``expression``
        (normalised expression for ``nb``/``zinb``, decoded mean for ``normal``, probability for
        ``bernoulli``). ``attrs["expression"]`` says which.

        Examples
        --------
        >>> trav = model.traverse(cell_type="3", genes=["Fos", "Pvalb"], n_steps=9)
        >>> trav.pivot_table(index="gene", columns="state", values="expression")
        """
        self._check_if_trained(warn=False)
        module = self.module
        types = _resolve_types(cell_type, module.n_types)
        dims = _resolve_indices(state_dim, module.n_state, "state_dim")
        arms = _resolve_indices(arm, module.n_arms, "arm")
        gene_idx, gene_names = _resolve_genes(genes, self.adata.var_names)
        levels = _quantile_levels(quantiles, n_steps)
        if grid == "prior":
            center, moved = _prior_grid(module, types, dims, levels)
        elif grid == "cells":
            types, center, moved = self._cells_grid(
                types, dims, arms, levels, min_cells, skip_small=cell_type is None
            )
        else:
            raise ValueError(f"grid must be 'prior' or 'cells', got {grid!r}.")
        s, c = _grid(center, moved, types, dims, module.n_types)
        expr = self._decode_grid(s, c, library_size, batch)[:, :, gene_idx]  # (A, B, G)
        return _tidy(expr, moved, arms, types, dims, levels, gene_names, self._expr_kind())

    def _cells_grid(
        self,
        types: list[int],
        dims: list[int],
        arms: list[int],
        levels: np.ndarray,
        min_cells: int,
        skip_small: bool,
    ) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Types kept, mean ``(A, T, D)`` and quantiles ``(A, T, nd, S)`` of cells' states."""
        log_probs, states = self._encode(None, None, None)  # (A, n, K), (A, n, D)
        assigned = log_probs.argmax(-1)
        counts = np.stack([np.bincount(assigned[a], minlength=self.module.n_types) for a in arms])
        small = [k for k in types if counts[:, k].min() < min_cells]
        if small and not skip_small:
            raise ValueError(
                f"Type(s) {small} have fewer than min_cells={min_cells} cells in arm(s) {arms} "
                f"(cells per type: {dict(enumerate(counts.min(axis=0).tolist()))}); use "
                "grid='prior', a smaller min_cells or other types."
            )
        types = [k for k in types if k not in small]
        if not types:
            raise ValueError(f"No type has min_cells={min_cells} cells; use grid='prior'.")
        center = np.zeros((states.shape[0], len(types), states.shape[2]))
        moved = np.zeros((states.shape[0], len(types), len(dims), len(levels)))
        for a in arms:
            for i, k in enumerate(types):
                cells = states[a, assigned[a] == k]
                center[a, i] = cells.mean(axis=0)
                moved[a, i] = np.quantile(cells[:, dims], levels, axis=0).T
        return types, center, moved

    def _decode_grid(
        self, s: torch.Tensor, c: torch.Tensor, library_size: float, batch: str | None
    ) -> np.ndarray:
        """Decoded expression ``(A, B, n_genes)`` of every arm at the grid points ``(s, c)``."""
        module = self.module
        was_training = module.training
        module.eval()
        dtype = next(module.parameters()).dtype
        s, c = s.to(dtype), c.to(dtype)
        library = torch.full((*s.shape[:2], 1), float(library_size), dtype=dtype)
        total = 0.0
        codes = self._batch_codes(batch)
        for code in codes:
            batch_index = None if code is None else torch.full((s.shape[1], 1), code)
            gen = module.generative(s=s, c=c, library=library, batch_index=batch_index)
            total = total + _expression(gen, module.gene_likelihood).cpu().double()
        module.train(was_training)
        return (total / len(codes)).numpy()

    def _batch_codes(self, batch: str | None) -> list[int | None]:
        n_batch = self.summary_stats.n_batch
        if n_batch <= 1:
            if batch is not None:
                raise ValueError("batch was given, but the model was set up without batch_key.")
            return [None]
        mapping = list(
            self.adata_manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY).categorical_mapping
        )
        if batch is None:
            return list(range(n_batch))
        if str(batch) not in [str(m) for m in mapping]:
            raise ValueError(f"batch {batch!r} is not a batch of the model; choose from {mapping}.")
        return [[str(m) for m in mapping].index(str(batch))]

    def _expr_kind(self) -> str:
        return {
            "nb": "normalized",
            "zinb": "normalized",
            "normal": "decoded mean",
            "bernoulli": "probability",
        }[self.module.gene_likelihood]


def _expression(gen: dict[str, torch.Tensor], likelihood: str) -> torch.Tensor:
    if likelihood in ("nb", "zinb"):
        return gen["px_mean"]
    if likelihood == "bernoulli":
        return torch.sigmoid(gen["px_out"])
    return gen["px_out"]


def _prior_grid(
    module, types: list[int], dims: list[int], levels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(A, T, D)`` and quantiles ``(A, T, nd, S)`` of ``p(s|c)``."""
    mean = module.prior_mean.detach().cpu().double().numpy()[:, types]  # (A, T, D)
    std = np.exp(0.5 * module.prior_logvar.detach().cpu().double().numpy()[:, types])
    z = norm.ppf(levels)
    moved = mean[:, :, dims, None] + z[None, None, None, :] * std[:, :, dims, None]
    return mean, moved


def _grid(
    center: np.ndarray, moved: np.ndarray, types: list[int], dims: list[int], n_types: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """States ``(A, B, D)`` and one-hot types ``(A, B, K)`` for B = types x dims x steps rows.

    Row ``(t, i, j)`` is ``center[:, t]`` with dimension ``dims[i]`` set to ``moved[:, t, i, j]``.
    """
    n_arms, n_t, n_state = center.shape
    n_steps = moved.shape[-1]
    s = np.repeat(center[:, :, None, None, :], len(dims), axis=2).repeat(n_steps, axis=3)
    for i, d in enumerate(dims):
        s[:, :, i, :, d] = moved[:, :, i, :]
    c = torch.zeros(n_arms, n_t, len(dims), n_steps, n_types, dtype=torch.float64)
    c[:, torch.arange(n_t), ..., torch.tensor(types)] = 1.0
    return torch.from_numpy(s).reshape(n_arms, -1, n_state), c.reshape(n_arms, -1, n_types)


def _tidy(
    expr: np.ndarray,
    moved: np.ndarray,
    arms: list[int],
    types: list[int],
    dims: list[int],
    levels: np.ndarray,
    gene_names: list[str],
    kind: str,
) -> pd.DataFrame:
    """Long table with rows ordered (type, arm, state_dim, step, gene)."""
    n_t, n_d, n_s, n_g, n_a = len(types), len(dims), len(levels), len(gene_names), len(arms)
    expr = expr[arms].reshape(n_a, n_t, n_d, n_s, n_g).transpose(1, 0, 2, 3, 4)
    moved = moved[arms].transpose(1, 0, 2, 3)  # (T, A, nd, S)
    t, a, d, j, g = np.indices((n_t, n_a, n_d, n_s, n_g)).reshape(5, -1)
    labels = [str(k) for k in types]
    table = pd.DataFrame(
        {
            "type": pd.Categorical.from_codes(t, categories=labels),
            "arm": np.asarray(arms)[a],
            "state_dim": np.asarray(dims)[d],
            "step": j,
            "quantile": levels[j],
            "state": moved[t, a, d, j],
            "gene": pd.Categorical.from_codes(g, categories=gene_names),
            "expression": expr.reshape(-1),
        }
    )
    table.attrs["expression"] = kind
    return table


def _quantile_levels(quantiles: tuple[float, float], n_steps: int) -> np.ndarray:
    low, high = quantiles
    if not 0 < low < high < 1:
        raise ValueError(f"quantiles must satisfy 0 < low < high < 1, got {quantiles}.")
    if n_steps < 2:
        raise ValueError(f"n_steps must be >= 2, got {n_steps}.")
    return np.linspace(low, high, n_steps)


def _resolve_types(cell_type: TypeSpec, n_types: int) -> list[int]:
    if cell_type is None:
        return list(range(n_types))
    items = [cell_type] if isinstance(cell_type, int | str | np.integer) else list(cell_type)
    types = []
    for item in items:
        index = int(item) if isinstance(item, int | np.integer) or str(item).isdigit() else None
        if index is None or not 0 <= index < n_types:
            raise ValueError(
                f"cell_type {item!r} is not a type of the model: give an index in "
                f"[0, {n_types - 1}] or its label as written by write_results ('0' ... "
                f"'{n_types - 1}')."
            )
        types.append(index)
    if len(set(types)) != len(types):
        raise ValueError(f"cell_type has duplicates: {items}.")
    return types


def _resolve_indices(value: int | Sequence[int] | None, size: int, name: str) -> list[int]:
    if value is None:
        return list(range(size))
    items = [value] if isinstance(value, int | np.integer) else list(value)
    bad = [v for v in items if not 0 <= int(v) < size]
    if bad or not items or len(set(items)) != len(items):
        raise ValueError(f"{name} must be distinct integers in [0, {size - 1}], got {value!r}.")
    return [int(v) for v in items]


def _resolve_genes(genes: Sequence[str] | None, var_names: pd.Index) -> tuple[np.ndarray, list]:
    if genes is None:
        return np.arange(len(var_names)), [str(g) for g in var_names]
    if isinstance(genes, str):
        genes = [genes]
    genes = list(genes)
    missing = [g for g in genes if g not in var_names]
    if missing:
        raise KeyError(
            f"{len(missing)} gene(s) are not in the model's var_names: {missing[:10]}; check the "
            "spelling (gene symbols are case-sensitive)."
        )
    if len(set(genes)) != len(genes):
        raise ValueError("genes has duplicates.")
    return var_names.get_indexer(genes), [str(g) for g in genes]
