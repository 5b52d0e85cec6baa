"""Cell states (issue 5): recovery of planted state genes and states, and MOp traversal figures.

Simulator part: ``cplmixvi.data.simulate`` (3 000 cells, 200 genes, 5 types with 10:1 abundance
ratio, 20 activity genes with a type-specific response), one fit per seed (K = 5, 2 state
dimensions, 2 arms, the model setting below). Each planted type is matched to an inferred type
(Hungarian); that type is traversed (arm 0, 11 steps over the 5-95 % quantiles of ``p(s|c)``
or of its cells' states) and its genes ranked by ``cplmixvi.tl.rank_state_genes``. Two kinds
of traversal (column ``axis``): ``dims``, each state dimension in turn (best score over the
dimensions), and ``pc1``, the type's principal axis (``traverse(state_dim="pc1")``). Reported
per type: precision of the top-n genes (n = planted state genes of the type, so precision =
recall), precision and recall of the genes called responding (``|log2fc| >= 1`` and
``|spearman| >= 0.9``), whether the markers stay flat (log2 range <= 0.5 in every traversed
direction) and ``|Spearman|`` between the planted state and the inferred state coordinate among
the type's cells (arm 0; ``dims``: the best dimension, ``pc1``: the projection on the principal
axis of the matched type), and of that coordinate with the cells' library size.

Model setting (issue 5): ``state_encoder="separate"``, a state KL weight of 0.25
(``plan_kwargs={"max_kl_weight": 0.25}``) and twice the default epochs, the setting for state
analyses; ``--state-encoder shared --state-kl-weight 1 --epochs-factor 1`` gives package
defaults. At the default epochs the state is not yet formed (``docs/states.md``). With the state
posterior reading the type encoder, the coupling's gradients (tens to thousands of nats per
cell) drown the within-type signal (about one nat) and ``q(s|x, c)`` collapses onto ``p(s|c)``
(``benchmarks/results/states_variants.md``).

MOp part: one fit on ``mop_10x.h5ad`` (K = 44, the same setting, seed 0), traversal of all
types, the ranked genes of one L5/L6 glutamatergic and one GABAergic type, and the figures
under ``docs/figures/``.

Run: ``python benchmarks/states.py`` (every fit in a fresh process, one thread).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scanpy as sc
import scvi
import torch
from _env import DATA, in_fresh_processes, require_bench_extra
from scipy.stats import spearmanr

import cplmixvi

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
FIGURES = ROOT.parent / "docs" / "figures"
MOP = DATA / "mop_10x.h5ad"
CALL_LOG2FC, CALL_SPEARMAN, FLAT_RANGE = 1.0, 0.9, 0.5
QUICK = {}  # --quick: a smoke run of the script (few epochs, fewer cells), not for results
#: --state-encoder / --kl-warmup: the model setting for state analyses (see the module docstring)
SETTING = {
    "state_encoder": "separate",
    "kl_weight": 0.25,
    "kl_warmup": False,
    "n_state": 2,
    "epochs_factor": 2.0,
    "pretrain_factor": 0.75,
}
#: (grid, axis) traversals of the simulator part; axis "dims": every state dimension
TRAVERSALS = [("prior", "dims"), ("cells", "dims"), ("prior", "pc1"), ("cells", "pc1")]


def fit(adata, n_types: int, seed: int, layer: str = "counts") -> cplmixvi.CplMixVI:
    scvi.settings.seed = seed
    cplmixvi.CplMixVI.setup_anndata(adata, layer=layer)
    model = cplmixvi.CplMixVI(
        adata, n_types=n_types, n_state=SETTING["n_state"], state_encoder=SETTING["state_encoder"]
    )
    # the default epochs when this setting was measured (the package's default is 1.25x since
    # 2026-12-04); fixed here so the state tables stay reproducible
    n_default = min(400, max(20, 300_000 // adata.n_obs))
    epochs = SETTING.get("epochs") or round(SETTING["epochs_factor"] * n_default)
    epochs = QUICK.get("max_epochs", epochs)
    # weight of the state KL term (a beta-VAE for the state); optionally warmed up from 0 over
    # the whole fit
    plan = {"max_kl_weight": SETTING["kl_weight"]}
    if SETTING["kl_warmup"]:
        plan["n_epochs_kl_warmup"] = epochs
    # pretraining as long as a default fit's; the extra epochs go to the phase where states form
    pretrain = min(round(SETTING["pretrain_factor"] * n_default), epochs - 1)
    model.train(
        max_epochs=epochs,
        pretrain_epochs=pretrain,
        plan_kwargs=plan,
        accelerator="cpu",
        enable_progress_bar=False,
    )
    model.write_results(adata)
    return model


def best_over_dims(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (type, gene): the row of the state dimension with the highest score."""
    best = scores.sort_values("score", ascending=False, kind="stable")
    return best.drop_duplicates(["type", "gene"]).set_index(["type", "gene"])


