"""Consensus of the arms (cplmixvi.tl): agreement, fused labels, K selection and its plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from sklearn.metrics.cluster import contingency_matrix

from cplmixvi import pl, tl
from cplmixvi.model._pruning import auto_upper_bound, weak_types

N_TYPES = 5


def _one_hot(labels: np.ndarray, n_types: int = N_TYPES, eps: float = 0.0) -> np.ndarray:
    """Probabilities peaked on ``labels`` (arms, cells) -> (arms, cells, n_types)."""
    probs = np.full((*labels.shape, n_types), eps)
    np.put_along_axis(probs, labels[..., None], 1.0 - eps * (n_types - 1), axis=-1)
    return probs


def _planted_labels() -> np.ndarray:
    """Arm labels: 40 cells each of types 0-3, none of type 4; arm 1 moves 10 cells 2 -> 3."""
    base = np.repeat(np.arange(4), 40)
    other = base.copy()
    other[np.flatnonzero(base == 2)[:10]] = 3
    return np.stack([base, other])


@pytest.mark.parametrize("n_arms", [2, 3, 5])
def test_agreement_is_one_for_identical_arms(n_arms):
    rng = np.random.default_rng(n_arms)
    probs = rng.dirichlet(np.ones(N_TYPES), size=50)
    probs[:, 4] = 0.0  # an empty category: agreement 0, not NaN
    probs /= probs.sum(1, keepdims=True)
    table = tl.category_agreement(np.stack([probs] * n_arms))
    used = table["n_cells"] > 0
    assert used.sum() == 4 and table.loc[4, "n_cells"] == 0
    np.testing.assert_array_equal(table.loc[used, "agreement"], 1.0)
    np.testing.assert_array_equal(table.loc[used, "min_pair_agreement"], 1.0)
    assert table.loc[4, "agreement"] == 0.0
    assert table["n_cells"].sum() == 50


def test_agreement_reflects_a_planted_disagreement_exactly():
    labels = _planted_labels()
    table = tl.category_agreement(_one_hot(labels, eps=1e-3))
    # type 2: both arms agree on 30 cells, arm 0 has 40 -> 30/40;
    # type 3: 40 shared cells, arm 1 has 50 -> 40/50; types 0 and 1 untouched
    np.testing.assert_allclose(table["agreement"], [1.0, 1.0, 0.75, 0.8, 0.0])


def test_agreement_averages_all_pairs_of_arms():
    labels = _planted_labels()
    three = np.stack([labels[0], labels[0], labels[1]])  # pairs: (0,1) agree, (0,2) (1,2) not
    table = tl.category_agreement(_one_hot(three))
    np.testing.assert_allclose(table["agreement"], [1, 1, (1 + 0.75 * 2) / 3, (1 + 0.8 * 2) / 3, 0])
    np.testing.assert_allclose(table["min_pair_agreement"], [1, 1, 0.75, 0.8, 0])


def test_agreement_restricted_to_given_types():
    table = tl.category_agreement(_one_hot(_planted_labels()), types=[3, 1])
    assert list(table.index) == [3, 1]
    with pytest.raises(ValueError, match="category ids"):
        tl.category_agreement(_one_hot(_planted_labels()), types=[7])


def test_agreement_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2 arms"):
        tl.category_agreement(np.full((1, 4, 3), 1 / 3))
    with pytest.raises(ValueError, match="n_arms, n_cells, n_types"):
        tl.category_agreement(np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match="not log-probabilities"):
        tl.category_agreement(np.log(np.full((2, 4, 3), 1 / 3)))


def test_co_assignment_is_the_contingency_table():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    np.testing.assert_array_equal(tl.co_assignment(a, b, 4), contingency_matrix(a, b))


def test_consensus_fuses_the_arms():
    labels = _planted_labels()
    probs = _one_hot(labels, eps=1e-3)
    probs[1, :, 2] += 0.2  # arm 1 leans to type 2 everywhere
    probs /= probs.sum(-1, keepdims=True)
    table = tl.consensus(probs, obs_names=[f"c{i}" for i in range(labels.shape[1])])
    geo = np.exp(np.log(probs).mean(0)).argmax(1)
    np.testing.assert_array_equal(table["type"], geo)
    rows = np.arange(labels.shape[1])
    np.testing.assert_allclose(table["confidence"], probs[:, rows, geo].mean(0))
    np.testing.assert_allclose(table["arm_agreement"], (labels == geo).mean(0))
    assert table.index[0] == "c0"


def test_consensus_with_pruned_zero_columns():
    labels = _planted_labels()
    probs = _one_hot(labels)  # exact zeros everywhere else, arms disagree on 10 cells
    table = tl.consensus(probs)
    assert np.isfinite(table["confidence"]).all()
    assert set(table["type"]) <= {0, 1, 2, 3}


def test_weak_types_are_the_empty_then_the_inconsistent_ones():
    table = tl.category_agreement(_one_hot(_planted_labels(), eps=1e-3))
    # agreement 1, 1, 0.75, 0.8, 0; type 4 holds no cell
    assert weak_types(table, threshold=0.5, min_cells=1) == [4]
    assert weak_types(table, threshold=0.9, min_cells=1) == [4, 2, 3]
    # every type holds 40 fused cells: with min_cells=41 all are empty, ordered by agreement
    assert weak_types(table, threshold=0.5, min_cells=41) == [4, 2, 3, 0, 1]
    assert weak_types(table, threshold=0.5, min_cells=40) == [4]
    assert weak_types(table.drop(index=4), threshold=0.5, min_cells=1) == []


def test_auto_upper_bound_follows_the_number_of_cells():
    sizes = (40, 1_000, 4_271, 11_444, 10**6)
    assert [auto_upper_bound(n) for n in sizes] == [20, 30, 42, 100, 100]


def _history() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "round": range(5),
            "n_types": [8, 7, 6, 5, 4],
            "mean_agreement": [0.6, 0.8, 0.93, 0.97, 0.99],
            "min_agreement": [0.0, 0.5, 0.85, 0.96, 0.97],
            "n_empty": [1, 0, 0, 0, 0],
        }
    )


def test_select_n_types_from_the_history():
    history = _history()
    assert tl.select_n_types(history, threshold=0.95) == 5
    assert tl.select_n_types(history, threshold=0.9, criterion="mean") == 6
    # never reached: the K with the highest agreement
    assert tl.select_n_types(history, threshold=0.999) == 4
    with pytest.raises(ValueError, match="criterion"):
        tl.select_n_types(history, criterion="median")
    with pytest.raises(ValueError, match="run model.prune"):
        tl.select_n_types(object())


def test_pruning_curve_plot(tmp_path):
    history = _history()
    agreement = pd.DataFrame(np.linspace(0, 1, 5 * 8).reshape(5, 8))
    ax = pl.pruning_curve(history, threshold=0.95, selected=5, agreement=agreement, show=False)
    assert isinstance(ax, Axes)
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_array_equal(lines["mean over categories"].get_xdata(), [8, 7, 6, 5, 4])
    np.testing.assert_array_equal(
        lines["least consistent category"].get_ydata(), history["min_agreement"]
    )
    assert ax.get_xlim()[0] > ax.get_xlim()[1]  # K decreases to the right
    assert len(ax.collections[0].get_offsets()) == 40
    ax.figure.savefig(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 0
