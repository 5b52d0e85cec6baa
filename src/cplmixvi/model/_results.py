"""Fusing the arms' type posteriors into one label, confidence and agreement per cell."""

from __future__ import annotations

import numpy as np
import pandas as pd


def fuse(log_probs: np.ndarray) -> np.ndarray:
    """Normalised geometric mean of the arms' posteriors: softmax of the mean log-probability."""
    mean = log_probs.mean(axis=0)
    mean = mean - mean.max(axis=1, keepdims=True)
    probs = np.exp(mean)
    return probs / probs.sum(axis=1, keepdims=True)


def assignments(
    log_probs: np.ndarray, fused_probs: np.ndarray, obs_names: pd.Index
) -> pd.DataFrame:
    """Per cell: fused type, the arms' mean probability of it, and the fraction agreeing."""
    fused = fused_probs.argmax(axis=1)
    rows = np.arange(len(fused))
    arm_probs = np.exp(log_probs[:, rows, fused])
    agree = (log_probs.argmax(axis=2) == fused[None]).mean(axis=0)
    return pd.DataFrame(
        {"type": fused, "confidence": arm_probs.mean(axis=0), "arm_agreement": agree},
        index=obs_names,
    )
