"""RandomStrokeWidth: soft dilation / erosion of images stored as pixel rows."""

from __future__ import annotations

import pytest
import torch

from cplmixvi.augment import Compose, RandomAffine, RandomStrokeWidth, get_augmenter


def _bar(n: int = 4) -> torch.Tensor:
    """``n`` 8 x 8 images with a vertical bar of width 2 in the middle."""
    image = torch.zeros(8, 8)
    image[1:7, 3:5] = 1.0
    return image.reshape(1, 64).repeat(n, 1)


def test_thicken_only_grows_and_thin_only_shrinks_the_stroke():
    x = _bar(50)
    thick = RandomStrokeWidth(thicken=1.0, thin=0.0, image_shape=(8, 8))(x, 2)
    thin = RandomStrokeWidth(thicken=0.0, thin=1.0, image_shape=(8, 8))(x, 2)
    assert thick.shape == thin.shape == (2, 50, 64) and thick.dtype == x.dtype
    assert (thick >= x - 1e-7).all() and (thin <= x + 1e-7).all()
    assert 0.0 <= float(thin.min()) and float(thick.max()) <= 1.0  # stays in [0, 1]
    ink = x.sum(-1)
    assert (thick.sum(-1) > ink).float().mean() > 0.9 and (thin.sum(-1) < ink).float().mean() > 0.9
    assert not torch.equal(thick[0], thick[1])  # each arm gets its own width


def test_thickening_changes_only_the_three_by_three_border():
    x = _bar(1)
    torch.manual_seed(0)
    out = RandomStrokeWidth(thicken=1.0, thin=0.0, image_shape=(8, 8)).augment(x)
    border = torch.zeros(8, 8, dtype=torch.bool)
    border[0:8, 2:6] = True  # the 3 x 3 dilation of the bar ...
    border &= x.reshape(8, 8) == 0  # ... without the bar itself
    change = (out - x).reshape(8, 8)
    assert (change[~border] == 0).all() and float(change[border].min()) > 0


def test_strength_zero_is_identity_and_bad_input_fails():
    x = _bar(3)
    assert torch.equal(RandomStrokeWidth(strength=0.0, image_shape=(8, 8))(x, 2)[1], x)
    with pytest.raises(ValueError, match="thicken, thin in"):
        RandomStrokeWidth(thicken=2.0)
    with pytest.raises(ValueError, match="features per row"):
        RandomStrokeWidth()(torch.zeros(2, 100), 2)
    with pytest.raises(ValueError, match="image_shape"):
        RandomStrokeWidth(image_shape=(8,))


def test_named_and_composed_with_affine():
    aug = get_augmenter("affine+stroke", "bernoulli", 2)
    assert isinstance(aug, Compose) and not aug.preserves_counts
    assert [type(p) for p in aug.augmenters] == [RandomAffine, RandomStrokeWidth]
    with pytest.raises(ValueError, match="integer counts"):
        get_augmenter("stroke", "nb", 2)
