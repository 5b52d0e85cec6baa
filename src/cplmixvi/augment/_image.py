"""Small random affine transforms of images stored as flat pixel rows (e.g. MNIST's 784)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._counts import Augmenter


class RandomAffine(Augmenter):
    """Random rotation, scaling and translation of every image, batched on the device.

    Each copy of each image gets its own transform, built with
    :func:`torch.nn.functional.affine_grid` and resampled bilinearly with
    :func:`torch.nn.functional.grid_sample` (zeros outside the image). Rows of length ``H * W``
    (``C * H * W`` when ``image_shape`` has 3 entries) are reshaped to images and back.

    Parameters
    ----------
    strength
        Multiplies every range below; 0 is the identity.
    rotation
        Largest rotation, in degrees (uniform in ``[-rotation, rotation]``).
    scale
        Largest relative zoom (uniform in ``[1 - scale, 1 + scale]``).
    translation
        Largest shift as a fraction of the image side, on each axis.
    image_shape
        ``(H, W)`` or ``(C, H, W)`` of one image.
    """

    preserves_counts = False

    def __init__(
        self,
        strength: float = 1.0,
        rotation: float = 15.0,
        scale: float = 0.1,
        translation: float = 0.1,
        image_shape: tuple[int, ...] = (28, 28),
    ):
        if strength < 0 or rotation < 0 or translation < 0 or not 0 <= scale * strength < 1:
            raise ValueError(
                "RandomAffine needs strength, rotation, translation >= 0 and "
                f"0 <= scale * strength < 1; got strength={strength}, rotation={rotation}, "
                f"scale={scale}, translation={translation}."
            )
        self.strength = float(strength)
        self.rotation, self.scale, self.translation = rotation, scale, translation
        self.image_shape = check_image_shape(image_shape)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        images = as_images(x, self.image_shape, type(self).__name__)
        theta = self._random_theta(images.shape[0], images.device, images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        out = F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return out.reshape(x.shape)

    def _random_theta(self, n: int, device, dtype) -> torch.Tensor:
        """``(n, 2, 3)`` maps from output to input coordinates (normalised to ``[-1, 1]``)."""

        def uniform(*size):
            return 2.0 * torch.rand(*size, device=device, dtype=dtype) - 1.0

        angle = uniform(n) * math.radians(self.rotation) * self.strength
        zoom = 1.0 + uniform(n) * self.scale * self.strength
        shift = uniform(n, 2) * 2.0 * self.translation * self.strength
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        row0 = torch.stack([cos, -sin, shift[:, 0]], dim=-1)
        row1 = torch.stack([sin, cos, shift[:, 1]], dim=-1)
        return torch.stack([row0, row1], dim=1)


def check_image_shape(image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """``image_shape`` as a tuple of ints, if it is ``(H, W)`` or ``(C, H, W)``."""
    if len(image_shape) not in (2, 3):
        raise ValueError(f"image_shape must be (H, W) or (C, H, W), got {image_shape}.")
    return tuple(int(s) for s in image_shape)


def as_images(x: torch.Tensor, image_shape: tuple[int, ...], name: str) -> torch.Tensor:
    """Rows of flat pixels ``(..., C * H * W)`` as a batch of images ``(N, C, H, W)``."""
    shape = image_shape if len(image_shape) == 3 else (1, *image_shape)
    if x.shape[-1] != math.prod(shape):
        raise ValueError(
            f"{name} with image_shape={image_shape} needs {math.prod(shape)} features per "
            f"row, got {x.shape[-1]}; pass the image_shape of your data."
        )
    return x.reshape(-1, *shape)
