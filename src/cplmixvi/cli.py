"""Command line: ``cplmixvi demo`` and ``cplmixvi fit``.

``cplmixvi demo`` trains on the 700 PBMCs bundled with scanpy and scores the inferred types
against the reference labels; ``cplmixvi fit IN.h5ad --n-types K`` does the same on any file
(``--n-types auto``: an upper bound from the number of cells, pruned to the types found).
Both write the annotated AnnData, a UMAP figure and the trained model to ``--out``.

The command sets no environment variables. Set ``OMP_WAIT_POLICY=PASSIVE`` before it starts when
other busy processes share the cores (``scripts/demo.sh`` does); see ``docs/speed.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["main"]

DEMO_EPOCHS = 100
EPOCHS_RULE = "min(400, max(20, 300000 // n_cells))"  # default_max_epochs, tested to agree
_LIKELIHOODS = ("nb", "zinb", "normal", "bernoulli")


@dataclass
class _Job:
    """What one run trains on and where it writes."""

    adata: object
    out: Path
    stem: str
    n_types: int | str
    likelihood: str
    objective: str = "consensus"
    n_arms: int = 2
    n_state: int = 2
    epochs: int | None = None
    seed: int = 0
    layer: str | None = None
    batch_key: str | None = None
    labels_key: str | None = None
    accelerator: str = "cpu"
    threads: int = 1
    h5ad: str = ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cplmixvi`` command line.

    Parameters
    ----------
    argv
        Arguments without the program name; ``sys.argv[1:]`` when ``None``.

    Returns
    -------
    int
        Exit status: 0 on success, 2 on a usage or input error (the message is printed to
        stderr as ``error: ...``).
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse has already reported
        return int(exit_.code or 0)
    try:
        return args.run(args)
    except (ValueError, TypeError, KeyError, FileNotFoundError, IsADirectoryError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 2


# ----- argument parsing ----------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cplmixvi",
        description="Cell types and cell states with coupled mixture VAEs (cpl-mixVAE).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="train on 700 PBMCs bundled with scanpy and score against their 10 labels",
        description="Train CplMixVI (10 types, log-normalised data, normal likelihood) on "
        "scanpy's pbmc68k_reduced and score the types against obs['bulk_labels'].",
    )
    demo.add_argument(
        "--out", metavar="DIR", default="cplmixvi_demo", help="output folder [%(default)s]"
    )
    demo.add_argument(
        "--epochs",
        metavar="N",
        type=_positive,
        default=DEMO_EPOCHS,
        help="training epochs [%(default)s]",
    )
    demo.add_argument(
        "--n-arms", metavar="A", type=_positive, default=2, help="coupled arms [%(default)s]"
    )
    _common(demo)
    demo.set_defaults(run=_run_demo)

    fit = sub.add_parser(
        "fit",
        help="train on an .h5ad file",
        description="Train CplMixVI on an .h5ad file and write types, states, a UMAP and the "
        "model to --out.",
    )
    fit.add_argument("input", metavar="IN.h5ad", help="AnnData file")
    fit.add_argument(
        "--n-types",
        metavar="K",
        type=_n_types,
        required=True,
        help="number of types, or 'auto': an upper bound from the number of cells, pruned",
    )
    fit.add_argument("--layer", metavar="L", help="layer to model instead of .X")
    fit.add_argument("--batch-key", metavar="B", help="obs column with the batch of each cell")
    fit.add_argument(
        "--likelihood",
        choices=_LIKELIHOODS,
        default="nb",
        help="nb/zinb for raw counts, normal for log-normalised data [%(default)s]",
    )
    fit.add_argument(
        "--objective",
        choices=("consensus", "paper"),
        default="consensus",
        help="consensus (pretraining, k-means start, shared target) or the paper's Eq. 7 "
        "[%(default)s]",
    )
    fit.add_argument(
        "--n-arms", metavar="A", type=_positive, default=2, help="coupled arms [%(default)s]"
    )
    fit.add_argument(
        "--n-state", metavar="D", type=_positive, default=2, help="state dimensions [%(default)s]"
    )
    fit.add_argument(
        "--epochs",
        metavar="N",
        type=_positive,
        default=None,
        help=f"training epochs [{EPOCHS_RULE}, as CplMixVI.train]",
    )
    fit.add_argument(
        "--labels-key", metavar="COL", help="obs column with reference labels to score against"
    )
    fit.add_argument(
        "--out", metavar="DIR", default="cplmixvi_out", help="output folder [%(default)s]"
    )
    fit.add_argument(
        "--accelerator",
        metavar="NAME",
        default="auto",
        help="Lightning accelerator: cpu, gpu, auto [%(default)s]",
    )
    _common(fit)
    fit.set_defaults(run=_run_fit)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed", metavar="S", type=int, default=0, help="scvi.settings.seed [%(default)s]"
    )
    parser.add_argument(
        "--threads",
        metavar="N",
        type=_positive,
        default=None,
        help="torch CPU threads [demo: 1; fit: all cores, up to 8]",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _n_types(text: str) -> int | str:
    return "auto" if text == "auto" else _positive(text)


# ----- subcommands ---------------------------------------------------------------------------
def _run_demo(args: argparse.Namespace) -> int:
    from cplmixvi.data import pbmc68k_reduced

    job = _Job(
        adata=pbmc68k_reduced(),
        out=Path(args.out),
        stem="demo",
        n_types=10,
        likelihood="normal",
        n_arms=args.n_arms,
        epochs=args.epochs,
        seed=args.seed,
        labels_key="bulk_labels",
        accelerator="cpu",
        threads=args.threads or 1,  # a model this small trains fastest on one thread
    )
    job.h5ad = "demo.h5ad"
    return _run(job, "pbmc68k_reduced (scanpy)")


def _run_fit(args: argparse.Namespace) -> int:
    from cplmixvi.data import read

    path = Path(args.input)
    adata = read(path)
    if not _is_anndata(adata):
        raise ValueError(
            f"{str(path)!r} holds a {type(adata).__name__}; `cplmixvi fit` takes an .h5ad "
            "AnnData file (use CplMixVI.setup_mudata from Python for MuData)."
        )
    if args.labels_key is not None and args.labels_key not in adata.obs:
        raise KeyError(
            f"--labels-key {args.labels_key!r} is not a column of obs "
            f"(available: {list(adata.obs.columns)})."
        )
    job = _Job(
        adata=adata,
        out=Path(args.out),
        stem=path.stem,
        n_types=args.n_types,
        likelihood=args.likelihood,
        objective=args.objective,
        n_arms=args.n_arms,
        n_state=args.n_state,
        epochs=args.epochs,
        seed=args.seed,
        layer=args.layer,
        batch_key=args.batch_key,
        labels_key=args.labels_key,
        accelerator=args.accelerator,
        threads=args.threads or _default_threads(),
    )
    job.h5ad = f"{path.stem}_cplmixvi.h5ad"
    return _run(job, str(path))


# ----- the shared run ------------------------------------------------------------------------
def _run(job: _Job, source: str) -> int:
    """Train, write results, score, plot and save; print a summary. Returns the exit status."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(job.threads)
    try:
        return _train_and_write(job, source)
    finally:
        torch.set_num_threads(threads)


