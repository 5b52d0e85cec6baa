"""Why the simulator's planted state was not learned (issue 5): the diagnostics, seed 0.

Three checks on ``cplmixvi.data.simulate(n_cells=3000, seed=0)`` (the simulator part of
``benchmarks/states.py``):

- ``signal``: is the planted state visible in the data? Within each planted type, |Spearman|
  between the planted state and (a) the signed sum of the log-normalised planted genes,
  (b) the first principal components of all log-normalised genes, (c) of the 20 activity genes.
- ``scvi``: does a plain ``scvi.model.SCVI`` (5 latent dimensions, 100 epochs, all cells) see it?
  |Spearman| of the best latent dimension and of the latent's first principal component per type.
- ``fit MODEL_KWARGS TRAIN_KWARGS``: a ``CplMixVI`` fit (K = 5) with the given keyword
  dictionaries (Python literals); prints the state KL over epochs and, per inferred type of arm 0,
  the spread of the posterior means of ``q(s|x, c)`` against its mean standard deviation and the
  prior's, and |Spearman| of each state dimension with the planted state. A collapsed state has
  posterior means that hardly move (spread << posterior s.d. ~ prior s.d.).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/experiments/states_diagnose.py signal``;
``... fit "{'state_encoder': 'separate'}" "{'plan_kwargs': {'max_kl_weight': 0.25}}"``;
``--imbalance 1`` for equal abundances. Results: ``benchmarks/results/states_variants.md``.
"""

from __future__ import annotations

import argparse
import ast
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import scvi  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

import cplmixvi  # noqa: E402


def rho(a, b) -> float:
    return float(abs(spearmanr(a, b).statistic))


def signal(adata) -> None:
    counts = adata.layers["counts"].toarray()
    norm = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    response = adata.uns["simulation"]["response"]
    state = adata.obs["state"].to_numpy()
    params = adata.uns["simulation"]["params"]
    first = len(adata.uns["simulation"]["types"]) * params["n_markers"]
    activity = np.arange(first, first + params["n_state_genes"])  # the genes the state can drive
    for k, name in enumerate(adata.uns["simulation"]["types"]):
        cells = (adata.obs["cell_type"] == name).to_numpy()
        planted = np.flatnonzero(response[k] != 0)
        signed = norm[np.ix_(cells, planted)] @ np.sign(response[k, planted])
        pcs = PCA(5).fit_transform(norm[cells] - norm[cells].mean(0))
        pcs_act = PCA(2).fit_transform(norm[np.ix_(cells, activity)])
        print(
            f"{name}: {cells.sum()} cells, {len(planted)} planted genes; |Spearman| with the "
            f"planted state: signed sum {rho(signed, state[cells]):.2f}, PCs of all genes "
            f"{[round(rho(pcs[:, i], state[cells]), 2) for i in range(5)]}, PCs of the activity "
            f"genes {[round(rho(pcs_act[:, i], state[cells]), 2) for i in range(2)]}"
        )


def scvi_fit(adata) -> None:
    scvi.settings.seed = 0
    scvi.model.SCVI.setup_anndata(adata, layer="counts")
    model = scvi.model.SCVI(adata, n_latent=5)
    model.train(max_epochs=100, accelerator="cpu", enable_progress_bar=False)
    z = model.get_latent_representation()
    state = adata.obs["state"].to_numpy()
    kl = model.history["kl_local_train"].iloc[[0, 20, -1], 0].astype(float).round(2).tolist()
    print("scVI KL (epochs 0, 20, last):", kl)
    for name in adata.uns["simulation"]["types"]:
        cells = (adata.obs["cell_type"] == name).to_numpy()
        u = np.linalg.svd(z[cells] - z[cells].mean(0), full_matrices=False)[0]
        best = max(rho(z[cells, d], state[cells]) for d in range(z.shape[1]))
        print(f"{name}: best latent dim {best:.2f}, latent PC1 {rho(u[:, 0], state[cells]):.2f}")


def cplmixvi_fit(adata, model_kwargs: dict, train_kwargs: dict) -> None:
    scvi.settings.seed = 0
    cplmixvi.CplMixVI.setup_anndata(adata, layer="counts")
    model = cplmixvi.CplMixVI(adata, n_types=5, **model_kwargs)
    model.train(accelerator="cpu", enable_progress_bar=False, **train_kwargs)
    history = model.history
    for key in ("reconstruction_train", "kl_state_train"):
        values = history[key].iloc[[0, 5, 20, 50, -1], 0].astype(float).round(2).tolist()
        print(f"{key} (epochs 0, 5, 20, 50, last): {values}")
    model.write_results(adata)
    acc = cplmixvi.metrics.hungarian_accuracy(adata.obs["cell_type"], adata.obs["cplmixvi_type"])
    print(f"ACC {acc:.3f}")
    module = model.module
    module.eval()
    with torch.no_grad():
        inf = module.inference(torch.as_tensor(adata.layers["counts"].toarray()))
    q_mean, q_sd = inf["qs_mean"][0].numpy(), inf["qs_std"][0].numpy()
    prior_sd = np.exp(0.5 * module.prior_logvar[0].detach().numpy())
    types = inf["log_probs"][0].argmax(-1).numpy()
    state = adata.obs["state"].to_numpy()
    for k in np.unique(types):
        cells = types == k
        planted = adata.obs["cell_type"][cells].value_counts()
        print(
            f"type {k}: {cells.sum()} cells {dict(planted[planted > 0])}; s.d. of posterior means "
            f"{q_mean[cells].std(0).round(3)}, mean posterior s.d. {q_sd[cells].mean(0).round(3)},"
            f" prior s.d. {prior_sd[k].round(3)}; |Spearman| per dim "
            f"{[round(rho(q_mean[cells, d], state[cells]), 2) for d in range(q_mean.shape[1])]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=["signal", "scvi", "fit"])
    parser.add_argument("model_kwargs", nargs="?", default="{}")
    parser.add_argument("train_kwargs", nargs="?", default="{}")
    parser.add_argument("--imbalance", type=float, default=10.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    adata = cplmixvi.data.simulate(n_cells=3000, seed=0, imbalance=args.imbalance)
    if args.check == "signal":
        signal(adata)
    elif args.check == "scvi":
        scvi_fit(adata)
    else:
        kwargs = ast.literal_eval(args.model_kwargs), ast.literal_eval(args.train_kwargs)
        cplmixvi_fit(adata, *kwargs)


if __name__ == "__main__":
    main()
