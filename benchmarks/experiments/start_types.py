"""Is a type lost at the k-means start because the codes merge it, or because k-means does?

One default CplMixVI fit of one data set and seed, stopped at the k-means start (as
``start_quality.py`` does). For the arms' joint clr codes, the encoders' hidden layer, scanpy's
50 PCs and scVI's latent (100 epochs): k-means with K clusters (the package's start), per
reference type its recall there (``k-means K``), its 15-nearest-neighbour leave-out recall
(5-fold; whether the representation separates it locally at all) and, with 2K k-means clusters,
the purity of the cluster holding most of its cells (``2K purity``). Appends a section to
``benchmarks/results/type_confusion.md``. Usage::

    python benchmarks/experiments/start_types.py --dataset pbmc_10x_4k --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
OUT = HERE.parent / "results" / "type_confusion.md"


def start_representations(adata, k: int, seed: int) -> dict[str, np.ndarray]:
    """The arms' joint clr codes and mean hidden layer at the end of default pretraining."""
    import scvi
    from start_quality import _Stop, hidden

    import cplmixvi.model._cplmixvi as model_module
    from cplmixvi import CplMixVI

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
        model.train(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="pbmc_10x_4k")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from baselines import pca_embedding, scvi_latent
    from clustering import DATASETS, load

    torch.set_num_threads(1)
    adata = load(args.dataset)
    k, seed = DATASETS[args.dataset], args.seed
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    reps = start_representations(adata.copy(), k, seed)
    reps["pca"] = pca_embedding(adata, seed).obsm["X_pca"]
    reps["scvi"] = scvi_latent(adata, seed, max_epochs=100)
    parts = {name: type_table(rep, truth, k, seed) for name, rep in reps.items()}
    table = pd.concat(parts, axis=1)
    table.insert(0, "cells", pd.Series(truth).value_counts())
    table = table.sort_values("cells", ascending=False).round(2)
    table.columns = [c if isinstance(c, str) else " ".join(c) for c in table.columns]
    text = f"\n## {args.dataset}, seed {seed}: at the k-means start\n\n{table.to_markdown()}\n"
    with OUT.open("a") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
