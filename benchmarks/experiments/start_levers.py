"""Screen of levers on the consensus start: how good the k-means start is, and where a fit ends.

One CplMixVI fit per (dataset, seed, lever) with package defaults except the lever; a Lightning
callback scores, right before the k-means initialisation of the type heads, k-means with K
clusters on the arms' joint clr type codes (what the initialisation runs) and on the encoder's
last hidden layer, then the fit runs to its end. Levers use public options only:

- ``default``: the package defaults;
- ``epochs2x``: twice the default epochs (so twice as long a pretraining);
- ``arms3``: three arms;
- ``dropout03``: augmentation binomial thinning 0.5 then gene dropout 0.3 (default 0.1).

Rows are appended to ``benchmarks/results/start_levers.jsonl``. Usage::

    python benchmarks/experiments/start_levers.py --levers default dropout03 --seeds 0 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import append_jsonl, in_fresh_processes  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results" / "start_levers.jsonl"
LEVERS = ("default", "epochs2x", "arms3", "dropout03")


def lever_kwargs(lever: str, n_obs: int) -> tuple[dict, dict]:
    """Constructor and ``train`` arguments of a lever."""
    from cplmixvi.augment import BinomialThinning, GeneDropout
    from cplmixvi.model._training import default_max_epochs

    if lever == "epochs2x":
        return {}, {"max_epochs": 2 * default_max_epochs(n_obs)}
    if lever == "arms3":
        return {"n_arms": 3}, {}
    if lever == "dropout03":
        return {"augmentation": [BinomialThinning(0.5), GeneDropout(0.3)]}, {}
    return {}, {}


def start_scores(model, truth, seed: int, scores: dict):
    """Callback scoring k-means on the pretrained codes right before the k-means start."""
    import numpy as np
    import torch
    from lightning.pytorch.callbacks import Callback
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score

    def kmeans_ari(features) -> float:
        k = model.module.n_types
        labels = KMeans(k, n_init=10, random_state=seed).fit_predict(features)
        return float(adjusted_rand_score(truth, labels))

    class StartScores(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if trainer.current_epoch != pl_module.pretrain_epochs:
                return
            log_probs, _ = model._infer(model.adata, None, 1024)
            codes = log_probs - log_probs.mean(-1, keepdims=True)
            scores["start_codes_ari"] = kmeans_ari(np.concatenate(list(codes), axis=1))
            hidden = []
            module = model.module
            module.eval()
            with torch.inference_mode():
                for tensors in model._make_data_loader(adata=model.adata, batch_size=1024):
                    x = torch.log1p(tensors["X"]).expand(module.n_arms, *tensors["X"].shape)
                    hidden.append(module.encoder(x, None))
            module.train()
            hidden = torch.cat(hidden, 1).numpy()
            hidden = np.concatenate(list(hidden), axis=1)
            scores["start_hidden_ari"] = kmeans_ari(
                PCA(20, random_state=seed).fit_transform(hidden)
            )

    return StartScores()


def run_one(dataset: str, seed: int, lever: str) -> dict:
    """One fit in this process."""
    import scvi
    import torch

    torch.set_num_threads(1)
    from clustering import DATASETS, load

    from cplmixvi import CplMixVI
    from cplmixvi.metrics import clustering_scores

    adata = load(dataset)
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata)
    model_kwargs, train_kwargs = lever_kwargs(lever, adata.n_obs)
    model = CplMixVI(adata, n_types=DATASETS[dataset], **model_kwargs)
    row = {"dataset": dataset, "seed": seed, "lever": lever}
    model.train(
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[start_scores(model, truth, seed, row)],
        **train_kwargs,
    )
    table = model.get_type_assignments()
    row.update(clustering_scores(truth, table["type"].astype(str)))
    row["types_with_cells"] = int(table["type"].nunique())
    row["consensus"] = float((table["arm_agreement"] == 1).mean())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["pbmc_10x_4k", "mouse_bladder", "worm_neuron", "mop_10x"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=LEVERS)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    runs = [(d, s, lever) for lever in args.levers for s in args.seeds for d in args.datasets]
    calls = [(run_one, run) for run in runs]
    append_jsonl(in_fresh_processes(calls, args.jobs, threads=1), OUT)


if __name__ == "__main__":
    main()
