"""Input transforms of count profiles."""

from __future__ import annotations

import torch


def log_normalise(x: torch.Tensor, target_sum: float = 1e4) -> torch.Tensor:
    """``log1p`` of counts scaled to ``target_sum`` per cell (scanpy's ``normalize_total``).

    Parameters
    ----------
    x
        Counts, cells along the second-to-last dimension and genes along the last.
    target_sum
        Total count each profile is scaled to; a cell without counts stays at zero.

    Returns
    -------
    Tensor of the shape of ``x``.
    """
    return torch.log1p(target_sum * x / x.sum(-1, keepdim=True).clamp_min(1.0))
