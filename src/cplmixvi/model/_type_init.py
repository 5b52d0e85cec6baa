"""The start of the consensus objective: pretraining length, then k-means type heads."""

from __future__ import annotations

import numpy as np
import scvi
import torch
from scipy import sparse
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import kneighbors_graph

MAX_CELLS = 50_000
#: the share of a first consensus fit's epochs that pretrain: at the default length, the
#: pretraining of the default until 2026-12-04, then twice its consensus phase (+0.016 ARI over
#: 24 fits, every set up)
PRETRAIN_FRACTION = 0.6
#: k-means cuts the codes into this many times K clusters before they are merged to K
OVERCLUSTERING = 2
#: the modularity resolution of the merge (0.3-0.6 give the same starts; 1 merges small types)
MERGE_RESOLUTION = 0.4


def checked_pretrain_epochs(
    model, pretrain_epochs: int | None, max_epochs: int, default_epochs: int
) -> int:
    """Pretraining epochs of a ``train`` call: 60 % of a first consensus fit, else none.

    The default is 60 % of ``max_epochs``, at most 60 % of ``default_epochs`` (the default fit's
    length): the epochs of a longer fit go to the consensus phase. A longer pretraining ends at
    another k-means start, on the small sets a worse one, while the consensus phase from the
    same start holds (4x curves, ``docs/model.md``).
    """
    first_fit = model.module.objective == "consensus" and not model.is_trained_
    if pretrain_epochs is None:
        epochs = round(PRETRAIN_FRACTION * min(max_epochs, default_epochs))
        return min(epochs, max_epochs - 1) if first_fit else 0
    if not 0 <= pretrain_epochs < max_epochs:
        raise ValueError(
            f"pretrain_epochs must be in [0, max_epochs) = [0, {max_epochs}), got "
            f"{pretrain_epochs}; the clustering phase needs at least one epoch."
        )
    if pretrain_epochs and model.module.is_pruned:
        raise ValueError(
            "pretrain_epochs > 0 starts the type heads afresh from k-means, which a pruned "
            "model cannot do; continue training it with pretrain_epochs=0."
        )
    return pretrain_epochs


def init_types_by_kmeans(model, n_init: int = 10) -> None:
    """Set the type heads to the k-means clusters of the arms' concatenated type codes.

    One k-means with ``K`` clusters runs on the arms' clr codes side by side (at most
    ``MAX_CELLS`` cells, drawn with the scvi-tools seed); each arm's head then assigns a cell
    by an isotropic Gaussian around its part of the centroids, with the pooled within-cluster
    variance (:meth:`~cplmixvi.module.CplMixVAE.init_type_heads`). The product of the arms'
    posteriors then has the k-means clusters as its argmax, and the arms start with the same
    category ids.
    """
    module = model.module
    codes = joint_codes(model)
    n_arms, n, k = codes.shape
    joined = codes.transpose(1, 0, 2).reshape(n, n_arms * k)
    kmeans = KMeans(k, n_init=n_init, random_state=scvi.settings.seed).fit(joined)
    variance = kmeans.inertia_ / joined.size
    centroids = kmeans.cluster_centers_.reshape(k, n_arms, k).transpose(1, 0, 2)
    module.init_type_heads(torch.as_tensor(centroids), beta=0.5 / max(variance, 1e-8))


def joint_codes(model) -> np.ndarray:
    """Each arm's clr type code of at most ``MAX_CELLS`` cells, shape ``(A, N, K)``."""
    n_cells = model.adata.n_obs
    indices = None
    if n_cells > MAX_CELLS:
        rng = np.random.default_rng(scvi.settings.seed)
        indices = np.sort(rng.choice(n_cells, MAX_CELLS, replace=False))
    log_probs, _ = model._infer(model.adata, indices, 1024)
    return log_probs - log_probs.mean(-1, keepdims=True)


def modularity_merge(
    graph: sparse.spmatrix, labels: np.ndarray, k: int, resolution: float
) -> np.ndarray:
    """Merge clusters of a cell graph pairwise, by the largest modularity gain, until ``k`` remain.

    The gain of joining clusters ``i`` and ``j`` is ``e_ij - resolution d_i d_j / 2m`` (edges
    between them, their degrees, twice the edges in all): Clauset, Newman and Moore's greedy
    agglomeration started from ``labels``. Like theirs it joins only clusters with an edge
    between them, also at a negative gain (the pieces of a large type, whose degree penalty
    grows as they join, before two separate small types), and only when no such pair is left
    the clusters without one, so it always reaches ``k``.

    Returns
    -------
    Labels ``0 .. k-1`` of the cells.
    """
    n = labels.max() + 1
    member = sparse.csr_matrix(
        (np.ones(len(labels)), (np.arange(len(labels)), labels)), (len(labels), n)
    )
    edges = (member.T @ graph @ member).toarray()
    degree, total = edges.sum(1), edges.sum()
    group, alive = np.arange(n), np.ones(n, bool)
    while alive.sum() > k:
        live = np.flatnonzero(alive)
        between = edges[np.ix_(live, live)]
        gain = between - resolution * np.outer(degree[live], degree[live]) / total
        joined = between > 0
        np.fill_diagonal(joined, False)
        gain[~joined if joined.any() else np.eye(len(live), dtype=bool)] = -np.inf
        a, b = np.unravel_index(np.argmax(gain), gain.shape)
        i, j = live[a], live[b]
        edges[i] += edges[j]
        edges[:, i] += edges[:, j]
        degree[i] += degree[j]
        alive[j] = False
        group[group == j] = i
    return np.unique(group[labels], return_inverse=True)[1]


def init_types_by_merged_kmeans(
    model, resolution: float = MERGE_RESOLUTION, n_init: int = 10
) -> None:
    """Set the type heads to k-means clusters of the arms' codes, merged to K on their graph."""
    codes = joint_codes(model)
    n_arms, n, k = codes.shape
    joined = codes.transpose(1, 0, 2).reshape(n, n_arms * k)
    seed = scvi.settings.seed
    fine = KMeans(min(OVERCLUSTERING * k, n), n_init=n_init, random_state=seed).fit_predict(joined)
    graph = kneighbors_graph(joined, 15)
    labels = modularity_merge(graph + graph.T, fine, k, resolution)
    coef, intercept = [], []
    for arm in range(n_arms):
        fit = LogisticRegression(max_iter=1000).fit(codes[arm], labels)
        coef.append(fit.coef_.T)
        intercept.append(fit.intercept_)
    model.module.init_type_heads_linear(
        torch.as_tensor(np.stack(coef)), torch.as_tensor(np.stack(intercept))
    )
