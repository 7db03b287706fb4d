"""AD / MD / WSD, the optimal-transport measure and the exact top-k search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from zsg_lib.errors import ArrangementError
from zsg_lib.similarity import distance_stats, nearest, normalise_rows, ot_cost


def dense_distances(train, test):
    tn = train / np.linalg.norm(train, axis=1, keepdims=True)
    xn = test / np.linalg.norm(test, axis=1, keepdims=True)
    return -(tn.astype(np.float64) @ xn.astype(np.float64).T)  # N x M, d = -cos


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.integers(1, 9), st.integers(1, 7))
def test_stats_match_dense_formulas_for_any_chunking(seed, n, m, chunk):
    rng = np.random.default_rng(seed)
    train, test = rng.normal(size=(n, 5)), rng.normal(size=(m, 5))
    d = dense_distances(train, test)
    st_ = distance_stats(train, test, chunk_size=chunk)
    np.testing.assert_allclose(st_.ad, d.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(st_.md, d.min(axis=1), atol=1e-6)
    # PAPER.md §3, literally (compared on the computed AD/MD: the ratio is ill-conditioned
    # when mean(AD) is near 0, so recomputing it from the dense matrix would amplify rounding)
    assert st_.w_avg == st_.md.mean() / st_.ad.mean()
    np.testing.assert_allclose(st_.wsd, st_.w_avg * st_.ad + st_.md, atol=1e-9)


def test_given_weights_are_used():
    rng = np.random.default_rng(1)
    train, test = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
    s = distance_stats(train, test, w_avg=0.5, w_min=2.0)
    assert (s.w_avg, s.w_min) == (0.5, 2.0)
    np.testing.assert_allclose(s.wsd, 0.5 * s.ad + 2.0 * s.md)


def test_default_w_avg_undefined_when_mean_ad_is_zero():
    train = np.array([[1.0, 0.0]])
    test = np.array([[1.0, 0.0], [-1.0, 0.0]])  # AD = 0 exactly
    with pytest.raises(ArrangementError, match="mean\\(AD\\) is 0"):
        distance_stats(train, test)
    assert distance_stats(train, test, w_avg=1.0).wsd.tolist() == [-1.0]


@pytest.mark.parametrize("train,test,match", [
    (np.zeros((0, 3)), np.ones((2, 3)), "empty"),
    (np.ones((2, 3)), np.ones((2, 4)), "dimension"),
    (np.array([[np.inf, 0.0]]), np.ones((1, 2)), "row 0 has a NaN"),
    (np.array([[1.0, 0.0], [0.0, 0.0]]), np.ones((1, 2)), "row 1 has zero norm"),
    (np.ones(3), np.ones((1, 3)), "2-D"),
])
def test_bad_input_raises_naming_the_problem(train, test, match):
    with pytest.raises(ArrangementError, match=match):
        distance_stats(train, test, chunk_size=1)


def test_normalise_rows_gives_float32_unit_rows():
    x = normalise_rows(np.array([[3.0, 4.0], [0.0, -2.0]]))
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-6)


def test_ot_cost_equals_best_assignment_when_sets_have_equal_size():
    rng = np.random.default_rng(2)
    train, test = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    cost = 1.0 + dense_distances(train, test)
    best = min(sum(cost[i, p[i]] for i in range(5)) / 5 for p in itertools.permutations(range(5)))
    oc = ot_cost(train, test)
    assert oc.total == pytest.approx(best, abs=1e-6)  # float32 unit vectors
    assert oc.per_train.mean() == pytest.approx(oc.total)
    sk = ot_cost(train, test, reg=0.05)
    assert best - 1e-9 <= sk.total <= best + 0.1  # entropic plan: near, never below


def test_ot_cost_refuses_huge_dense_problems():
    with pytest.raises(ArrangementError, match="max_cells"):
        ot_cost(np.ones((100, 2)), np.ones((100, 2)), max_cells=9_999)


def test_chunked_nearest_matches_dense_order() -> None:
    rng = np.random.default_rng(1)
    train, test = rng.normal(size=(700, 6)), rng.normal(size=(9, 6))
    train[5] = train[3]  # an exact tie: the lower index comes first
    a = train / np.linalg.norm(train, axis=1, keepdims=True)
    b = test / np.linalg.norm(test, axis=1, keepdims=True)
    dense = np.argsort(-(b @ a.T), axis=1, kind="stable")[:, :10]
    assert (nearest(train, test, 10, chunk_size=50) == dense).all()
