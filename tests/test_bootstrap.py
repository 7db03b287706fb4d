"""The one cluster bootstrap (zsg_lib.analysis.bootstrap), against cases known by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from zsg_lib.analysis.bootstrap import cluster_resamples, few_clusters, percentile_interval


def total(values, axis=-1):
    return np.sum(values, axis=axis)


def test_resamples_draw_whole_clusters_with_replacement_as_enumerated():
    """Three clusters: the 27 equally likely draws give each resampled total a known chance
    (distinct cluster values make every multiset's total distinct); the frequencies must be
    those, and the 95% interval of the mean runs from all-smallest to all-largest (each has
    chance 1/27 > 2.5%)."""
    values = np.array([1.0, 10.0, 100.0])
    chance: dict[float, float] = {}
    for draw in itertools.product(range(3), repeat=3):
        t = float(values[list(draw)].sum())
        chance[t] = chance.get(t, 0.0) + 1 / 27
    n = 20_000
    got = cluster_resamples(total, (values,), n_resamples=n, seed=3)
    assert set(np.unique(got)) == set(chance)
    for t, p in chance.items():
        se = math.sqrt(p * (1 - p) / n)
        assert abs(np.mean(got == t) - p) < 5 * se, (t, np.mean(got == t), p)
    means = cluster_resamples(lambda v, axis=-1: np.mean(v, axis=axis), (values,), n, seed=3)
    assert percentile_interval(means) == (1.0, 100.0, "")


def test_arrays_are_resampled_together():
    """Paired: each cluster's sum and count travel together, so a ratio that is 2 in every
    cluster is exactly 2 in every resample (drawn apart, it would not be)."""
    counts = np.array([1.0, 3.0, 7.0, 2.0])
    ratio = cluster_resamples(lambda s, c, axis=-1: s.sum(axis) / c.sum(axis),
                              (2 * counts, counts), n_resamples=500, seed=0)
    assert (ratio == 2.0).all()


def test_singleton_clusters_give_scipys_interval_to_the_bit():
    """Each observation its own cluster: the ordinary bootstrap of the mean, whose percentile
    interval SciPy computes itself from the same seed."""
    x = np.random.default_rng(1).normal(size=40)
    want = sps.bootstrap((x,), np.mean, n_resamples=999, method="percentile",
                         random_state=np.random.default_rng(7)).confidence_interval
    got = percentile_interval(cluster_resamples(np.mean, (x,), n_resamples=999, seed=7))
    assert got == (want.low, want.high, "")
    other = percentile_interval(cluster_resamples(np.mean, (x,), n_resamples=999, seed=8))
    assert other[:2] != got[:2]  # the seed matters


def test_undefined_resamples_and_too_few_clusters():
    values = np.arange(100.0)
    values[:4] = np.nan
    lo, hi, why = percentile_interval(values, max_undefined=0.05)
    assert why == "" and (lo, hi) == percentile_interval(np.arange(4.0, 100.0))[:2]
    values[4] = np.inf
    assert percentile_interval(values, max_undefined=0.04) == (
        pytest.approx(np.nan, nan_ok=True), pytest.approx(np.nan, nan_ok=True),
        "undefined in 5 of 100 resamples")
    assert few_clusters(2) == "" and "1 cluster(s)" in few_clusters(1)
    with pytest.raises(ValueError, match="1 cluster"):
        cluster_resamples(total, (np.array([1.0]),))
