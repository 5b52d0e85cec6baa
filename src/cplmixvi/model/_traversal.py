"""Latent traversal: decode expression along one state dimension of ``p(s|c)`` (Sec. 4.2).

Besides the state dimensions themselves, a type can be traversed along its principal axis
(``state_dim="pc1"``): the first principal axis of the state coordinates of its cells. A type's
state need not lie along one dimension; the learned variation may be rotated across them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm
from scvi import REGISTRY_KEYS

TypeSpec = int | str | Sequence[int | str] | None
StateDimSpec = int | Sequence[int] | Literal["pc1"] | None
PRINCIPAL = "pc1"


class TraversalMixin:
    """Adds :meth:`traverse` to :class:`~cplmixvi.CplMixVI`."""

    @torch.inference_mode()
    def traverse(
        self,
        cell_type: TypeSpec = None,
        state_dim: StateDimSpec = None,
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

        With ``state_dim="pc1"`` the state moves along the type's principal axis instead of one
        dimension: the first principal axis ``v`` (unit vector) of the state coordinates of the
        type's cells, per arm, oriented so that its largest-magnitude component is positive
        (reproducible). The grid points are ``m + (t - m·v) v`` with ``m`` the type's mean
        (cells or prior, as chosen by ``grid``) and ``t`` the quantiles of the cells' projections
        ``s·v`` (``grid="cells"``) or of ``p(s·v|c)`` (``grid="prior"``). Use it when the state
        of a type is spread over several dimensions (``n_state > 1``): a single dimension then
        sees only part of it.

        Parameters
        ----------
        cell_type
            Type(s) to traverse, as indices or as the labels written by
            :meth:`write_results` (``"0"`` ... ``"K-1"``); ``None`` for all types (with
            ``grid="cells"`` or ``state_dim="pc1"``: all types with at least ``min_cells`` cells in
            every chosen arm).
        state_dim
            State dimension(s) to move; ``None`` for all; ``"pc1"`` for the type's principal
            axis (needs ``min_cells`` cells of the type in each chosen arm, for either grid).
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
            ``grid="cells"`` and ``state_dim="pc1"`` need at least this many cells per traversed
            type and arm.

        Returns
        -------
        Tidy DataFrame, one row per (type, arm, state_dim, step, gene), in that order, with columns
        ``type`` (label), ``arm``, ``state_dim`` (``"pc1"`` for the principal axis), ``step``,
        ``quantile`` (level of ``p(s_d|c)``), ``state`` (value of ``s_d``, or the projection
        ``s·v`` on the principal axis), ``gene`` and ``expression`` (normalised expression for
        ``nb``/``zinb``, decoded mean for ``normal``, probability for ``bernoulli``).
        ``attrs["expression"]`` says which. With ``state_dim="pc1"``,
        ``attrs["directions"]`` holds the axes, ``{type label: {arm: [v_0, ..., v_D-1]}}``;
        a cell's coordinate along the axis is its state (:meth:`get_latent_representation`
        of that arm) dotted with ``v``.

        Examples
        --------
        >>> trav = model.traverse(cell_type="3", genes=["Fos", "Pvalb"], n_steps=9)
        >>> trav.pivot_table(index="gene", columns="state", values="expression")
        >>> along = model.traverse(cell_type="3", state_dim="pc1", grid="cells")
        """
        self._check_if_trained(warn=False)
        module = self.module
        types = _resolve_types(cell_type, module.n_types)
        principal = isinstance(state_dim, str)
        if principal and state_dim != PRINCIPAL:
            raise ValueError(
                f"state_dim must be an index, a list of indices, None or 'pc1' (the type's "
                f"principal axis), got {state_dim!r}."
            )
        dims = (
            [PRINCIPAL] if principal else _resolve_indices(state_dim, module.n_state, "state_dim")
        )
        arms = _resolve_indices(arm, module.n_arms, "arm")
        gene_idx, gene_names = _resolve_genes(genes, self.adata.var_names)
        levels = _quantile_levels(quantiles, n_steps)
        if grid not in ("prior", "cells"):
            raise ValueError(f"grid must be 'prior' or 'cells', got {grid!r}.")
        cells = None
        if grid == "cells" or principal:
            types, cells = self._type_cells(
                types, arms, min_cells, skip_small=cell_type is None, principal=principal
            )
        axes = (
            _principal_axes(cells, module.n_arms, len(types), module.n_state)
            if principal
            else _unit_axes(module.n_arms, len(types), dims, module.n_state)
        )  # (A, T, nd, D)
        if grid == "prior":
            center, moved = _prior_grid(module, types, axes, levels)
        else:
            center, moved = _cells_grid(cells, axes, levels)
        s, c = _grid(center, axes, moved, types, module.n_types)
        expr = self._decode_grid(s, c, library_size, batch)[:, :, gene_idx]  # (A, B, G)
        table = _tidy(expr, moved, arms, types, dims, levels, gene_names, self._expr_kind())
        if principal:
            table.attrs["directions"] = {
                str(k): {a: axes[a, i, 0].tolist() for a in arms} for i, k in enumerate(types)
            }
        return table

    def _type_cells(
        self, types: list[int], arms: list[int], min_cells: int, skip_small: bool, principal: bool
    ) -> tuple[list[int], dict[tuple[int, int], np.ndarray]]:
        """Types kept and the states ``(n_k, D)`` of each (arm, type index)'s assigned cells."""
        log_probs, states = self._encode(None, None, None)  # (A, n, K), (A, n, D)
        assigned = log_probs.argmax(-1)
        counts = np.stack([np.bincount(assigned[a], minlength=self.module.n_types) for a in arms])
        small = [k for k in types if counts[:, k].min() < min_cells]
        fix = "an integer state_dim, " if principal else "grid='prior', "
        if small and not skip_small:
            raise ValueError(
                f"Type(s) {small} have fewer than min_cells={min_cells} cells in arm(s) {arms} "
                f"(cells per type: {dict(enumerate(counts.min(axis=0).tolist()))}); use "
                f"{fix}a smaller min_cells or other types."
            )
        types = [k for k in types if k not in small]
        if not types:
            raise ValueError(f"No type has min_cells={min_cells} cells; use {fix.rstrip(', ')}.")
        cells = {(a, i): states[a, assigned[a] == k] for a in arms for i, k in enumerate(types)}
        return types, cells

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


