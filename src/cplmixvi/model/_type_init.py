"""The start of the consensus objective: pretraining length, then graph-merged k-means heads."""

from __future__ import annotations

import numpy as np
import scvi
import torch
from scipy import sparse
from scipy.special import softmax
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import kneighbors_graph

MAX_CELLS = 50_000
#: the share of a first consensus fit's epochs that pretrain: after the graph-merged start a
#: consensus phase of a quarter of the fit is level with one of 40 % of a 1.25x longer fit
#: (24 fits each) and keeps more of MOp's categories (38.5 of 44 against 30.7)
PRETRAIN_FRACTION = 0.75
#: k-means cuts the codes into this many times K clusters before they are merged to K
OVERCLUSTERING = 2
#: the modularity resolution of the merge (0.3-0.6 give the same starts; 1 merges small types)
MERGE_RESOLUTION = 0.4
#: categories of a first fit's pretraining code (at least K): merged to K at the start, a wider
#: code starts the small sets' poor seeds better (23 fits: ARI +0.022, ``docs/model.md``)
PRETRAIN_TYPES = 32


def checked_pretrain_epochs(
    model, pretrain_epochs: int | None, max_epochs: int, default_epochs: int
) -> int:
    """Pretraining epochs of a ``train`` call: 3/4 of a first consensus fit, else none.

    The default is 3/4 of ``max_epochs``, at most 3/4 of ``default_epochs`` (the default fit's
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
    if pretrain_epochs and model.module.is_pruned and model.is_trained_:
        raise ValueError(
            "pretrain_epochs > 0 starts the type heads afresh from k-means, which a pruned "
            "model cannot do; continue training it with pretrain_epochs=0."
        )
    return pretrain_epochs


def widen_for_pretraining(model, pretrain_epochs: int, n_types: int) -> bool:
    """Give an untrained model's module ``PRETRAIN_TYPES`` categories to pretrain, if more than K.

    The module gets the fresh weights of a module of that width (the same object, so the
    training plan and anything set on it keep it). Returns whether it was widened.
    """
    if not pretrain_epochs or model.is_trained_ or n_types >= PRETRAIN_TYPES:
        return False
    wide = type(model.module)(n_types=PRETRAIN_TYPES, **model._module_kwargs)
    model.module.load_state_dict(wide.state_dict())
    return True


def narrow_after_fit(model, n_types: int) -> None:
    """Leave a widened model with its ``n_types`` types once its fit has ended.

    A fit stopped before the start (early stopping while pretraining) starts its types now.
    """
    if not model.module.is_pruned:
        init_types_by_kmeans(model, n_types)
    model.module.drop_removed_types()  # the pretraining code's surplus categories


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


def init_types_by_kmeans(
    model, n_types: int, resolution: float = MERGE_RESOLUTION, n_init: int = 10
) -> None:
    """Start ``n_types`` types from k-means clusters of the arms' codes, merged on their graph.

    k-means with ``2 K`` clusters (``OVERCLUSTERING``) runs on the arms' clr codes side by side
    (at most ``MAX_CELLS`` cells, drawn with the scvi-tools seed); its clusters are merged to
    ``K`` by the largest modularity gain on the codes' 15-nearest-neighbour graph
    (:func:`modularity_merge`). k-means at ``K`` itself cuts large types and joins small ones
    (it lowers the squared error most there); at ``2 K`` the small types have clusters of their
    own, and the graph joins the pieces of a large type, which share many edges, before two
    types, which share few. Each arm's head then becomes its current head followed by a
    multinomial logistic regression of the merged labels on that arm's clr code (a linear map),
    and the layers that read the type take for each type the weights of its cells' mean code
    (:meth:`~cplmixvi.module.CplMixVAE.start_types`): the arms start with the same category
    ids, their fused argmax is the merged clustering, and the module has ``n_types``
    categories, however many its pretraining code had.
    """
    codes = joint_codes(model)
    labels = merged_labels(codes, n_types, resolution, n_init)
    maps = [logistic_map(arm_codes, labels) for arm_codes in codes]
    coef, intercept = (torch.as_tensor(np.stack(part)) for part in zip(*maps, strict=True))
    member = np.eye(n_types)[labels]
    mean_code = np.einsum("nk,anw->akw", member, softmax(codes, -1)) / member.sum(0)[:, None]
    model.module.start_types(coef, intercept, torch.as_tensor(mean_code))


def merged_labels(
    codes: np.ndarray, k: int, resolution: float = MERGE_RESOLUTION, n_init: int = 10
) -> np.ndarray:
    """k-means at ``2 k`` on the arms' codes ``(A, N, W)`` side by side, merged to ``k`` clusters.

    The merge is :func:`modularity_merge` on the codes' 15-nearest-neighbour graph; k-means is
    seeded with the scvi-tools seed. Returns labels ``0 .. k-1`` of the ``N`` cells.
    """
    n_arms, n, width = codes.shape
    joined = codes.transpose(1, 0, 2).reshape(n, n_arms * width)
    seed = scvi.settings.seed
    fine = KMeans(min(OVERCLUSTERING * k, n), n_init=n_init, random_state=seed).fit_predict(joined)
    graph = kneighbors_graph(joined, 15)
    return modularity_merge(graph + graph.T, fine, k, resolution)


def logistic_map(codes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A multinomial logistic regression of ``labels`` on ``codes`` as logits of every label.

    Returns the map ``(K_in, K)`` and intercept ``(K,)`` with ``softmax(codes @ map +
    intercept)`` the fitted label probabilities. With two labels scikit-learn returns the one
    logit difference ``w``; it becomes the logits ``-w / 2`` and ``w / 2``, whose softmax is the
    same sigmoid (a single column would give both labels equal logits).
    """
    fit = LogisticRegression(max_iter=1000).fit(codes, labels)
    coef, intercept = fit.coef_.T, fit.intercept_
    if len(fit.classes_) == 2:
        coef = np.hstack([-coef / 2, coef / 2])
        intercept = np.hstack([-intercept / 2, intercept / 2])
    return coef, intercept