def simulator_rows(seed: int) -> list[dict]:
    adata = cplmixvi.data.simulate(n_cells=QUICK.get("n_cells", 3000), seed=seed)
    start = time.perf_counter()
    model = fit(adata, n_types=5, seed=seed)
    seconds = time.perf_counter() - start
    mapping = cplmixvi.metrics.hungarian_mapping(adata.obs["cell_type"], adata.obs["cplmixvi_type"])
    matched = {str(label): str(t) for t, label in mapping.items()}
    acc = cplmixvi.metrics.hungarian_accuracy(adata.obs["cell_type"], adata.obs["cplmixvi_type"])
    rows = []
    for grid, axis in TRAVERSALS:
        trav = model.traverse(n_steps=11, arm=0, grid=grid, state_dim=_state_dim(axis))
        scores = cplmixvi.tl.rank_state_genes(trav)
        for row in type_rows(adata, scores, matched, trav.attrs.get("directions")):
            rows.append(
                {"seed": seed, "grid": grid, "axis": axis, **row, "acc": acc, "fit_s": seconds}
            )
        if seed == 0 and (grid, axis) != ("prior", "pc1"):
            simulator_figure(trav, scores, adata, matched, _slug(grid, axis))
    return rows


def _state_dim(axis: str) -> str | None:
    return "pc1" if axis == "pc1" else None


def _slug(grid: str, axis: str) -> str:
    return grid if axis == "dims" else f"{grid}_{axis}"


def state_coordinate(states: np.ndarray, t: str, directions: dict | None) -> list[np.ndarray]:
    """Candidate state coordinates of cells: each dimension, or the projection on type t's pc1."""
    if directions is None:
        return [states[:, d] for d in range(states.shape[1])]
    return [states @ np.asarray(directions[t][0])]


def type_rows(
    adata, scores: pd.DataFrame, matched: dict[str, str], directions: dict | None = None
) -> list[dict]:
    """Recovery of each planted type's state genes, flat markers and state correlation."""
    truth = adata.uns["simulation"]
    best = best_over_dims(scores)
    markers_all = adata.var_names[adata.var["is_marker"]]
    states = adata.obsm["X_cplmixvi_state"]
    rows = []
    for k, name in enumerate(truth["types"]):
        cells = (adata.obs["cell_type"] == name).to_numpy()
        # unmatched when the fit uses fewer types: fall back to the type holding most of its cells
        t = matched.get(name, adata.obs["cplmixvi_type"][cells].astype(str).mode()[0])
        if t not in set(scores["type"].astype(str)):  # grid="cells" skips near-empty types
            rows.append({"type": name, "n_cells": int(cells.sum()), "inferred_type": t})
            continue
        own = best.loc[t]
        own.index = own.index.astype(str)
        members = (adata.obs["cplmixvi_type"].astype(str) == t).to_numpy()
        planted = set(adata.var_names[truth["response"][k] != 0])
        top = set(own.sort_values("score", ascending=False).index[: len(planted)])
        called = set(
            own.index[
                (own["log2fc"].abs() >= CALL_LOG2FC) & (own["spearman"].abs() >= CALL_SPEARMAN)
            ]
        )
        type_scores = scores[scores["type"] == t]
        marker_range = type_scores[type_scores["gene"].astype(str).isin(markers_all)]
        own_markers = adata.var_names[adata.var["marker_of"] == name]
        own_range = marker_range[marker_range["gene"].astype(str).isin(own_markers)]
        coords = state_coordinate(states[cells], t, directions)
        rho = max(abs(spearmanr(c, adata.obs["state"].to_numpy()[cells]).statistic) for c in coords)
        # what else the coordinate follows: the cells' library size
        rho_lib = max(
            abs(spearmanr(c, adata.obs["library"].to_numpy()[cells]).statistic) for c in coords
        )
        rows.append(
            {
                "type": name,
                "n_cells": int(cells.sum()),
                "inferred_type": t,
                "hungarian_matched": name in matched,
                # share of the inferred type's cells that are of this planted type
                "purity": float(cells[members].mean()),
                "n_planted": len(planted),
                "precision_at_n": len(top & planted) / len(planted),
                "n_called": len(called),
                "precision_called": len(called & planted) / max(len(called), 1),
                "recall_called": len(called & planted) / len(planted),
                "own_markers_flat": float((own_range["log2_range"] <= FLAT_RANGE).mean()),
                "all_markers_flat": float((marker_range["log2_range"] <= FLAT_RANGE).mean()),
                "max_marker_log2_range": float(marker_range["log2_range"].max()),
                "abs_spearman_state": float(rho),
                "abs_spearman_library": float(rho_lib),
            }
        )
    return rows