def _train_and_write(job: _Job, source: str) -> int:
    _quiet()
    import scvi

    from cplmixvi import CplMixVI
    from cplmixvi.metrics import arm_agreement, clustering_scores

    adata = job.adata
    start = time.perf_counter()
    scvi.settings.seed = job.seed
    CplMixVI.setup_anndata(adata, layer=job.layer, batch_key=job.batch_key)
    model = CplMixVI(
        adata,
        n_types=job.n_types,
        n_state=job.n_state,
        n_arms=job.n_arms,
        gene_likelihood=job.likelihood,
        objective=job.objective,
    )
    print(
        f"cplmixvi: {source}: {adata.n_obs} cells x {adata.n_vars} genes, "
        f"{model.module.n_types} categories{' (auto)' * (job.n_types == 'auto')}, "
        f"{job.n_arms} arm(s), likelihood {job.likelihood!r}",
        flush=True,
    )
    model.train(
        max_epochs=job.epochs,
        accelerator=job.accelerator,
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
    )
    train_s = time.perf_counter() - start
    epochs = model.history["elbo_train"].shape[0] if "elbo_train" in model.history else job.epochs
    model.write_results(adata)

    job.out.mkdir(parents=True, exist_ok=True)
    png = job.out / f"{job.stem}_umap.png"
    _save_umap(adata, png, job.labels_key, job.seed)
    h5ad = job.out / job.h5ad
    adata.write_h5ad(h5ad)
    model_dir = job.out / "model"
    model.save(str(model_dir), overwrite=True)
    total_s = time.perf_counter() - start

    rows = [("cells", f"{adata.n_obs}"), ("types found", _n_found(adata, model.module.n_types))]
    if job.labels_key is not None:
        scores = clustering_scores(adata.obs[job.labels_key], adata.obs["cplmixvi_type"])
        n_ref = adata.obs[job.labels_key].nunique()
        rows += [
            (f"{name.upper()} vs {job.labels_key} ({n_ref})", f"{scores[name]:.3f}")
            for name in ("acc", "ari", "ami", "nmi", "kl")
        ]
    rows += [
        ("arm agreement", f"{arm_agreement(model.get_type_probabilities(per_arm=True)):.3f}"),
        ("mean confidence", f"{adata.obs['cplmixvi_confidence'].mean():.3f}"),
        ("epochs", f"{epochs}"),
        ("training time", f"{train_s:.1f} s"),
        ("total time", f"{total_s:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print()
    for what, path in (("annotated data", h5ad), ("UMAP", png), ("model", model_dir)):
        print(f"  {what:<14} {path}")
    return 0


def _default_threads() -> int:
    """All cores, up to 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def _n_found(adata, n_types: int) -> str:
    return f"{adata.obs['cplmixvi_type'].nunique()} of {n_types}"


def _save_umap(adata, path: Path, labels_key: str | None, seed: int) -> None:
    import matplotlib.pyplot as plt

    from cplmixvi import pl, tl

    tl.types_umap(adata, seed=seed)  # obsm["X_cplmixvi_umap"], saved with the data
    fig = pl.types_umap(adata, labels_key=labels_key, return_fig=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _is_anndata(obj) -> bool:
    from anndata import AnnData

    return isinstance(obj, AnnData)


def _quiet() -> None:
    """Silence Lightning's and scvi-tools' start-up chatter; keep warnings that matter."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for message in (
        ".*does not have many workers.*",
        ".*smaller than the logging interval.*",
        ".*LeafSpec.*",
        ".*litlogger.*",
        ".*set_bad function will be deprecated.*",
    ):
        warnings.filterwarnings("ignore", message=message)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
