import math

import numpy as np
import pandas as pd
import pytest

from cplmixvi.metrics import (
    arm_agreement,
    categorical_kl,
    clustering_scores,
    hungarian_accuracy,
    hungarian_mapping,
)


def test_permuted_labels_are_perfect():
    rng = np.random.default_rng(0)
    truth = rng.choice(["a", "b", "c", "d"], size=200)
    relabel = {"a": 3, "b": 0, "c": 2, "d": 1}
    pred = np.array([relabel[t] for t in truth])
    assert hungarian_accuracy(truth, pred) == 1.0
    assert hungarian_mapping(truth, pred) == {v: k for k, v in relabel.items()}
    assert categorical_kl(truth, pred) == 0.0
    scores = clustering_scores(truth, pred)
    assert set(scores) == {"acc", "ari", "ami", "nmi", "kl"}
    assert scores["acc"] == scores["ari"] == 1.0
    assert scores["ami"] == pytest.approx(1.0)
    assert scores["nmi"] == pytest.approx(1.0)
    assert scores["kl"] == 0.0


def test_accuracy_on_known_contingency():
    # Contingency (rows a, b, c; columns 0, 1, 2):
    #   a: 3 1 0
    #   b: 2 0 2
    #   c: 0 1 1
    # The best one-to-one matching is 0->a, 2->b, 1->c with 3 + 2 + 1 = 6 of 10.
    truth = list("aaaabbbbcc")
    pred = [0, 0, 0, 1, 0, 0, 2, 2, 1, 2]
    assert hungarian_accuracy(truth, pred) == pytest.approx(0.6)
    assert hungarian_mapping(truth, pred) == {0: "a", 2: "b", 1: "c"}


def test_extra_clusters_count_as_errors():
    # Cluster 1 cannot be matched once 0->a and 2->b: its cell is an error.
    truth = ["a", "a", "a", "b", "b"]
    pred = [0, 0, 1, 2, 2]
    assert hungarian_accuracy(truth, pred) == pytest.approx(0.8)
    assert hungarian_mapping(truth, pred) == {0: "a", 2: "b"}
    # Each cell its own cluster: only one cell per label can be right.
    assert hungarian_accuracy(truth, range(5)) == pytest.approx(0.4)


def test_fewer_clusters_than_labels():
    truth = ["a", "a", "b", "b", "c", "c"]
    pred = [0, 0, 0, 0, 1, 1]
    assert hungarian_accuracy(truth, pred) == pytest.approx(4 / 6)
    assert len(hungarian_mapping(truth, pred)) == 2


def test_zero_overlap_cluster_is_still_matched():
    # Contingency a: (2, 1, 0), b: (0, 0, 2), c: (0, 0, 1). Cluster 1 only
    # shares cells with a, which goes to cluster 0; it is matched to c.
    truth = ["a", "a", "a", "b", "b", "c"]
    pred = [0, 0, 1, 2, 2, 2]
    assert hungarian_accuracy(truth, pred) == pytest.approx(4 / 6)
    assert hungarian_mapping(truth, pred) == {0: "a", 2: "b", 1: "c"}
    # q = (2, 3, 1) / 6 against p = (3, 2, 1) / 6.
    assert categorical_kl(truth, pred) == pytest.approx(math.log(1.5) / 6, abs=1e-8)


def test_accepts_pandas_inputs():
    truth = pd.Series(pd.Categorical(["x", "y", "y", "x"]))
    pred = pd.Series(["1", "2", "2", "2"])
    assert hungarian_accuracy(truth, pred) == pytest.approx(0.75)


def test_kl_zero_for_identical_proportions():
    # Two cells misassigned, but matched proportions stay (4/6, 2/6).
    truth = ["a", "a", "a", "a", "b", "b"]
    pred = [0, 0, 0, 1, 1, 0]
    assert hungarian_accuracy(truth, pred) == pytest.approx(4 / 6)
    assert categorical_kl(truth, pred) == 0.0


def test_kl_hand_computed():
    # Matching 0->a, 1->b gives q = (1/2, 1/2) against p = (3/4, 1/4).
    truth = ["a", "a", "a", "b"]
    pred = [0, 0, 1, 1]
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert categorical_kl(truth, pred) == pytest.approx(expected, abs=1e-8)


def test_kl_unmatched_mass_is_penalised_with_eps():
    truth = ["a", "a", "a", "b", "b"]
    pred = [0, 0, 1, 2, 2]
    eps = 1e-6
    q = np.array([0.4, 0.4, 0.2]) + eps
    p = np.array([0.6, 0.4, 0.0]) + eps
    q, p = q / q.sum(), p / p.sum()
    expected = float(np.sum(q * np.log(q / p)))
    assert categorical_kl(truth, pred, eps=eps) == pytest.approx(expected, rel=1e-12)
    assert expected > 2.0


def test_arm_agreement_planted_disagreement():
    rng = np.random.default_rng(1)
    n_cells, n_types = 100, 5
    base = rng.integers(n_types, size=n_cells)
    other = base.copy()
    other[:25] = (base[:25] + 1) % n_types
    logits = rng.random((3, n_cells, n_types))
    for arm, assign in enumerate([base, base, other]):
        logits[arm, np.arange(n_cells), assign] += 10.0
    # Pairs (0, 1): 1.0, (0, 2): 0.75, (1, 2): 0.75.
    assert arm_agreement(logits) == pytest.approx(2.5 / 3)
    assert arm_agreement(logits[:1]) == 1.0
    assert arm_agreement(logits[[0, 2]]) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("truth", "pred", "match"),
    [
        ([], [], "non-empty"),
        ([1, 2, 3], [1, 2], "same length"),
        ([[1, 2]], [[1, 2]], "one-dimensional"),
        (["a", None], [0, 1], "missing"),
    ],
)
def test_invalid_labels(truth, pred, match):
    with pytest.raises(ValueError, match=match):
        clustering_scores(truth, pred)


def test_invalid_arm_probs():
    with pytest.raises(ValueError, match="shape"):
        arm_agreement(np.ones((4, 3)))
    with pytest.raises(ValueError, match="non-empty"):
        arm_agreement(np.ones((2, 0, 3)))


def test_invalid_eps():
    with pytest.raises(ValueError, match="eps"):
        categorical_kl([0, 1], [0, 1], eps=0.0)
