"""Initialising the arms' type heads from k-means on their pretrained type codes."""

from __future__ import annotations

import numpy as np
import scvi
import torch
from sklearn.cluster import KMeans

MAX_CELLS = 50_000


@torch.inference_mode()
def centred_codes(model, indices: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Each arm's centred log posterior (the clr of ``q(c|x)``), shape ``(A, n, K)``."""
    module = model.module
    was_training = module.training
    module.eval()
    loader = model._make_data_loader(adata=model.adata, indices=indices, batch_size=batch_size)
    codes = []
    for tensors in loader:
        out = module.inference(**module._get_inference_input(tensors), deterministic=True)
        log_probs = out["log_probs"]
        codes.append((log_probs - log_probs.mean(-1, keepdim=True)).cpu())
    module.train(was_training)
    return torch.cat(codes, 1).numpy()


def init_types_by_kmeans(model, n_init: int = 10) -> None:
    """Set the type heads to the k-means clusters of the arms' concatenated type codes.

    One k-means with ``K`` clusters runs on the arms' clr codes side by side (at most
    ``MAX_CELLS`` cells, drawn with the scvi-tools seed); each arm's head then assigns a cell
    by an isotropic Gaussian around its part of the centroids, with the pooled within-cluster
    variance (:meth:`~cplmixvi.module.CplMixVAE.init_type_heads`). The product of the arms'
    posteriors then has the k-means clusters as its argmax, and the arms start with the same
    category ids.
    """
    n_cells, module = model.adata.n_obs, model.module
    rng = np.random.default_rng(scvi.settings.seed)
    indices = None
    if n_cells > MAX_CELLS:
        indices = np.sort(rng.choice(n_cells, MAX_CELLS, replace=False))
    codes = centred_codes(model, indices)
    n_arms, n, k = codes.shape
    joined = codes.transpose(1, 0, 2).reshape(n, n_arms * k)
    kmeans = KMeans(k, n_init=n_init, random_state=scvi.settings.seed).fit(joined)
    variance = kmeans.inertia_ / joined.size
    centroids = kmeans.cluster_centers_.reshape(k, n_arms, k).transpose(1, 0, 2)
    module.init_type_heads(torch.as_tensor(centroids), beta=0.5 / max(variance, 1e-8))
