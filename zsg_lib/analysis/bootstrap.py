"""The one cluster bootstrap of the analyses: resample whole clusters, compute a statistic in
each resample, read a percentile interval off the resamples.

Observations that share a cluster (the instances of one test task in one run share the model
and the task) are not independent; clusters are. So a resample draws ``n_clusters`` clusters
with replacement and keeps each drawn cluster whole. The draws, and the percentile rule, are
SciPy's (:func:`scipy.stats.bootstrap`, paired over the clusters, ``method="percentile"``,
seeded with ``np.random.default_rng(seed)``): :func:`cluster_resamples` gives the statistic in
every resample, :func:`percentile_interval` the interval, :func:`few_clusters` says when there
is none. Arm comparisons (:mod:`~zsg_lib.analysis.compare`) and the predictor test
(:mod:`~zsg_lib.analysis.predictor_stats`) both use them.

>>> sums, counts = np.array([1.0, 4.0, 9.0]), np.array([1.0, 2.0, 3.0])
>>> ratio = lambda s, c, axis=-1: s.sum(axis) / c.sum(axis)  # a per-instance mean
>>> values = cluster_resamples(ratio, (sums, counts), n_resamples=200, seed=0)
>>> values.shape, percentile_interval(values)[2]
((200,), '')
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as sps

N_RESAMPLES = 2000
LEVEL = 0.95


def few_clusters(n_clusters: int) -> str:
    """Why there is no interval with fewer than two clusters (``""`` with two or more).

    >>> few_clusters(1), few_clusters(2)
    ('1 cluster(s); a bootstrap needs at least 2', '')
    """
    return f"{n_clusters} cluster(s); a bootstrap needs at least 2" if n_clusters < 2 else ""


def cluster_resamples(statistic: Callable[..., np.ndarray], data: Sequence[np.ndarray],
                      n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """``statistic`` in each of ``n_resamples`` resamples of the clusters: ``(..., n_resamples)``.

    ``data``: arrays whose last axis has one entry per cluster, resampled together (paired);
    ``statistic(*resampled, axis=-1)`` is vectorised over a leading resample axis and returns
    floats, one or several per resample (shape ``(..., n_resamples)``). Resample ``b`` draws
    clusters ``rng.integers(0, n_clusters, (n_resamples, n_clusters))[b]`` with
    ``rng = np.random.default_rng(seed)``, as :func:`scipy.stats.bootstrap` does.

    >>> drawn = lambda i, axis=-1: i.T.astype(float)  # each resample's drawn clusters
    >>> got = cluster_resamples(drawn, (np.arange(3),), n_resamples=2, seed=0)
    >>> got.T.tolist() == np.random.default_rng(0).integers(0, 3, (2, 3)).tolist()
    True
    """
    n_clusters = np.shape(data[0])[-1]
    if few_clusters(n_clusters):
        raise ValueError(f"cluster_resamples: {few_clusters(n_clusters)}")
    with warnings.catch_warnings():
        # SciPy's own interval is not used (percentile_interval reads the resamples); it warns
        # when a resample's statistic is undefined, which percentile_interval reports instead
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        res = sps.bootstrap(tuple(data), statistic, paired=True, vectorized=True,
                            n_resamples=n_resamples, method="percentile",
                            random_state=np.random.default_rng(seed))
    return np.asarray(res.bootstrap_distribution)


def percentile_interval(values: np.ndarray, level: float = LEVEL,
                        max_undefined: float = 0.0) -> tuple[float, float, str]:
    """The ``level`` percentile interval of a statistic's resampled ``values`` (SciPy's rule,
    :func:`scipy.stats.quantile` at ``(1 − level) / 2`` and its complement), over the
    resamples where it is defined; ``(nan, nan, why)`` when it is undefined (not finite) in
    more than a ``max_undefined`` share of them.

    >>> percentile_interval(np.arange(5.0), level=0.5)
    (1.0, 3.0, '')
    >>> percentile_interval(np.array([1.0, np.nan, 3.0]))
    (nan, nan, 'undefined in 1 of 3 resamples')
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any() or finite.mean() < 1 - max_undefined:
        return np.nan, np.nan, f"undefined in {int((~finite).sum())} of {len(values)} resamples"
    alpha = (1 - level) / 2
    lo, hi = sps.quantile(values[finite], np.asarray([alpha, 1 - alpha]))
    return float(lo), float(hi), ""
