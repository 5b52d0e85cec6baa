"""Each lever's rows of ``consensus_levers.jsonl`` against the lever ``default`` rows there.

Per data set: the lever's mean ACC / ARI / AMI / categories over its seeds and the mean
difference from the default fit of the same data set and seed (``d*``), then the mean
difference over every run. The ``default`` rows are the package defaults until 2026-12-04
(seeds 0-2 copied from that day's ``clustering.csv``, ``source``), against which every lever of
the file was screened; today's default is the lever ``ep1.25,pt0.75``. Where a lever has rows
made in the defaults' environment (the ``versions`` column), only those are compared: the same
code and seed end elsewhere under other library versions. ``--against`` compares with another
lever's rows instead (e.g. ``ep1.25,pt0.75``, the defaults of 2026-12-04).

``--table`` writes ``benchmarks/results/consensus_levers_table.md``, the lever table of
``docs/model.md``: every screened lever (``SCREENED``: what it changes, the rows it is compared
with, the verdict of its day) with its mean differences over the paired fits. Levers screened
before 2026-12-04 were compared with the defaults of their day, whose rows the file no longer
holds (its ``default`` rows were replaced by those of 2026-12-04): their figures are not
reproducible and the table leaves them out. Usage::

    python benchmarks/experiments/summarise_levers.py zscore pt0.75
    python benchmarks/experiments/summarise_levers.py gstart0.4 --against ep1.25,pt0.75
    python benchmarks/experiments/summarise_levers.py --table
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import require_bench_extra  # noqa: E402

RESULTS = Path(__file__).resolve().parent.parent / "results"
#: every lever of the screen: what it changes, the rows it is compared with (empty: the
#: defaults of its day, whose rows are no longer in the file; ``clustering.csv``: today's
#: defaults there; ``<lever>@<day>``: a lever rerun that day) and the verdict of its day
SCREENED = Path(__file__).resolve().parent / "levers.csv"
SETS = {"mop_10x": "MOp", "pbmc_10x_4k": "PBMC", "worm_neuron": "worm", "mouse_bladder": "bladder"}


def paired(lever: str, against: str) -> pd.DataFrame:
    """The lever's fits joined to the ``against`` fits of the same data set and seed, with the
    differences ``d<score>``."""
    screen = pd.read_json(RESULTS / "consensus_levers.jsonl", lines=True)
    screen = screen.rename(columns={"types_with_cells": "n_clusters"})
    if against == "clustering.csv":  # today's package defaults, as benchmarks/clustering.py ran
        defaults = pd.read_csv(RESULTS / "clustering.csv").query("method == 'cplmixvi'")
        screen = pd.concat([screen, defaults.assign(lever=against)], ignore_index=True)
    rows = screen[screen["lever"] == lever]
    base = screen[screen["lever"] == against]
    if "versions" in rows and rows["versions"].isin(base["versions"]).any():
        rows = rows[rows["versions"].isin(base["versions"])].drop(columns="versions")
    both = rows.merge(base, on=["dataset", "seed"], suffixes=("", "_default"))
    for m in ("acc", "ari", "ami", "n_clusters"):
        both[f"d{m}"] = both[m] - both[f"{m}_default"]
    return both


def summarise(lever: str, against: str = "default") -> pd.DataFrame:
    """Per-data-set means of one lever and of its differences from the lever ``against``."""
    both = paired(lever, against)
    scores = ["acc", "ari", "ami", "n_clusters"]
    cols = scores + [f"d{m}" for m in scores]
    table = both.groupby("dataset")[cols].mean()
    table["runs"] = both.groupby("dataset").size()
    table.loc["all"] = [*both[cols].mean(), len(both)]
    return table.round(3)


def lever_table() -> str:
    """The markdown table of every ``SCREENED`` lever."""
    lines = [
        "| lever | what changes | against | fits | dACC | dARI (s.e.) | dAMI | dARI per set (fits) "
        "| verdict |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    levers = pd.read_csv(SCREENED, keep_default_na=False)
    for lever, against, what, verdict in levers.itertuples(index=False):
        cells = ["its day's defaults (rows replaced)", "", "", "", "", ""]
        if against:
            both = paired(lever, against)
            per_set = both.groupby("dataset")["dari"].agg(["mean", "size"])
            cells = [
                f"`{against}`",
                str(len(both)),
                f"{both['dacc'].mean():+.3f}",
                f"{both['dari'].mean():+.3f}"
                + (f" ({both['dari'].sem():.3f})" if len(both) > 1 else ""),
                f"{both['dami'].mean():+.3f}",
                ", ".join(
                    f"{SETS[d]} {m:+.3f} ({n:.0f})" for d, (m, n) in per_set.iterrows() if d in SETS
                ),
            ]
        lines.append(f"| `{lever}` | {what} | " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    require_bench_extra()
    parser = argparse.ArgumentParser()
    parser.add_argument("levers", nargs="*")
    parser.add_argument("--against", default="default", help="the lever compared with")
    parser.add_argument("--table", action="store_true", help="write the table of every lever")
    args = parser.parse_args()
    if args.table:
        (RESULTS / "consensus_levers_table.md").write_text(lever_table())
    for name in args.levers:
        print(f"## {name}\n{summarise(name, args.against).to_markdown()}\n")
