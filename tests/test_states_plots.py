"""Confusion ordering by a taxonomy, and the issue-5 plots (Axes, non-empty images)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from matplotlib.axes import Axes

import cplmixvi

# A tiny dendrogram in the Allen format: ((B, (D, A)), C), leaves left to right B, D, A, C.
TREE = pd.DataFrame(
    {
        "x": [2.5, 1.8, 2.5, 1.0, 2.0, 3.0, 4.0],
        "leaf": ["NA", "NA", "NA", "TRUE", "TRUE", "TRUE", "TRUE"],
        "label": ["n1", "n2", "n3", "B", "D", "A", "C"],
        "parent": ["NA", "n1", "n2", "n2", "n3", "n3", "n1"],
    }
)


def _labelled(seed: int = 0) -> AnnData:
    """Reference labels A-D and inferred types 0-4 with a known overlap."""
    pairs = {"A": "3", "B": "0", "C": "1", "D": "2"}
    rng = np.random.default_rng(seed)
    labels, types = [], []
    for label, t in pairs.items():
        n = {"A": 40, "B": 30, "C": 20, "D": 10}[label]
        labels += [label] * n
        extra = 4 if label == "C" else 0  # type 4 is mostly C
        types += [t] * (n - 2 - extra) + ["4"] * extra + [rng.choice(list(pairs.values()))] * 2
    obs = pd.DataFrame({"cell_type": labels, "cplmixvi_type": pd.Categorical(types)})
    obs.index = obs.index.astype(str)
    return AnnData(X=np.zeros((len(obs), 1), dtype=np.float32), obs=obs)


def test_tree_leaf_order_follows_x(tmp_path):
    path = tmp_path / "tree.csv"
    TREE.to_csv(path, index=False)
    assert cplmixvi.tl.tree_leaf_order(path) == ["B", "D", "A", "C"]
    with pytest.raises(ValueError, match="lacks the columns"):
        cplmixvi.tl.tree_leaf_order(TREE.drop(columns="x"))


def test_confusion_table_follows_tree_and_matching():
    adata = _labelled()
    table = cplmixvi.tl.confusion_table(adata, order="tree", tree=TREE, normalize=None)
    assert table.index.tolist() == ["B", "D", "A", "C"]
    # matched types sit at their label's row; the extra type 4 after its best label (C)
    assert table.columns.tolist() == ["0", "2", "3", "1", "4"]
    assert table.to_numpy().sum() == adata.n_obs
    assert table.attrs["matching"] == {"0": "B", "1": "C", "2": "D", "3": "A"}
    rows = cplmixvi.tl.confusion_table(adata, order="tree", tree=TREE)
    assert np.allclose(rows.sum(axis=1), 1.0)
    with pytest.warns(UserWarning, match="not leaves of the tree"):
        small = cplmixvi.tl.confusion_table(adata, order="tree", tree=TREE.iloc[[0, 3, 4, 5]])
    assert small.index.tolist() == ["B", "D", "A", "C"]  # C is missing from the tree: last
    clustered = cplmixvi.tl.confusion_table(adata, order="cluster")
    assert sorted(clustered.index) == ["A", "B", "C", "D"]
    with pytest.raises(ValueError, match="needs tree"):
        cplmixvi.tl.confusion_table(adata, order="tree")


def test_confusion_plot_ordered_by_tree(tmp_path):
    adata = _labelled()
    ax = cplmixvi.pl.confusion(adata, order="tree", tree=TREE, show=False)
    assert isinstance(ax, Axes)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["B", "D", "A", "C"]
    assert [t.get_text() for t in ax.get_xticklabels()][:4] == ["0", "2", "3", "1"]
    path = tmp_path / "confusion.png"
    ax.figure.savefig(path)
    assert path.stat().st_size > 5_000


def _traversal() -> pd.DataFrame:
    steps = np.arange(5)
    rows = []
    for t, sign in (("0", 1.0), ("1", -1.0)):
        for d in (0, 1):
            for j in steps:
                for gene, slope in (("up", sign), ("flat", 0.0), ("m", 0.05)):
                    value = 100 * 2.0 ** (slope * (j - 2) * (d + 1))
                    rows.append((t, 0, d, j, 0.1 + 0.2 * j, j - 2.0, gene, value))
    columns = ["type", "arm", "state_dim", "step", "quantile", "state", "gene", "expression"]
    trav = pd.DataFrame(rows, columns=columns)
    trav["type"] = pd.Categorical(trav["type"])
    trav.attrs["expression"] = "normalized"
    return trav


def test_traversal_heatmap(tmp_path):
    trav = _traversal()
    axes = cplmixvi.pl.traversal_heatmap(
        trav,
        {"state": ["up"], "markers": ["flat", "m"]},
        state_dim={"0": 1, "1": 0},
        type_names={"0": "first"},
        pseudocount=0.0,
        show=False,
    )
    assert len(axes) == 2 and all(isinstance(ax, Axes) for ax in axes)
    assert axes[0].get_title() == "first\nstate dim 1"
    image = axes[0].get_images()[0].get_array()
    assert image.shape == (3, 5)
    # log2 fold change against the middle step: +-4 for "up" along dim 1 of type 0
    assert image[0, 0] == pytest.approx(-4.0) and image[0, -1] == pytest.approx(4.0)
    assert np.allclose(image[1], 0.0)
    assert axes[1].get_images()[0].get_array()[0, -1] == pytest.approx(-2.0)
    path = tmp_path / "heatmap.png"
    axes[0].figure.savefig(path)
    assert path.stat().st_size > 5_000
    with pytest.raises(KeyError, match="Genes not in the traversal"):
        cplmixvi.pl.traversal_heatmap(trav, ["Fos"])
    with pytest.raises(KeyError, match="Types not in the traversal"):
        cplmixvi.pl.traversal_heatmap(trav, ["up"], types=["7"])


def test_state_distributions(tmp_path):
    rng = np.random.default_rng(0)
    adata = _labelled()
    adata.obsm["X_cplmixvi_state"] = rng.normal(size=(adata.n_obs, 2))
    axes = cplmixvi.pl.state_distributions(adata, type_names={"3": "3 (A)"}, show=False)
    assert len(axes) == 2 and all(isinstance(ax, Axes) for ax in axes)
    ticks = [t.get_text() for t in axes[0].get_xticklabels()]
    assert ticks[0] == "3 (A)"  # largest type first
    path = tmp_path / "states.png"
    axes[0].figure.savefig(path)
    assert path.stat().st_size > 5_000
    with pytest.raises(KeyError, match="write_results"):
        cplmixvi.pl.state_distributions(adata, state_key="X_missing")
