"""Is a type lost at the k-means start because the codes merge it, or because k-means does?

One default CplMixVI fit of one data set and seed, stopped at the k-means start (as
``start_quality.py`` does). For the arms' joint clr codes, the encoders' hidden layer, scanpy's
50 PCs and scVI's latent (100 epochs): k-means with K clusters (the package's start), per
reference type its recall there (``k-means K``), its 15-nearest-neighbour leave-out recall
(5-fold; whether the representation separates it locally at all) and, with 2K k-means clusters,
the purity of the cluster holding most of its cells (``2K purity``). A second table scores
other starts from the same codes (:func:`alternatives`): Leiden at K on their neighbour graph,
k-means at 2K or 3K merged back to K by Ward's criterion or by centroid distance, and k-means
at K on transforms of the codes, each scored through the nearest centroid of its clusters
(what the heads' Gaussian start of that day gave; for merged clusters this understates them,
the mean of a type's pieces is not where its cells are: ``start_merges.py`` scores merged
starts on their own labels). Appends a section to ``benchmarks/results/type_confusion.md``
(``--no-scvi`` leaves scVI out; ``--epochs-factor`` trains that multiple of the default
epochs, half of them pretraining). Usage::

    python benchmarks/experiments/start_types.py --dataset pbmc_10x_4k --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import require_bench_extra  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
OUT = HERE.parent / "results" / "type_confusion.md"


def start_representations(adata, k: int, seed: int, factor: float = 1.0) -> dict[str, np.ndarray]:
    """The arms' joint clr codes and mean hidden layer at the end of pretraining.

    Pretraining is the default half of ``factor`` times the default epochs.
    """
    import scvi
    from start_quality import _Stop, hidden

    import cplmixvi.model._training as model_module
    from cplmixvi import CplMixVI
    from cplmixvi.model._training import default_max_epochs

    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata)
    model = CplMixVI(adata, n_types=k)
    reps: dict[str, np.ndarray] = {}

    def capture(m, *args, **kwargs):
        log_probs, _ = m._infer(m.adata, None, 1024)
        codes = log_probs - log_probs.mean(-1, keepdims=True)
        reps["codes"] = codes.transpose(1, 0, 2).reshape(adata.n_obs, -1)
        reps["hidden"] = hidden(m)
        raise _Stop

    model_module.init_types_by_kmeans = capture
    try:
        model.train(
            max_epochs=round(factor * default_max_epochs(adata.n_obs)),
            accelerator="cpu",
            enable_progress_bar=False,
            enable_model_summary=False,
        )
    except _Stop:
        pass
    return reps


def type_table(rep: np.ndarray, truth: np.ndarray, k: int, seed: int) -> pd.DataFrame:
    """Per reference type: k-means-K recall, kNN recall and the purity of its 2K cluster."""
    from baselines import kmeans_labels
    from sklearn.model_selection import cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    from cplmixvi.metrics import hungarian_mapping

    pred = kmeans_labels(rep, k, seed).astype(str)
    mapping = hungarian_mapping(truth, pred)
    owner = np.array([mapping.get(p, "") for p in pred], dtype=object)
    knn = cross_val_predict(KNeighborsClassifier(15), rep, truth, cv=5)
    fine = kmeans_labels(rep, 2 * k, seed)
    rows = {}
    for t in np.unique(truth):
        mine = truth == t
        top = np.bincount(fine[mine]).argmax()
        rows[t] = {
            "k-means K": np.mean(owner[mine] == t),
            "kNN": np.mean(knn[mine] == t),
            "2K purity": np.mean(truth[fine == top] == t),
        }
    return pd.DataFrame(rows).T


def merge_to(rep: np.ndarray, labels: np.ndarray, k: int, ward: bool) -> np.ndarray:
    """Merge clusters pairwise down to ``k``: Ward's cost, or the closest centroids."""
    labels = labels.copy()
    while labels.max() + 1 > k:
        sizes = np.bincount(labels)
        centroids = np.stack([rep[labels == j].mean(0) for j in range(len(sizes))])
        cost = ((centroids[:, None] - centroids[None]) ** 2).sum(-1)
        if ward:
            cost = cost * sizes[:, None] * sizes[None] / (sizes[:, None] + sizes[None])
        np.fill_diagonal(cost, np.inf)
        i, j = np.unravel_index(cost.argmin(), cost.shape)
        labels[labels == j] = i
        labels = np.unique(labels, return_inverse=True)[1]
    return labels