def simulator_figure(trav, scores, adata, matched, slug: str) -> None:
    """Fig. 4 style heatmap on the simulator: planted state genes vs markers, 3 types."""
    names = adata.uns["simulation"]["types"][:3]
    present = set(scores["type"].astype(str))  # grid="cells" skips near-empty types
    names = [n for n in names if n in matched and matched[n] in present]
    types = [matched[n] for n in names]
    best = best_over_dims(scores)
    dims = {
        t: best.loc[t].sort_values("score", ascending=False)["state_dim"].iloc[:5].mode()[0]
        for t in types
    }
    state_genes = adata.var_names[adata.var["is_state_gene"]].tolist()
    markers = [g for n in names for g in adata.var_names[adata.var["marker_of"] == n][:4]]
    axes = cplmixvi.pl.traversal_heatmap(
        trav,
        {"planted state genes": state_genes, "markers": markers},
        types=types,
        state_dim=dims,
        type_names={matched[n]: f"type {matched[n]} = {n}" for n in names},
        show=False,
    )
    axes[0].figure.savefig(FIGURES / f"simulator_traversal_{slug}.png", dpi=130)


def summarise_simulator(table: pd.DataFrame) -> pd.DataFrame:
    metrics = [
        "n_cells", "purity", "n_planted", "precision_at_n", "precision_called", "recall_called",
        "own_markers_flat", "all_markers_flat", "max_marker_log2_range", "abs_spearman_state",
        "abs_spearman_library",
    ]  # fmt: skip
    groups = [
        ((grid, axis, name), group)
        for (grid, axis), by_grid in table.groupby(["grid", "axis"], sort=False)
        for name, group in [*by_grid.groupby("type", sort=False), ("all types", by_grid)]
    ]
    rows = []
    for (grid, axis, name), group in groups:
        row = {"grid": grid, "axis": axis, "type": name}
        for m in metrics:
            values = group[m].to_numpy(np.float64)
            row[m] = (
                f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"
                if len(values) > 1
                else f"{values[0]:.3f}"
            )
        rows.append(row)
    return pd.DataFrame(rows)


