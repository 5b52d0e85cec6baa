"""What a trained CplMixVI model returns: type probabilities, labels, states, AnnData keys."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scvi import REGISTRY_KEYS

from cplmixvi.metrics import assignments, category_agreement, fuse
from cplmixvi.model._validation import check_input_values


class ResultsMixin:
    """The accessors of :class:`~cplmixvi.CplMixVI` (mixed in before ``BaseModelClass``)."""

    @torch.inference_mode()
    def _encode(
        self, adata: AnnData | None, indices: Sequence[int] | None, batch_size: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-arm log q(c|x) ``(A, n, K)`` and state means ``(A, n, D)`` for every cell."""
        self._check_if_trained(warn=False)
        new_data = adata is not None and adata is not self.adata
        adata = self._validate_anndata(adata)
        if new_data:
            matrix = self.get_anndata_manager(adata).get_from_registry(REGISTRY_KEYS.X_KEY)
            check_input_values(matrix, self.module.gene_likelihood, "the given data")
        return self._infer(adata, indices, batch_size)

    @torch.inference_mode()
    def _infer(
        self, adata: AnnData, indices: Sequence[int] | None, batch_size: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_encode` without its checks: also usable while the model is training."""
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        log_probs, states = [], []
        was_training = self.module.training
        self.module.eval()  # no augmentation, argmax types, batch-norm running statistics
        for tensors in loader:
            out = self.module.inference(
                **self.module._get_inference_input(tensors), deterministic=True
            )
            log_probs.append(out["log_probs"].cpu())
            states.append(out["qs_mean"].cpu())
        self.module.train(was_training)
        return torch.cat(log_probs, 1).numpy(), torch.cat(states, 1).numpy()

    def get_type_probabilities(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        per_arm: bool = False,
    ) -> np.ndarray:
        """Posterior type probabilities ``q(c|x)``.

        Returns
        -------
        ``(n_cells, n_types)`` fused across arms (normalised geometric mean of the arms'
        posteriors, whose argmax is that of their product), or ``(n_arms, n_cells, n_types)``
        per arm when ``per_arm`` is ``True``.
        """
        log_probs, _ = self._encode(adata, indices, batch_size)
        if per_arm:
            return np.exp(log_probs)
        return fuse(log_probs)

    def get_type_assignments(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """Fused type label of each cell with its confidence.

        Returns
        -------
        DataFrame indexed by cell with columns ``type`` (argmax of the fused posterior),
        ``confidence`` (the arms' mean posterior probability of that type) and
        ``arm_agreement`` (fraction of arms whose own argmax is that type).
        """
        log_probs, _ = self._encode(adata, indices, batch_size)
        return assignments(log_probs, fuse(log_probs), self._obs_names(adata, indices))

    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        arm: int = 0,
    ) -> np.ndarray:
        """Continuous state coordinates: the mean of ``q(s|x, c)`` at the inferred type.

        Returns
        -------
        ``(n_cells, n_state)`` for the given arm (each arm learns its own state space).
        """
        if not 0 <= arm < self.module.n_arms:
            raise ValueError(f"arm must be in [0, {self.module.n_arms - 1}], got {arm}.")
        _, states = self._encode(adata, indices, batch_size)
        return states[arm]

    def write_results(
        self, adata: AnnData | None = None, key_prefix: str = "cplmixvi", batch_size: int = 1024
    ) -> None:
        """Write types, confidences, probabilities and states into ``adata`` (in place).

        Keys (with the default prefix ``cplmixvi``):

        - ``obs["cplmixvi_type"]``: categorical fused type label (``"0"`` ... ``"K-1"``);
        - ``obs["cplmixvi_confidence"]``: arms' mean posterior probability of that type;
        - ``obs["cplmixvi_arm_agreement"]``: fraction of arms whose argmax is that type;
        - ``obsm["cplmixvi_type_probs"]``: ``(n_cells, K)`` fused type probabilities;
        - ``obsm["X_cplmixvi_state"]``: ``(n_cells, n_state)`` state of arm 0;
        - ``obsm["X_cplmixvi_state_arms"]``: ``(n_cells, A * n_state)`` states of all arms;
        - ``uns["cplmixvi"]``: model settings and the overall arm agreement;
        - ``uns["cplmixvi"]["type_agreement"]``: DataFrame, one row per surviving type (index:
          type id as a string) with ``agreement`` between arms, ``min_pair_agreement`` and
          ``n_cells``, ``mean_prob`` (:func:`cplmixvi.tl.category_agreement`; two or more arms);
        - ``uns["cplmixvi"]["pruning_history"]``: ``model.pruning_history_`` once pruned.

        After :meth:`prune`, removed types never appear as labels and their column of the type
        probabilities is exactly 0 (columns keep the original ids).
        """
        adata = self.adata if adata is None else adata
        log_probs, states = self._encode(adata, None, batch_size)
        fused = fuse(log_probs)
        table = assignments(log_probs, fused, adata.obs_names)
        n_types = self.module.n_types
        labels = table["type"].astype(str)
        adata.obs[f"{key_prefix}_type"] = pd.Categorical(
            labels, categories=[str(k) for k in range(n_types) if str(k) in set(labels)]
        )
        adata.obs[f"{key_prefix}_confidence"] = table["confidence"].to_numpy()
        adata.obs[f"{key_prefix}_arm_agreement"] = table["arm_agreement"].to_numpy()
        adata.obsm[f"{key_prefix}_type_probs"] = fused
        adata.obsm[f"X_{key_prefix}_state"] = states[0]
        adata.obsm[f"X_{key_prefix}_state_arms"] = np.concatenate(states, axis=1)
        adata.uns[key_prefix] = {
            "params": {k: _plain(v) for k, v in _init_params(self.init_params_).items()},
            "arm_agreement": float(table["arm_agreement"].mean()),
            **self._consensus_uns(log_probs),
        }

    def _consensus_uns(self, log_probs: np.ndarray) -> dict:
        """Per-type agreement and the pruning history, for ``uns``."""
        out = {}
        if self.module.n_arms > 1:
            table = category_agreement(np.exp(log_probs), types=self.active_types)
            out["type_agreement"] = table.set_axis(table.index.astype(str), axis=0)
        if self.pruning_history_ is not None:
            out["pruning_history"] = self.pruning_history_.astype({"removed": str})
        return out

    def _obs_names(self, adata: AnnData | None, indices: Sequence[int] | None) -> pd.Index:
        names = (self.adata if adata is None else adata).obs_names
        return names if indices is None else names[np.asarray(indices)]


def _init_params(init_params: dict) -> dict:
    """The model's arguments, named and passed on to the module alike."""
    passed = {k: v for group in init_params["kwargs"].values() for k, v in group.items()}
    return init_params["non_kwargs"] | passed


def _plain(value):
    """A value that AnnData can write to ``.uns``."""
    return value if isinstance(value, int | float | str | bool) else str(value)
