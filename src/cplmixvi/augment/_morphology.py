"""Random stroke width: soft grey-scale dilation or erosion of images stored as flat pixel rows."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._counts import Augmenter


class RandomStrokeWidth(Augmenter):
    """Thicken or thin the strokes of every image by a random amount, batched on the device.

    Each copy of each image is blended towards its grey-scale dilation (3 x 3 maximum) or its
    erosion (3 x 3 minimum): ``x + t (dilate(x) - x)`` for ``t > 0`` and ``x + |t| (erode(x) -
    x)`` for ``t < 0``, with ``t`` uniform in ``[-strength * thin, strength * thicken]``. Pen
    width is the largest pixel-level difference between handwritten digits that does not
    change the digit; without this augmenter the arms can agree on thick against thin strokes.

    Parameters
    ----------
    strength
        Multiplies both ranges; 0 is the identity.
    thicken
        Largest blend towards the dilation (1 is a full 3 x 3 dilation).
    thin
        Largest blend towards the erosion (1 is a full 3 x 3 erosion).
    image_shape
        ``(H, W)`` or ``(C, H, W)`` of one image.
    """

    preserves_counts = False

    def __init__(
        self,
        strength: float = 1.0,
        thicken: float = 1.0,
        thin: float = 0.5,
        image_shape: tuple[int, ...] = (28, 28),
    ):
        if strength < 0 or not 0 <= thicken <= 1 or not 0 <= thin <= 1:
            raise ValueError(
                "RandomStrokeWidth needs strength >= 0 and thicken, thin in [0, 1]; got "
                f"strength={strength}, thicken={thicken}, thin={thin}."
            )
        if len(image_shape) not in (2, 3):
            raise ValueError(f"image_shape must be (H, W) or (C, H, W), got {image_shape}.")
        self.strength = float(strength)
        self.thicken, self.thin = float(thicken), float(thin)
        self.image_shape = tuple(int(s) for s in image_shape)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        shape = self.image_shape if len(self.image_shape) == 3 else (1, *self.image_shape)
        if x.shape[-1] != math.prod(shape):
            raise ValueError(
                f"RandomStrokeWidth with image_shape={self.image_shape} needs "
                f"{math.prod(shape)} features per row, got {x.shape[-1]}; pass the image_shape "
                "of your data."
            )
        images = x.reshape(-1, *shape)
        dilated = F.max_pool2d(images, 3, stride=1, padding=1)
        eroded = -F.max_pool2d(-images, 3, stride=1, padding=1)
        low, high = -self.thin * self.strength, self.thicken * self.strength
        t = torch.rand(images.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)
        t = low + (high - low) * t
        target = torch.where(t > 0, dilated, eroded)
        return (images + t.abs() * (target - images)).reshape(x.shape)
