"""Minibatch loading that is fast and identical for dense, sparse and backed (on-disk) data.

scvi-tools' :class:`~scvi.dataloaders.AnnDataLoader` already fetches a whole minibatch with one
``__getitem__`` call and densifies only that minibatch. This module adds one thing: the cell
indices of every minibatch are sorted. Which cells form a minibatch stays random (the same
permutation scheme as :class:`torch.utils.data.RandomSampler`); only their order inside it
changes (to their row order in the AnnData), which no part of the loss depends on (batch norm
and the coupling use minibatch statistics, the loss is a mean over cells). Sorting makes

- reading from a backed ``.h5ad`` possible at all (h5py needs increasing indices; scvi-tools
  sorts them there but not in memory, so a backed and an in-memory copy of the same data gave
  different minibatches), and faster (contiguous reads);
- row slicing of an in-memory CSR matrix cache-friendly;
- training from a dense array, a CSR matrix and a backed file give the same model for one seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from lightning.pytorch.strategies import DDPStrategy
from scvi import settings
from scvi.dataloaders import DataSplitter
from scvi.dataloaders._samplers import BatchDistributedSampler
from torch.utils.data import DataLoader, Sampler


def is_distributed(strategy) -> bool:
    """Whether a Lightning ``strategy`` (name or object) runs data-parallel processes (DDP)."""
    if isinstance(strategy, str):
        return "ddp" in strategy
    return isinstance(strategy, DDPStrategy)


class SortedBatchSampler(Sampler):
    """Yield minibatches of dataset positions, each sorted, optionally in random order.

    Parameters
    ----------
    n_obs
        Number of items in the dataset.
    batch_size
        Items per minibatch.
    shuffle
        Draw a new random permutation every epoch (from torch's global generator, which
        ``scvi.settings.seed`` seeds).
    drop_last
        Drop the last, incomplete minibatch.
    sort_key
        Sort each minibatch's positions by ``sort_key[position]`` (e.g. the cells' row numbers
        in the AnnData when the dataset is a subset) instead of by position.
    """

    def __init__(
        self,
        n_obs: int,
        batch_size: int,
        shuffle: bool,
        drop_last: bool = False,
        sort_key: np.ndarray | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.n_obs, self.batch_size = n_obs, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.sort_key = sort_key

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n_obs)
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        generator = torch.Generator().manual_seed(seed)
        return torch.randperm(self.n_obs, generator=generator).numpy()

    def __iter__(self):
        order = self._order()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield _sorted(order[start : start + self.batch_size], self.sort_key)

    def __len__(self) -> int:
        if self.drop_last:
            return self.n_obs // self.batch_size
        return math.ceil(self.n_obs / self.batch_size)


def _sorted(positions: np.ndarray, key: np.ndarray | None) -> np.ndarray:
    if key is None:
        return np.sort(positions)
    return positions[np.argsort(key[positions], kind="stable")]


class SortedBatchDistributedSampler(BatchDistributedSampler):
    """scvi-tools' per-replica minibatch sampler for DDP, with each minibatch sorted.

    ``sort_key`` as in :class:`SortedBatchSampler`; other arguments those of
    :class:`~scvi.dataloaders.BatchDistributedSampler`.
    """

    def __init__(self, dataset, sort_key: np.ndarray | None = None, **kwargs):
        super().__init__(dataset, **kwargs)
        self.sort_key = sort_key

    def __iter__(self):
        for batch in super().__iter__():
            yield _sorted(np.asarray(batch), self.sort_key)


class CplMixDataLoader(DataLoader):
    """Drop-in for :class:`~scvi.dataloaders.AnnDataLoader` with sorted minibatch indices.

    Takes the arguments of :class:`~scvi.dataloaders.AnnDataLoader` (``adata_manager``,
    ``indices``, ``batch_size``, ``shuffle``, ``drop_last``, ``data_and_attributes``,
    ``distributed_sampler``, ``load_sparse_tensor``, ``drop_dataset_tail`` and DataLoader
    keywords such as ``num_workers`` or ``pin_memory``). Each minibatch is one
    ``__getitem__`` call on scvi-tools' :class:`~scvi.data.AnnTorchDataset`, which densifies
    only those rows of a sparse or backed matrix.
    """

    def __init__(
        self,
        adata_manager,
        indices=None,
        batch_size: int = 128,
        shuffle: bool = False,
        sampler: Sampler | None = None,
        drop_last: bool = False,
        drop_dataset_tail: bool = False,
        data_and_attributes=None,
        iter_ndarray: bool = False,
        distributed_sampler: bool = False,
        load_sparse_tensor: bool = False,
        **kwargs,
    ):
        if sampler is not None or iter_ndarray:  # not ours to handle: scvi-tools' loader
            raise ValueError("CplMixDataLoader does not take `sampler` or `iter_ndarray`.")
        if indices is None:
            indices = np.arange(adata_manager.adata.shape[0])
        indices = np.asarray(indices)
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        self.indices = indices
        dataset = adata_manager.create_torch_dataset(
            indices=indices,
            data_and_attributes=data_and_attributes,
            load_sparse_tensor=load_sparse_tensor,
        )
        if distributed_sampler:
            sampler = SortedBatchDistributedSampler(
                dataset,
                batch_size=batch_size,
                drop_last=drop_last,
                drop_dataset_tail=drop_dataset_tail,
                shuffle=shuffle,
                sort_key=indices,
            )
        else:
            sampler = SortedBatchSampler(len(indices), batch_size, shuffle, drop_last, indices)
        kwargs.setdefault("num_workers", settings.dl_num_workers)
        kwargs.setdefault("persistent_workers", settings.dl_persistent_workers)
        # batch_size=None: the sampler yields whole minibatches, fetched in one call
        super().__init__(dataset, sampler=sampler, batch_size=None, **kwargs)


class CplMixDataSplitter(DataSplitter):
    """scvi-tools' :class:`~scvi.dataloaders.DataSplitter` that loads with sorted minibatches."""

    data_loader_cls = CplMixDataLoader


__all__ = [
    "CplMixDataLoader",
    "CplMixDataSplitter",
    "SortedBatchDistributedSampler",
    "SortedBatchSampler",
    "is_distributed",
]
