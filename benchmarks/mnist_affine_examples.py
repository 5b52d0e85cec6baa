"""Picture of the image augmentation: 8 MNIST digits (top row) and 3 random copies of each.

Writes ``benchmarks/results/mnist_affine.png`` (``RandomAffine()``) and
``benchmarks/results/mnist_recipe_augmentation.png`` (the MNIST recipe: ``RandomAffine()``
then ``RandomStrokeWidth()``).

Usage: ``python benchmarks/mnist_affine_examples.py``
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from _env import DATA  # noqa: E402

import cplmixvi  # noqa: E402
from cplmixvi.augment import Compose, RandomAffine, RandomStrokeWidth  # noqa: E402

HERE = Path(__file__).resolve().parent
MNIST = DATA / "mnist.npz"


def main() -> None:
    adata = cplmixvi.data.mnist(MNIST)
    x = torch.as_tensor(adata.X[:8])
    draw(
        adata,
        x,
        RandomAffine(),
        "RandomAffine(): rotation <= 15 deg, zoom 0.9-1.1, shift <= 10 %",
        "mnist_affine.png",
    )
    recipe = Compose([RandomAffine(), RandomStrokeWidth()])
    title = (
        "RandomAffine() + RandomStrokeWidth():\nrotation <= 15 deg, "
        "zoom 0.9-1.1, shift <= 10 %, thinner or thicker strokes"
    )
    draw(adata, x, recipe, title, "mnist_recipe_augmentation.png")


def draw(adata, x: torch.Tensor, augmenter, title: str, name: str) -> None:
    """Plot ``x`` and 3 copies of each image made by ``augmenter``."""
    torch.manual_seed(0)
    copies = augmenter(x, 3)
    fig, axes = plt.subplots(4, 8, figsize=(8, 4.4))
    for col in range(8):
        for row, image in enumerate([x[col], *copies[:, col]]):
            ax = axes[row, col]
            ax.imshow(image.reshape(28, 28).numpy(), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, col].set_title(f"digit {adata.obs['digit'].iloc[col]}", fontsize=8)
    axes[0, 0].set_ylabel("original", fontsize=8)
    for row in range(1, 4):
        axes[row, 0].set_ylabel(f"copy {row}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = HERE / "results" / name
    fig.savefig(out, dpi=100)
    print(out)


if __name__ == "__main__":
    main()
