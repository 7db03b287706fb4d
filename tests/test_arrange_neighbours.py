"""Exact decisions behind TMA's bf16 screen (zsg_lib.arrange.neighbours)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from zsg_lib.arrange.neighbours import _key_values, _sparse_nonzero, margin, rank_keys
from zsg_lib.similarity import normalise_rows


def test_rank_keys_order_values_desc_then_index_and_round_trip():
    v = np.array([-np.inf, -1.5, -0.0, 0.0, 1e-30, 0.5, 2.0, -1e-30], np.float32)
    keys = rank_keys(v, np.arange(len(v)))
    assert np.argsort(keys).tolist() == [6, 5, 4, 2, 3, 7, 1, 0]  # -0.0 ties +0.0
    assert np.array_equal(_key_values(keys), v + np.float32(0))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.integers(1, 30), st.floats(0, 1))
def test_sparse_nonzero_matches_numpy(seed, rows, cols, density):
    m = np.random.default_rng(seed).random((rows, cols)) < density
    assert [a.tolist() for a in _sparse_nonzero(m)] == [a.tolist() for a in np.nonzero(m)]


# --- the bf16 candidate screen used by TMA ---------------------------------------------------

from zsg_lib.arrange.neighbours import TrainPrep, screen_candidates  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([30, 500, 6000]), st.integers(1, 6),
       st.integers(1, 40), st.sampled_from([7, 64, 8192]), st.booleans(), st.booleans(),
       st.sampled_from([0.0, 1e-3, 1.0]), st.sampled_from([None, 3]))
def test_screen_candidates_proven_prefix_is_the_exact_top(seed, n, m, k, chunk, farthest,
                                                          use_exclude, noise, first_scored):
    rng = np.random.default_rng(seed)
    dim = 24
    pool = rng.normal(size=(6, dim))
    train = (pool[rng.integers(6, size=n)] + noise * rng.normal(size=(n, dim))).astype(np.float32)
    test = rng.normal(size=(m, dim)).astype(np.float32)
    exclude = rng.random(n) < 0.3 if use_exclude else None
    tn, xn = normalise_rows(train), normalise_rows(test)
    c = screen_candidates(TrainPrep(train, chunk), xn, k, farthest, exclude, first_scored)
    exact = (tn.astype(np.float64) @ xn.astype(np.float64).T).astype(np.float32)
    exact = -exact if farthest else exact
    allowed = np.ones(n, bool) if exclude is None else ~exclude
    for j in range(m):
        idx = c.idx[j, : c.length[j]]
        assert allowed[idx].all() and len(set(idx.tolist())) == len(idx)
        sc = c.scored[j]
        assert np.all(np.diff(c.value[j, :sc]) <= 0)  # scored prefix sorted by value
        assert np.all(np.abs(c.value[j, :sc] - exact[idx[:sc], j]) <= margin(dim))
        proven = idx[: c.proven[j]]
        if len(proven):
            rest = np.setdiff1d(np.flatnonzero(allowed), proven)
            assert np.all(exact[rest, j] < exact[proven, j].min())


def test_bf16_screen_bound_holds_at_384_dims():
    rng = np.random.default_rng(5)
    train = normalise_rows(rng.normal(size=(3000, 384)).astype(np.float32))
    test = normalise_rows(rng.normal(size=(7, 384)).astype(np.float32))
    test[1] = train[10]  # exact match: value 1
    c = screen_candidates(TrainPrep(train), test, k=5)
    import torch
    s = (torch.from_numpy(test).bfloat16() @ torch.from_numpy(train).bfloat16().T).float()
    s = s.double().numpy()
    exact = test.astype(np.float64) @ train.astype(np.float64).T
    for j in range(7):  # every pair's exact score is below the limit of its screened value
        lim = c.exact_limit(s[j], np.full(len(s[j]), j))
        assert np.all(exact[j] < lim)
        assert np.all(-exact[j] < c.exact_limit(-s[j], np.full(len(s[j]), j)))
