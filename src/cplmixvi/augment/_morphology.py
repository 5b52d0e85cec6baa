"""Random stroke width: soft grey-scale dilation or erosion of images stored as flat pixel rows."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._counts import Augmenter
from ._image import as_images, check_image_shape


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
        self.strength = float(strength)
        self.thicken, self.thin = float(thicken), float(thin)
        self.image_shape = check_image_shape(image_shape)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        images = as_images(x, self.image_shape, type(self).__name__)
        dilated = F.max_pool2d(images, 3, stride=1, padding=1)
        eroded = -F.max_pool2d(-images, 3, stride=1, padding=1)
        low, high = -self.thin * self.strength, self.thicken * self.strength
        t = torch.rand(images.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)
        t = low + (high - low) * t
        target = torch.where(t > 0, dilated, eroded)
        return (images + t.abs() * (target - images)).reshape(x.shape)
