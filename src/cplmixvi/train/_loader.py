"""Minibatch loading that gives the same minibatches from dense, sparse and backed data.

scvi-tools' :class:`~scvi.dataloaders.AnnDataLoader` fetches a whole minibatch with one
``__getitem__`` call and densifies only that minibatch. For a backed (on-disk) AnnData it sorts
the minibatch's rows (h5py needs increasing indices) and returns them in that sorted order,
while in memory it returns them in the sampler's random order: the same seed then gave a
different model from a backed file than from the same data in memory.

:class:`CplMixDataLoader` reads the minibatch's rows of a backed file in increasing order (what
h5py needs, and contiguous reads of disk chunks) and hands them back in the sampler's order;
rows in memory are read directly in the sampler's order, which gives the same minibatch.
With scvi-tools' own samplers (``BatchSampler(RandomSampler)``, or its per-replica sampler
under DDP) the in-memory minibatches, and so the trained models, are exactly those of
scvi-tools' loader, and a backed file gives the same ones.
"""

from __future__ import annotations

import numpy as np
import torch
from lightning.pytorch.strategies import DDPStrategy
from scvi import settings
from scvi.dataloaders import BatchDistributedSampler, DataSplitter
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler


def is_distributed(strategy) -> bool:
    """Whether a Lightning ``strategy`` (name or object) runs data-parallel processes (DDP)."""
    if isinstance(strategy, str):
        return "ddp" in strategy
    return isinstance(strategy, DDPStrategy)


class SortedReadDataset(Dataset):
    """The rows ``indices`` of an :class:`~scvi.data.AnnTorchDataset`, read in sorted order.

    ``dataset[positions]`` reads rows ``indices[positions]`` with one call and returns them in
    the order of ``positions``; for a backed AnnData (or any dataset not known to be in memory)
    the call reads them in increasing row order.

    Parameters
    ----------
    dataset
        scvi-tools' dataset over all rows of the registered AnnData.
    indices
        The AnnData rows this dataset exposes (e.g. the training cells).
    """

    def __init__(self, dataset: Dataset, indices: np.ndarray):
        self.dataset, self.indices = dataset, np.asarray(indices)
        adata = getattr(getattr(dataset, "adata_manager", None), "adata", None)
        # rows of an in-memory AnnData are read directly in the requested order (the same
        # minibatch as reading them sorted and reordering, without the copy)
        self.sorted_reads = getattr(adata, "isbacked", True)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, positions) -> dict:
        rows = self.indices[np.atleast_1d(np.asarray(positions))]
        if not self.sorted_reads:
            return self.dataset[rows]
        order = np.argsort(rows, kind="stable")
        data = self.dataset[rows[order]]
        if np.all(order[:-1] < order[1:]):  # already in increasing order
            return data
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return {key: _take(value, inverse) for key, value in data.items()}


def _take(value, rows: np.ndarray):
    if isinstance(value, torch.Tensor) and value.layout != torch.strided:
        raise ValueError(
            "CplMixDataLoader does not reorder sparse tensors; do not pass load_sparse_tensor."
        )
    return value[rows]


class CplMixDataLoader(DataLoader):
    """Drop-in for :class:`~scvi.dataloaders.AnnDataLoader` that reads rows in sorted order.

    Takes the arguments of :class:`~scvi.dataloaders.AnnDataLoader` (``adata_manager``,
    ``indices``, ``batch_size``, ``shuffle``, ``drop_last``, ``data_and_attributes``,
    ``distributed_sampler``, ``drop_dataset_tail`` and DataLoader keywords such as
    ``num_workers`` or ``pin_memory``) and uses the same samplers, so a seed draws the same
    minibatches. Each minibatch is one ``__getitem__`` call on scvi-tools'
    :class:`~scvi.data.AnnTorchDataset`, which densifies only those rows of a sparse or backed
    matrix.
    """

    def __init__(
        self,
        adata_manager,
        indices=None,
        batch_size: int = 128,
        shuffle: bool = False,
        drop_last: bool = False,
        drop_dataset_tail: bool = False,
        data_and_attributes=None,
        distributed_sampler: bool = False,
        load_sparse_tensor: bool = False,
        **kwargs,
    ):
        if load_sparse_tensor or kwargs.pop("iter_ndarray", False) or "sampler" in kwargs:
            raise ValueError(
                "CplMixDataLoader does not take `load_sparse_tensor`, `iter_ndarray` or "
                "`sampler`; use scvi.dataloaders.AnnDataLoader for those."
            )
        if indices is None:
            indices = np.arange(adata_manager.adata.shape[0])
        indices = np.asarray(indices)
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        self.indices = indices
        full = adata_manager.create_torch_dataset(data_and_attributes=data_and_attributes)
        dataset = SortedReadDataset(full, indices)
        if distributed_sampler:
            sampler = BatchDistributedSampler(
                dataset,
                batch_size=batch_size,
                drop_last=drop_last,
                drop_dataset_tail=drop_dataset_tail,
                shuffle=shuffle,
            )
        else:
            order = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
            sampler = BatchSampler(order, batch_size=batch_size, drop_last=drop_last)
        kwargs.setdefault("num_workers", settings.dl_num_workers)
        kwargs.setdefault("persistent_workers", settings.dl_persistent_workers)
        # batch_size=None: the sampler yields whole minibatches, fetched in one call
        super().__init__(dataset, sampler=sampler, batch_size=None, **kwargs)


class CplMixDataSplitter(DataSplitter):
    """scvi-tools' :class:`~scvi.dataloaders.DataSplitter` with :class:`CplMixDataLoader`."""

    data_loader_cls = CplMixDataLoader


__all__ = ["CplMixDataLoader", "CplMixDataSplitter", "SortedReadDataset", "is_distributed"]
