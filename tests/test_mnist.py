"""The MNIST loader: a small file in the Keras format, and the shared mnist.npz when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cplmixvi

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


def _write(path, n_train=6, n_test=4, **extra):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.uint8) % 10,
        **extra,
    }
    np.savez(path, **arrays)
    return arrays


def test_mnist_small_file(tmp_path):
    arrays = _write(tmp_path / "m.npz")
    adata = cplmixvi.data.mnist(tmp_path / "m.npz")
    assert adata.shape == (10, 784) and adata.X.dtype == np.float32
    np.testing.assert_allclose(adata.X[0], arrays["x_train"][0].reshape(-1) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(adata.X[6], arrays["x_test"][0].reshape(-1) / 255.0, rtol=1e-6)
    assert adata.obs["split"].tolist() == ["train"] * 6 + ["test"] * 4
    assert adata.obs["digit"].tolist() == [str(d) for d in [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]]
    assert list(adata.obs["digit"].cat.categories) == [str(d) for d in range(10)]
    assert adata.obs_names.is_unique and adata.var_names[29] == "px_1_1"
    assert tuple(adata.uns["image_shape"]) == (28, 28)


def test_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist.npz"):
        cplmixvi.data.mnist(tmp_path / "absent.npz")
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="y_train"):
        cplmixvi.data.mnist(tmp_path / "bad.npz")


@pytest.mark.skipif(not MNIST.exists(), reason="shared MNIST not available")
def test_mnist_real_file():
    adata = cplmixvi.data.mnist(MNIST)
    assert adata.shape == (70_000, 784)
    assert 0.0 <= adata.X.min() and adata.X.max() == 1.0
    assert adata.obs["split"].value_counts().to_dict() == {"train": 60_000, "test": 10_000}
    counts = adata.obs["digit"].value_counts().sort_index()
    # the published class sizes of MNIST (train + test)
    expected = [6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958]
    assert counts.tolist() == expected
    cplmixvi.CplMixVI.setup_anndata(adata)
    model = cplmixvi.CplMixVI(adata, n_types=10, gene_likelihood="bernoulli", augmentation="affine")
    assert isinstance(model.module.augmenter, cplmixvi.augment.RandomAffine)
