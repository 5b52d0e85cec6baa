"""How good is the k-means start, and would another representation of the pretrained arms be better?

One default CplMixVI fit per (dataset, seed) is stopped right after pretraining (at the k-means
start). k-means with K clusters (10 initialisations) then runs on: the arms' joint clr type
codes (what the package uses), the mean over arms of the encoders' hidden layer, the joint
state means, codes and states side by side, and the 50 PCs of scanpy's standard preprocessing
(the PCA + k-means baseline); rows with their ACC / ARI / AMI go to
``benchmarks/results/start_quality.jsonl``. Usage::

    python benchmarks/experiments/start_quality.py --seeds 0 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import append_jsonl, in_fresh_processes  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results" / "start_quality.jsonl"


class _Stop(Exception):
    pass


def train_to_start(model, capture) -> None:
    """Train ``model`` with its defaults until the start, where ``capture(model)`` runs instead.

    ``capture`` replaces the package's start (``init_types_by_kmeans``) and raises ``_Stop``.
    """
    import cplmixvi.model._training as model_module

    model_module.init_types_by_kmeans = capture
    try:
        model.train(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    except _Stop:
        pass


def codes_at_start(model, adata=None):
    """Train ``model`` to its start and return the arms' clr type codes there, ``(A, N, W)``,
    of ``adata`` (default: the model's own data, which ``adata`` must share the setup of)."""
    captured = {}

    def capture(m, *args, **kwargs):
        log_probs, _ = m._infer(m.adata if adata is None else adata, None, 1024)
        captured["codes"] = log_probs - log_probs.mean(-1, keepdims=True)
        raise _Stop

    train_to_start(model, capture)
    return captured["codes"]


def run_one(dataset: str, seed: int) -> list[dict]:
    import numpy as np
    import scvi
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE.parent))
    from baselines import kmeans_labels, pca_embedding
    from clustering import DATASETS, load

    from cplmixvi import CplMixVI
    from cplmixvi.metrics import clustering_scores

    adata = load(dataset)
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    k = DATASETS[dataset]
    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata)
    model = CplMixVI(adata, n_types=k)
    reps: dict[str, np.ndarray] = {}

    def capture(m, *args, **kwargs):
        log_probs, states = m._infer(m.adata, None, 1024)
        codes = log_probs - log_probs.mean(-1, keepdims=True)
        reps["codes"] = codes.transpose(1, 0, 2).reshape(adata.n_obs, -1)
        reps["state"] = states.transpose(1, 0, 2).reshape(adata.n_obs, -1)
        reps["codes+state"] = np.hstack([reps["codes"], reps["state"]])
        reps["hidden"] = hidden(m)
        raise _Stop

    train_to_start(model, capture)
    reps["pca"] = pca_embedding(adata, seed).obsm["X_pca"]
    rows = []
    for name, rep in reps.items():
        row = {"dataset": dataset, "seed": seed, "representation": name}
        row.update(clustering_scores(truth, kmeans_labels(rep, k, seed)))
        rows.append(row)
    return rows


def arm_hidden(model):
    """Every arm's encoder output of every cell in evaluation mode: ``(A, N, H)``.

    The module's training mode is restored afterwards, so callbacks can call it mid-fit.
    """
    import numpy as np
    import torch

    module, x = model.module, model.adata.X
    out = []
    was_training = module.training
    module.eval()
    with torch.no_grad():
        for start in range(0, x.shape[0], 1024):
            block = x[start : start + 1024]
            block = block.toarray() if hasattr(block, "toarray") else np.asarray(block)
            block = torch.as_tensor(block, dtype=torch.float32).expand(module.n_arms, -1, -1)
            out.append(module.encoder(module._encoder_input(block), None).numpy())
    module.train(was_training)
    return np.concatenate(out, axis=1)


def hidden(model):
    """The arms' mean encoder hidden layer of every cell (evaluation mode)."""
    return arm_hidden(model).mean(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--datasets", nargs="+", default=["mop_10x", "pbmc_10x_4k", "worm_neuron", "mouse_bladder"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    runs = [(d, s) for s in args.seeds for d in args.datasets]
    calls = [(run_one, run) for run in runs]
    append_jsonl(in_fresh_processes(calls, args.jobs, threads=1), OUT)


if __name__ == "__main__":
    main()