def alternatives(codes: np.ndarray, truth: np.ndarray, k: int, seed: int) -> pd.DataFrame:
    """ARI / AMI of other starts from the joint clr codes (nearest centroid of each clustering)."""
    from baselines import kmeans_labels, leiden_on
    from scipy.special import logsumexp

    from cplmixvi.metrics import clustering_scores

    def nearest(labels):  # what the heads' Gaussian assignment around the centroids gives
        centroids = np.stack([codes[labels == j].mean(0) for j in np.unique(labels)])
        return ((codes[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)

    starts = {"k-means K": kmeans_labels(codes, k, seed)}
    starts["Leiden at K"] = np.unique(leiden_on(codes, k, seed), return_inverse=True)[1]
    for factor in (2, 3):
        fine = kmeans_labels(codes, factor * k, seed)
        starts[f"k-means {factor}K, Ward to K"] = merge_to(codes, fine, k, ward=True)
        starts[f"k-means {factor}K, centroids to K"] = merge_to(codes, fine, k, ward=False)
    arms = codes.reshape(len(codes), -1, k)
    log_q = arms - logsumexp(arms, -1, keepdims=True)
    transforms = {"q": np.exp(log_q), "sqrt q": np.exp(log_q / 2)}
    for floor in (-2, -8):
        clipped = np.maximum(log_q, floor)
        transforms[f"log q clipped at {floor}"] = clipped - clipped.mean(-1, keepdims=True)
    for name, rep in transforms.items():
        starts[f"k-means K on {name}"] = kmeans_labels(rep.reshape(len(codes), -1), k, seed)
    rows = {}
    for name, labels in starts.items():
        scores = clustering_scores(truth, nearest(labels))
        rows[name] = {"start ARI": scores["ari"], "start AMI": scores["ami"]}
    return pd.DataFrame(rows).T.round(3)


def main() -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="pbmc_10x_4k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-scvi", action="store_true")
    parser.add_argument("--epochs-factor", type=float, default=1.0, help="of the default epochs")
    args = parser.parse_args()

    import torch
    from baselines import pca_embedding, scvi_latent
    from clustering import DATASETS, load

    torch.set_num_threads(1)
    adata = load(args.dataset)
    k, seed = DATASETS[args.dataset], args.seed
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    reps = start_representations(adata.copy(), k, seed, args.epochs_factor)
    reps["pca"] = pca_embedding(adata, seed).obsm["X_pca"]
    if not args.no_scvi:
        reps["scvi"] = scvi_latent(adata, seed, max_epochs=100)
    parts = {name: type_table(rep, truth, k, seed) for name, rep in reps.items()}
    table = pd.concat(parts, axis=1)
    table.insert(0, "cells", pd.Series(truth).value_counts())
    table = table.sort_values("cells", ascending=False).round(2)
    table.columns = [c if isinstance(c, str) else " ".join(c) for c in table.columns]
    factor = f"{args.epochs_factor:g} x"
    other = alternatives(reps["codes"], truth, k, seed).to_markdown()
    text = (
        f"\n## {args.dataset}, seed {seed}: at the k-means start ({factor} default epochs)\n\n"
        f"{table.to_markdown()}\n\n"
        f"Other starts from the same codes:\n\n{other}\n"
    )
    with OUT.open("a") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