def _unit_axes(n_arms: int, n_types: int, dims: list[int], n_state: int) -> np.ndarray:
    """Axes ``(A, T, nd, D)``: the unit vector of each traversed dimension."""
    axes = np.zeros((n_arms, n_types, len(dims), n_state))
    axes[:, :, np.arange(len(dims)), dims] = 1.0
    return axes


def _principal_axis(states: np.ndarray) -> np.ndarray:
    """First principal axis of state coordinates ``(n, D)`` as a unit vector ``(D,)``.

    Oriented so that its largest-magnitude component is positive (the convention of
    :func:`sklearn.utils.extmath.svd_flip`), so that the same cells give the same axis.
    """
    centered = np.asarray(states, dtype=np.float64) - np.mean(states, axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    axis = vt[0]
    return axis * np.sign(axis[np.argmax(np.abs(axis))])


def _principal_axes(
    cells: dict[tuple[int, int], np.ndarray], n_arms: int, n_types: int, n_state: int
) -> np.ndarray:
    """Axes ``(A, T, 1, D)``: each (arm, type)'s principal axis (zeros for arms not chosen)."""
    axes = np.zeros((n_arms, n_types, 1, n_state))
    for (a, i), states in cells.items():
        axes[a, i, 0] = _principal_axis(states)
    return axes


def _prior_grid(
    module, types: list[int], axes: np.ndarray, levels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(A, T, D)`` of ``p(s|c)`` and quantiles ``(A, T, nd, S)`` of ``p(s·v|c)``."""
    mean = module.prior_mean.detach().cpu().double().numpy()[:, types]  # (A, T, D)
    var = np.exp(module.prior_logvar.detach().cpu().double().numpy()[:, types])
    center = np.einsum("atd,atid->ati", mean, axes)  # (A, T, nd)
    std = np.sqrt(np.einsum("atd,atid->ati", var, axes**2))  # diagonal covariance
    moved = center[..., None] + norm.ppf(levels) * std[..., None]
    return mean, moved


def _cells_grid(
    cells: dict[tuple[int, int], np.ndarray], axes: np.ndarray, levels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(A, T, D)`` of the cells' states and quantiles ``(A, T, nd, S)`` of ``s·v``."""
    n_arms, n_types, n_dims, n_state = axes.shape
    center = np.zeros((n_arms, n_types, n_state))
    moved = np.zeros((n_arms, n_types, n_dims, len(levels)))
    for (a, i), states in cells.items():
        center[a, i] = states.mean(axis=0)
        moved[a, i] = np.quantile(states @ axes[a, i].T, levels, axis=0).T
    return center, moved


def _grid(
    center: np.ndarray, axes: np.ndarray, moved: np.ndarray, types: list[int], n_types: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """States ``(A, B, D)`` and one-hot types ``(A, B, K)`` for B = types x dims x steps rows.

    Row ``(t, i, j)`` is ``m + (moved[:, t, i, j] - m·v) v`` with ``m = center[:, t]`` and
    ``v = axes[:, t, i]``: for a unit axis, ``m`` with dimension ``i`` set to the grid value.
    """
    n_arms, n_t, n_state = center.shape
    n_dims, n_steps = moved.shape[2:]
    along = np.einsum("atd,atid->ati", center, axes)[..., None, None]  # m·v, (A, T, nd, 1, 1)
    rest = center[:, :, None, None, :] - along * axes[:, :, :, None, :]  # m without its v part
    s = rest + moved[..., None] * axes[:, :, :, None, :]  # exact for unit axes
    c = torch.zeros(n_arms, n_t, n_dims, n_steps, n_types, dtype=torch.float64)
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
