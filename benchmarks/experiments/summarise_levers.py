"""Each lever's rows of ``consensus_levers.jsonl`` against the lever ``default`` rows there.

Per data set: the lever's mean ACC / ARI / AMI / categories over its seeds and the mean
difference from the default fit of the same data set and seed (``d*``), then the mean
difference over every run. The ``default`` rows are the package defaults until 2026-12-04
(seeds 0-2 copied from that day's ``clustering.csv``, ``source``), against which every lever of
the file was screened; today's default is the lever ``ep1.25,pt0.75``. Where a lever has rows
made in the defaults' environment (the ``versions`` column), only those are compared: the same
code and seed end elsewhere under other library versions. ``--against`` compares with another
lever's rows instead (e.g. ``ep1.25,pt0.75``, the defaults of 2026-12-04). Usage::

    python benchmarks/experiments/summarise_levers.py zscore pt0.75
    python benchmarks/experiments/summarise_levers.py gstart0.4 --against ep1.25,pt0.75
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent.parent / "results"


def summarise(lever: str, against: str = "default") -> pd.DataFrame:
    """Per-data-set means of one lever and of its differences from the lever ``against``."""
    screen = pd.read_json(RESULTS / "consensus_levers.jsonl", lines=True)
    screen = screen.rename(columns={"types_with_cells": "n_clusters"})
    rows = screen[screen["lever"] == lever]
    base = screen[screen["lever"] == against]
    if "versions" in rows and rows["versions"].isin(base["versions"]).any():
        rows = rows[rows["versions"].isin(base["versions"])].drop(columns="versions")
    both = rows.merge(base, on=["dataset", "seed"], suffixes=("", "_default"))
    scores = ["acc", "ari", "ami", "n_clusters"]
    for m in scores:
        both[f"d{m}"] = both[m] - both[f"{m}_default"]
    cols = scores + [f"d{m}" for m in scores]
    table = both.groupby("dataset")[cols].mean()
    table["runs"] = both.groupby("dataset").size()
    table.loc["all"] = [*both[cols].mean(), len(both)]
    return table.round(3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("levers", nargs="+")
    parser.add_argument("--against", default="default", help="the lever compared with")
    args = parser.parse_args()
    for name in args.levers:
        print(f"## {name}\n{summarise(name, args.against).to_markdown()}\n")