# ----- MOp ------------------------------------------------------------------------------------
def mop(n_top: int = 10, model_dir: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    adata = sc.read_h5ad(MOP)
    start = time.perf_counter()
    if model_dir is not None and Path(model_dir).exists():  # reuse a fit of this script
        model = cplmixvi.CplMixVI.load(model_dir, adata)
        model.write_results(adata)
    else:
        model = fit(adata, n_types=44, seed=0)
        if model_dir is not None:
            model.save(model_dir)
    seconds = time.perf_counter() - start
    labels = adata.obs["cell_type"].astype(str)
    scores_clu = cplmixvi.metrics.clustering_scores(labels, adata.obs["cplmixvi_type"])
    mapping = {
        str(k): str(v)
        for k, v in cplmixvi.metrics.hungarian_mapping(labels, adata.obs["cplmixvi_type"]).items()
    }
    arm0 = model.get_type_probabilities(per_arm=True)[0].argmax(axis=1)
    arm0_counts = np.bincount(arm0, minlength=model.module.n_types)
    chosen = choose_types(adata, mapping, {str(k) for k in np.flatnonzero(arm0_counts >= 50)})
    genes, dependence = [], []
    for grid, axis in [("prior", "dims"), ("cells", "dims"), ("cells", "pc1")]:
        trav = model.traverse(arm=0, n_steps=11, grid=grid, state_dim=_state_dim(axis))
        scores = cplmixvi.tl.rank_state_genes(trav)
        top = cplmixvi.tl.top_state_genes(scores, n_genes=n_top, arm=0)
        dep = cplmixvi.tl.state_gene_type_dependence(scores)
        markers = {t: type_markers(adata, t, exclude=top[t]) for t in chosen}
        rows = gene_rows(chosen, mapping, scores, top, markers, dep.set_index("gene"))
        genes.append(pd.DataFrame(rows).assign(grid=grid, axis=axis))
        dependence.append(dep.assign(grid=grid, axis=axis))
        mop_figures(trav, scores, chosen, top, markers, mapping, _slug(grid, axis))
    overview_figures(adata, mapping)
    spread = prior_vs_cells(model, adata, mapping)
    info = {
        **scores_clu,
        "fit_s": seconds,
        "n_used_types": int(adata.obs["cplmixvi_type"].nunique()),
        "spread": spread,
    }
    return pd.concat(genes), pd.concat(dependence), info


def gene_rows(chosen, mapping, scores, top, markers, dependence) -> list[dict]:
    rows = []
    for t in chosen:
        best = best_over_dims(scores).loc[t]
        best.index = best.index.astype(str)
        for rank, gene in enumerate(top[t], start=1):
            rows.append(gene_row(t, mapping[t], "state (ranked)", rank, gene, best, dependence))
        flat = cplmixvi.tl.check_flat(scores[scores["type"] == t], markers[t])
        for rank, gene in enumerate(markers[t], start=1):
            row = gene_row(t, mapping[t], "marker", rank, gene, best, dependence)
            row["flat_all_dims"] = bool(flat.loc[flat["gene"].astype(str) == gene, "flat"].all())
            rows.append(row)
    return rows


def prior_vs_cells(model, adata, mapping) -> pd.DataFrame:
    """Per type (arm 0): s.d. of p(s|c) against the s.d. of its cells' state coordinates."""
    prior_sd = np.exp(0.5 * model.module.prior_logvar.detach().cpu().numpy()[0])
    states = adata.obsm["X_cplmixvi_state"]
    types = adata.obs["cplmixvi_type"].astype(str).to_numpy()
    rows = []
    for t in pd.unique(types):
        cells = states[types == t]
        if len(cells) >= 10:
            ratio = prior_sd[int(t)] / cells.std(axis=0)
            rows.append({"type": t, "label": mapping.get(t, ""), "n": len(cells), "ratio": ratio})
    return pd.DataFrame(rows)


def choose_types(adata, mapping: dict[str, str], allowed: set[str]) -> list[str]:
    """The purest matched L5/L6 glutamatergic type and the purest matched GABAergic type."""
    table = pd.crosstab(adata.obs["cplmixvi_type"].astype(str), adata.obs["cell_type"].astype(str))
    purity = {
        t: table.loc[t, label] / table.loc[t].sum()
        for t, label in mapping.items()
        if t in table.index
    }
    size = {t: table.loc[t].sum() for t in purity}
    ok = {t: p for t, p in purity.items() if size[t] >= 50 and t in allowed}
    glut = [t for t in ok if mapping[t].startswith(("L5", "L6"))]
    gaba = [t for t in ok if mapping[t].startswith(("Pvalb", "Sst", "Vip", "Lamp5"))]
    return [max(glut, key=ok.get), max(gaba, key=ok.get)]


def type_markers(adata, t: str, n: int = 6, exclude=()) -> list[str]:
    """Top genes by log2 fold change of the type's mean normalised expression vs the rest."""
    counts = adata.layers["counts"]
    norm = counts.multiply(1e4 / np.asarray(counts.sum(axis=1))).tocsr()
    inside = (adata.obs["cplmixvi_type"].astype(str) == t).to_numpy()
    mean_in = np.asarray(norm[inside].mean(axis=0)).ravel()
    mean_out = np.asarray(norm[~inside].mean(axis=0)).ravel()
    lfc = pd.Series(np.log2((mean_in + 1) / (mean_out + 1)), index=adata.var_names)
    lfc = lfc[(mean_in > 5) & ~lfc.index.isin(list(exclude))]
    return lfc.sort_values(ascending=False).index[:n].astype(str).tolist()


def gene_row(t, label, kind, rank, gene, best, dependence) -> dict:
    dep = dependence.loc[gene]
    dep = dep[dep["arm"] == 0].iloc[0] if isinstance(dep, pd.DataFrame) else dep
    return {
        "type": t,
        "matched_label": label,
        "gene_set": kind,
        "rank_in_set": rank,
        "gene": gene,
        "state_dim": best.loc[gene, "state_dim"],
        "log2fc": round(float(best.loc[gene, "log2fc"]), 3),
        "log2_range": round(float(best.loc[gene, "log2_range"]), 3),
        "spearman": round(float(best.loc[gene, "spearman"]), 3),
        "score": round(float(best.loc[gene, "score"]), 3),
        "type_dependent": bool(dep["type_dependent"]),
        "n_responding_types": int(dep["n_responding"]),
    }


def mop_figures(trav, scores, chosen, top, markers, mapping, slug: str) -> None:
    best = best_over_dims(scores)
    dims = {t: best.loc[t].loc[top[t], "state_dim"].mode()[0] for t in chosen}
    first, second = (f"state genes of {mapping[t]}" for t in chosen)
    sets = {first: top[chosen[0]], second: [g for g in top[chosen[1]] if g not in top[chosen[0]]]}
    seen = {g for v in sets.values() for g in v}
    sets["markers"] = list(dict.fromkeys(g for t in chosen for g in markers[t] if g not in seen))
    names = {t: f"type {t} = {mapping[t]}" for t in chosen}
    axes = cplmixvi.pl.traversal_heatmap(
        trav, sets, types=chosen, state_dim=dims, type_names=names, show=False
    )
    axes[0].figure.savefig(FIGURES / f"mop_traversal_{slug}.png", dpi=130)
    for t in chosen:
        own = {"state genes (ranked)": top[t], "markers": markers[t]}
        axes = cplmixvi.pl.traversal_heatmap(
            trav, own, types=[t], state_dim=dims[t], type_names=names, show=False
        )
        name = mapping[t].replace(" ", "_").replace("/", "")
        axes[0].figure.savefig(FIGURES / f"mop_traversal_{slug}_{name}.png", dpi=130)


def overview_figures(adata, mapping) -> None:
    ax = cplmixvi.pl.confusion(adata, "cplmixvi_type", "cell_type", order="cluster", show=False)
    ax.figure.savefig(FIGURES / "mop_confusion.png", dpi=110)
    sizes = adata.obs["cplmixvi_type"].value_counts()
    shown = [t for t in sizes.index.astype(str) if sizes[t] >= 30]
    axes = cplmixvi.pl.state_distributions(
        adata, types=shown, type_names={t: f"{t} {mapping.get(t, '')}" for t in shown}, show=False
    )
    axes[0].figure.savefig(FIGURES / "mop_state_distributions.png", dpi=110)


def in_child(settings: dict, function, *args) -> tuple:
    """``function(*args)`` in a fresh process with ``main``'s settings (module globals) and one
    torch thread; its result and a line describing the environment and the model setting."""
    globals().update(settings)
    torch.set_num_threads(1)
    env = (
        f"torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, CPU {platform.machine()}; "
        f"model: state_encoder={SETTING['state_encoder']!r}, state KL weight "
        f"{SETTING['kl_weight']}, KL warm-up over all epochs: {SETTING['kl_warmup']}, "
        f"n_state={SETTING['n_state']}, epochs: "
        f"{SETTING['epochs'] or str(SETTING['epochs_factor']) + ' x train default'}, "
        f"pretraining {SETTING['pretrain_factor']} x train default"
    )
    return function(*args), env


def main() -> None:
    require_bench_extra()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["simulator", "mop"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--model-dir", help="save the MOp fit here, or load it if it exists")
    parser.add_argument("--quick", action="store_true", help="smoke run; writes to /tmp")
    parser.add_argument("--results-dir", help="write tables and figures here instead")
    parser.add_argument("--state-encoder", default="separate", choices=["shared", "separate"])
    parser.add_argument("--state-kl-weight", type=float, default=0.25, help="1 for the ELBO")
    parser.add_argument(
        "--kl-warmup", action="store_true", help="warm the KL weight up from 0 over all epochs"
    )
    parser.add_argument("--n-state", type=int, default=2, help="state dimensions")
    parser.add_argument(
        "--epochs-factor", type=float, default=2.0, help="times CplMixVI.train's default epochs"
    )
    parser.add_argument("--epochs", type=int, help="epochs (overrides --epochs-factor)")
    parser.add_argument(
        "--pretrain-factor", type=float, default=0.75, help="pretraining, times the default epochs"
    )
    args = parser.parse_args()
    SETTING.update(
        state_encoder=args.state_encoder,
        kl_weight=args.state_kl_weight,
        kl_warmup=args.kl_warmup,
        n_state=args.n_state,
        epochs=args.epochs,
        epochs_factor=args.epochs_factor,
        pretrain_factor=args.pretrain_factor,
    )
    global RESULTS, FIGURES
    if args.quick:
        QUICK.update(max_epochs=3, n_cells=800)
        RESULTS = FIGURES = Path("/tmp/states_quick")
    if args.results_dir:
        RESULTS = FIGURES = Path(args.results_dir)
    RESULTS.mkdir(exist_ok=True)
    FIGURES.mkdir(parents=True, exist_ok=True)
    settings = {"SETTING": SETTING, "QUICK": QUICK, "RESULTS": RESULTS, "FIGURES": FIGURES}
    calls = []
    if "simulator" in args.parts:
        calls += [(in_child, (settings, simulator_rows, seed)) for seed in args.seeds]
    if "mop" in args.parts:
        calls.append((in_child, (settings, mop, 10, args.model_dir)))
    results = list(in_fresh_processes(calls, threads=1))
    if "simulator" in args.parts:
        env = results[0][1]
        table = pd.DataFrame([row for rows, _ in results[: len(args.seeds)] for row in rows])
        table.to_csv(RESULTS / "states_simulator.csv", index=False)
        summary = summarise_simulator(table)
        text = (
            "# Cell states on the simulator (benchmarks/states.py)\n\n"
            f"{env}; seeds {args.seeds}; mean ± s.d. over seeds.\n\n"
            + summary.to_markdown(index=False)
            + "\n\nPer seed: `states_simulator.csv`.\n"
        )
        (RESULTS / "states_simulator.md").write_text(text)
        print(text)
    if "mop" in args.parts:
        (genes, dependence, info), env = results[-1]
        genes.to_csv(RESULTS / "states_mop_genes.csv", index=False)
        dependence.to_csv(RESULTS / "states_mop_type_dependence.csv", index=False)
        n_dep = dependence.groupby(["grid", "axis"], sort=False)["type_dependent"].sum().to_dict()
        ratio = np.stack(info["spread"]["ratio"].to_numpy())
        text = (
            "# Cell states on MOp (benchmarks/states.py)\n\n"
            f"{env}; seed 0; K = 44; fit {info['fit_s']:.0f} s; ACC {info['acc']:.3f}, "
            f"ARI {info['ari']:.3f}; {info['n_used_types']} types used.\n\n"
            f"s.d. of p(s|c) / s.d. of the type's cells' states (arm 0, {len(ratio)} types with "
            f">= 10 cells), median per state dimension: {np.median(ratio, axis=0).round(2)}, "
            f"range {ratio.min():.2f}-{ratio.max():.2f}.\n\n"
            f"Type-dependent genes (arm 0, of 500) per (grid, axis): {n_dep}.\n\n"
            + genes.to_markdown(index=False)
            + "\n\nFigures: `docs/figures/mop_traversal_{prior,cells,cells_pc1}*.png`, "
            "`mop_confusion.png`, "
            "`mop_state_distributions.png`.\n"
        )
        (RESULTS / "states_mop.md").write_text(text)
        print(text)


if __name__ == "__main__":
    main()
