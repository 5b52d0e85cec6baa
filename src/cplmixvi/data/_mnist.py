"""MNIST handwritten digits as AnnData (pixels as features), for the Bernoulli likelihood."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

_KEYS = ("x_train", "y_train", "x_test", "y_test")


def mnist(path: str | PathLike) -> AnnData:
    """Load MNIST from a Keras-style ``mnist.npz`` into AnnData.

    Parameters
    ----------
    path
        ``.npz`` with ``x_train`` ``(60000, 28, 28)``, ``y_train``, ``x_test`` ``(10000, 28, 28)``
        and ``y_test`` (uint8), as written by ``keras.datasets.mnist``.

    Returns
    -------
    AnnData of ``70 000 x 784`` (train images first): ``X`` float32 pixels scaled to ``[0, 1]``
    (for ``gene_likelihood="bernoulli"``), ``obs["digit"]`` (categorical ``"0"`` ... ``"9"``),
    ``obs["split"]`` (``"train"``/``"test"``), ``var_names`` ``"px_<row>_<col>"`` and
    ``uns["image_shape"] = (28, 28)``.

    Examples
    --------
    >>> adata = cplmixvi.data.mnist("mnist.npz")
    >>> cplmixvi.CplMixVI.setup_anndata(adata)
    >>> model = cplmixvi.CplMixVI(adata, n_types=10, n_state=10, gene_likelihood="bernoulli",
    ...                           augmentation=cplmixvi.augment.RandomAffine())
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No MNIST file at {path}; pass the path of mnist.npz.")
    with np.load(path) as data:
        missing = [k for k in _KEYS if k not in data.files]
        if missing:
            raise ValueError(
                f"{path} lacks {missing} (has {data.files}); expected the keys {list(_KEYS)} "
                "of keras.datasets.mnist."
            )
        images = np.concatenate([data["x_train"], data["x_test"]])
        labels = np.concatenate([data["y_train"], data["y_test"]])
        n_train = len(data["x_train"])
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(f"Expected images (n, H, W) with n labels, got {images.shape}.")
    n, height, width = images.shape
    x = images.reshape(n, height * width).astype(np.float32) / 255.0
    split = np.where(np.arange(n) < n_train, "train", "test")
    obs = pd.DataFrame(
        {
            "digit": pd.Categorical(labels.astype(str), categories=[str(d) for d in range(10)]),
            "split": pd.Categorical(split, categories=["train", "test"]),
        },
        index=[
            f"{s}_{i}"
            for s, i in zip(split, np.r_[np.arange(n_train), np.arange(n - n_train)], strict=True)
        ],
    )
    var = pd.DataFrame(index=[f"px_{r}_{c}" for r in range(height) for c in range(width)])
    adata = AnnData(X=x, obs=obs, var=var)
    adata.uns["image_shape"] = (height, width)
    return adata
