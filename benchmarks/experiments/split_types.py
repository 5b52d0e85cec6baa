"""Which reference types a default fit leaves split over categories, and which it merges.

For one data set and seed: the package defaults' fused types, then every reference type with at
least ``--share`` of its cells outside its largest category, and every category with at least
that share from a second reference type. Appends a section to
``benchmarks/results/split_types.md``. It showed that MOp's poor seeds are large types left in
two or more categories, not small ones merged. Usage::

    python benchmarks/experiments/split_types.py --dataset mop_10x --seed 3
    python benchmarks/experiments/split_types.py --dataset mop_10x --seed 2 --n-arms 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
OUT = HERE.parent / "results" / "split_types.md"


def top(counts: pd.Series, n: int = 3) -> str:
    """The ``n`` largest entries of ``counts`` as ``name: count``."""
    largest = counts.sort_values(ascending=False).iloc[:n]
    return ", ".join(f"{name}: {value}" for name, value in largest.items() if value)


def split_and_merged(truth, labels, share: float) -> tuple[list[str], list[str]]:
    """Lines for split reference types and for categories that merge reference types."""
    table = pd.crosstab(truth, labels)
    split = [
        f"- {t} ({table.loc[t].sum()} cells): {top(table.loc[t])}"
        for t in table.sum(1).sort_values(ascending=False).index
        if table.loc[t].sort_values().iloc[-2] >= share * table.loc[t].sum()
    ]
    merged = [
        f"- category {c} ({table[c].sum()} cells): {top(table[c])}"
        for c in table.columns
        if len(table) > 1 and table[c].sort_values().iloc[-2] >= share * table[c].sum()
    ]
    return split, merged


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="mop_10x")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--share", type=float, default=0.15)
    parser.add_argument("--n-arms", type=int, default=2)
    args = parser.parse_args()

    import scvi
    import torch
    from clustering import DATASETS, load

    from cplmixvi import CplMixVI
    from cplmixvi.metrics import clustering_scores

    torch.set_num_threads(1)
    adata = load(args.dataset)
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    scvi.settings.seed = args.seed
    CplMixVI.setup_anndata(adata)
    model = CplMixVI(adata, n_types=DATASETS[args.dataset], n_arms=args.n_arms)
    model.train(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    labels = model.get_type_assignments()["type"].astype(str).to_numpy()
    scores = clustering_scores(truth, labels)
    split, merged = split_and_merged(truth, labels, args.share)
    text = [
        f"\n## {args.dataset}, seed {args.seed}, {args.n_arms} arms: ACC {scores['acc']:.3f},"
        f" ARI {scores['ari']:.3f}, AMI {scores['ami']:.3f}, {len(set(labels))} categories\n",
        f"Reference types with at least {args.share:.0%} of their cells outside their largest"
        " category:\n",
        *split,
        f"\nCategories with at least {args.share:.0%} of their cells from a second type:\n",
        *merged,
    ]
    with OUT.open("a") as handle:
        handle.write("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
