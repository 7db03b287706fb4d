"""The float32 screen with exact decisions (zsg_lib.arrange.neighbours)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from zsg_lib.arrange.neighbours import (_key_values, _rank_keys, _sparse_nonzero, exact_scores,
                                        margin, nearest_exact, screen_topk)
from zsg_lib.similarity import normalise_rows


def test_rank_keys_order_values_desc_then_index_and_round_trip():
    v = np.array([-np.inf, -1.5, -0.0, 0.0, 1e-30, 0.5, 2.0, -1e-30], np.float32)
    keys = _rank_keys(v, np.arange(len(v)))
    assert np.argsort(keys).tolist() == [6, 5, 4, 2, 3, 7, 1, 0]  # -0.0 ties +0.0
    assert np.array_equal(_key_values(keys), v + np.float32(0))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.integers(1, 30), st.floats(0, 1))
def test_sparse_nonzero_matches_numpy(seed, rows, cols, density):
    m = np.random.default_rng(seed).random((rows, cols)) < density
    assert [a.tolist() for a in _sparse_nonzero(m)] == [a.tolist() for a in np.nonzero(m)]


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 5), st.integers(1, 8),
       st.integers(1, 9), st.booleans(), st.booleans(), st.sampled_from([0.0, 1e-7, 1.0]))
def test_screen_lists_are_complete_above_their_floor(seed, n, m, k, chunk, farthest,
                                                     use_exclude, noise):
    rng = np.random.default_rng(seed)
    pool = rng.normal(size=(4, 5))
    train = (pool[rng.integers(4, size=n)] + noise * rng.normal(size=(n, 5))).astype(np.float32)
    test = rng.normal(size=(m, 5)).astype(np.float32)
    exclude = rng.random(n) < 0.3 if use_exclude else None
    sc = screen_topk(train, test, k, farthest, exclude=exclude, chunk_size=chunk)
    tn, xn = normalise_rows(train), normalise_rows(test)
    exact = (tn.astype(np.float64) @ xn.astype(np.float64).T) * (-1 if farthest else 1)
    allowed = np.ones(n, bool) if exclude is None else ~exclude
    for j in range(m):
        idx, score = sc.idx[j], sc.score[j]
        assert len(idx) == min(k, allowed.sum()) and allowed[idx].all()
        assert np.all(np.diff(score) <= 0)  # sorted by screened score
        # screened scores are within the margin of exact ones
        assert np.all(np.abs(score - exact[idx, j]) <= margin(5))
        # every allowed row scoring (exactly) clearly above the floor is in the list
        must = np.flatnonzero(allowed & (exact[:, j] >= sc.floor[j] + margin(5)))
        assert set(must) <= set(idx.tolist())


def test_lattice_lists_are_in_exact_order_with_ties_to_lower_index():
    rng = np.random.default_rng(0)
    train = (np.eye(3, dtype=np.float32)[rng.integers(3, size=30)]
             * rng.choice([-1, 1], (30, 1)).astype(np.float32))
    test = np.eye(3, dtype=np.float32)
    sc = screen_topk(train, test, 7, chunk_size=4)
    for j in range(3):
        want = sorted(range(30), key=lambda i: (-float(train[i] @ test[j]), i))[:7]
        assert sc.idx[j].tolist() == want


def test_nearest_exact_orders_by_exact_similarity():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(200, 6)).astype(np.float32)
    train[50] = train[10]  # an exact duplicate: tie, lower index first
    test = train[[10, 3]] + np.float32(1e-3)
    got = nearest_exact(train, test, k=5, chunk_size=32)
    tn, xn = normalise_rows(train), normalise_rows(test)
    sims = (tn.astype(np.float64) @ xn.astype(np.float64).T).astype(np.float32)
    for j in range(2):
        want = sorted(range(200), key=lambda i: (-sims[i, j], i))[:5]
        assert got[j].tolist() == want
    assert got[0][:2].tolist() == [10, 50]
    np.testing.assert_array_equal(exact_scores(train, np.array([50, 10]), xn[0]),
                                  sims[[50, 10], 0])


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
