"""The module's type categories: which are in use, the start of K types, and their width."""

from __future__ import annotations

import torch
from torch import nn


class TypeCategoriesMixin:
    """Category bookkeeping of :class:`~cplmixvi.module.CplMixVAE` (mixed in before it).

    The module keeps ``n_types`` categories in every weight that reads or writes the type and a
    boolean ``type_mask`` of those in use. Pruning removes categories through the mask (ids do
    not change); the consensus start merges a wider pretraining code into ``K`` types and the
    surplus is dropped from the weights once the fit has ended.
    """

    @property
    def is_pruned(self) -> bool:
        """Whether some categories have been removed."""
        return self._pruned

    def surviving(self, values: torch.Tensor) -> torch.Tensor:
        """The last dimension of ``values`` restricted to the categories still in use."""
        return values[..., self.type_mask] if self.is_pruned else values

    @torch.no_grad()
    def remove_types(self, types) -> None:
        """Remove categories (original ids) from the model; at least one must remain.

        A removed category gets ``q(c|x) = 0`` exactly: the softmax, the Gumbel-softmax sample,
        the entropy, the coupling distance and the state posterior and prior only see the
        surviving categories; ids of the survivors do not change.
        """
        ids = torch.as_tensor(types, dtype=torch.long, device=self.type_mask.device).reshape(-1)
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.n_types):
            raise ValueError(f"Category ids must be in [0, {self.n_types - 1}], got {types}.")
        mask = self.type_mask.clone()
        mask[ids] = False
        if not mask.any():
            raise ValueError("Cannot remove every category; at least one must remain.")
        self.type_mask.copy_(mask)
        self._pruned = not bool(mask.all())

    def _type_axes(self) -> list[tuple[nn.Parameter, int, int]]:
        """``(parameter, dim, offset)`` of every weight indexed by the type.

        Categories sit at ``offset:`` of ``dim``: the type head's outputs, the last inputs of the
        state head and of the decoder's first layer, and the prior's rows.
        """
        n_hidden = self.state_head.weight.shape[1] - self.n_types
        return [
            (self.type_head.weight, 2, 0),
            (self.type_head.bias, 2, 0),
            (self.state_head.weight, 1, n_hidden),
            (self.decoder.linears[0].weight, 1, self.n_state),
            (self.prior_mean, 1, 0),
            (self.prior_logvar, 1, 0),
        ]

    def _set_n_types(self, n_types: int) -> None:
        self.n_types = n_types
        self.type_mask = torch.ones(n_types, dtype=torch.bool, device=self.type_mask.device)
        self._pruned = False

    @torch.no_grad()
    def start_types(
        self, coef: torch.Tensor, intercept: torch.Tensor, mean_code: torch.Tensor | None = None
    ) -> None:
        """Start ``K`` types, each a linear map of the code of the module's ``W`` categories.

        Each arm's type logits become ``z coef + intercept`` of its clr code ``z`` (``coef``
        ``(A, W, K)``, ``intercept`` ``(A, K)``) in categories ``0 .. K-1``; categories ``K ..
        W-1`` are removed (:meth:`remove_types`; :meth:`drop_removed_types` drops them from
        the weights once training ends). With ``mean_code`` ``(A, K, W)``, the mean code
        ``q(c|x)`` of each type's cells, every layer that reads the type (state head, decoder,
        prior; linear in the code) gets as type ``k``'s weights those the code
        ``mean_code[:, k]`` met: a type's one-hot then acts as its cells' codes did. Without it
        ``K`` must equal ``W`` and those layers stay.
        """
        n_types = coef.shape[-1]
        if not 1 <= n_types <= self.n_types or (mean_code is None and n_types != self.n_types):
            raise ValueError(
                f"coef maps to {n_types} types and the module has {self.n_types}; give "
                "mean_code to start fewer types than the module has."
            )
        head = self.type_head
        w = head.weight - head.weight.mean(-1, keepdim=True)
        b = head.bias - head.bias.mean(-1, keepdim=True)
        coef = coef.to(w)
        for param, new in ((head.weight, torch.bmm(w, coef)), (head.bias, torch.bmm(b, coef))):
            param.zero_()[..., :n_types] = new
        head.bias[..., :n_types] += intercept.to(b)[:, None, :]
        for param, _, offset in self._type_axes()[2:] if mean_code is not None else []:
            rows = param[:, offset:]  # every layer reading the type has it on dim 1
            new = torch.bmm(mean_code.to(param), rows)
            rows.zero_()[:, :n_types] = new
        if n_types < self.n_types:
            self.remove_types(list(range(n_types, self.n_types)))

    @torch.no_grad()
    def drop_removed_types(self) -> None:
        """Drop removed categories from the weights; the others get the ids ``0, 1, ...``.

        Not during a fit: the parameters change shape (they stay the same objects).
        """
        keep = self.type_mask.nonzero().flatten()
        for param, dim, offset in self._type_axes():
            ids = torch.cat([torch.arange(offset, device=keep.device), offset + keep])
            param.data = param.index_select(dim, ids)
        self._set_n_types(len(keep))

    @torch.no_grad()
    def _adopt_n_types(self, n_types: int) -> None:
        """Give the type-indexed weights room for ``n_types`` categories (values follow)."""
        for param, dim, offset in self._type_axes():
            shape = list(param.shape)
            shape[dim] = offset + n_types
            param.data = param.new_empty(shape)
        self._set_n_types(n_types)
