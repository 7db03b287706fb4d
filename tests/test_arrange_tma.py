"""TMA equals a direct implementation of Algorithm 1 (PAPER.md §5) on many random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from zsg_lib.arrange import tma, tma_rounds, tma_window
from zsg_lib.errors import ArrangementError
from zsg_lib.schema import instances_from_records
from zsg_lib.similarity import normalise_rows

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def exact_similarity(train, test):
    """The defined similarity: float64 dot of the float32 unit rows, rounded to float32."""
    tn = normalise_rows(train).astype(np.float64)
    xn = normalise_rows(test).astype(np.float64)
    return (tn @ xn.T).astype(np.float32)  # N x M


def reference_tma(train, test, farthest=False, budget=None, max_rounds=None):
    """Algorithm 1 written directly: full distance matrix, argmin per test instance.

    Ties go to the lower training index; picks within a round are made against D_train as it
    was at the round start; a training instance picked twice in a round is taken once, at
    the position of the first test instance (in test order) that picked it.
    """
    dist = -exact_similarity(train, test)  # d = negative cosine similarity, N x M
    if farthest:
        dist = -dist
    remaining = list(range(len(train)))
    order, rounds = [], []
    r = 0
    while remaining and (budget is None or len(order) < budget) and (
        max_rounds is None or r < max_rounds
    ):
        picks = []
        for j in range(len(test)):
            best = min(remaining, key=lambda i: (dist[i, j], i))
            if best not in picks:
                picks.append(best)
        if budget is not None:
            picks = picks[: budget - len(order)]
        order += picks
        rounds += [r] * len(picks)
        remaining = [i for i in remaining if i not in picks]
        r += 1
    return order, rounds


def lattice_vectors(rng: np.random.Generator, n: int, dim: int, pool: int) -> np.ndarray:
    """Unit vectors with exact float arithmetic: one-hot (+-1) or four entries of +-0.5.

    Dot products are multiples of 1/4, so every similarity is exact in any summation order and
    exact ties (and duplicate vectors, drawn from a small pool) are common.
    """
    kinds = []
    for _ in range(pool):
        v = np.zeros(dim, np.float32)
        if dim < 4 or rng.random() < 0.4:
            v[rng.integers(dim)] = rng.choice([-1.0, 1.0])
        else:
            v[rng.choice(dim, 4, replace=False)] = rng.choice([-0.5, 0.5], size=4)
        kinds.append(v)
    return np.stack(kinds)[rng.integers(pool, size=n)]


problem = st.fixed_dictionaries({
    "seed": st.integers(0, 2**32 - 1),
    "n": st.integers(1, 40),
    "m": st.integers(1, 8),
    "dim": st.integers(1, 6),
    "pool": st.integers(1, 12),
    "k": st.integers(1, 6),
    "chunk": st.integers(1, 9),
    "farthest": st.booleans(),
    "budget": st.one_of(st.none(), st.integers(1, 45)),
})


@SETTINGS
@given(problem)
def test_tma_equals_reference_on_lattice_vectors_with_ties(p):
    rng = np.random.default_rng(p["seed"])
    train = lattice_vectors(rng, p["n"], p["dim"], p["pool"])
    test = lattice_vectors(rng, p["m"], p["dim"], p["pool"])
    got = tma_rounds(train, test, p["farthest"], p["budget"], k=p["k"], chunk_size=p["chunk"])
    order, rounds = reference_tma(train, test, p["farthest"], p["budget"])
    assert got.order.tolist() == order
    assert got.rounds.tolist() == rounds
    assert got.exhausted == (p["budget"] is not None and p["budget"] > p["n"])


@SETTINGS
@given(problem, st.sampled_from([0.0, 1e-8, 1e-7, 1e-6, 1e-4, 1.0]))
def test_tma_equals_reference_on_gaussian_and_near_tie_vectors(p, noise):
    """Gaussian rows around a small pool: with noise 1e-8..1e-6 many similarities differ
    only below float32 BLAS error, which exercises the exact rescoring of near-ties."""
    rng = np.random.default_rng(p["seed"])
    dim = p["dim"] + 2
    pool = rng.normal(size=(p["pool"], dim))
    train = (pool[rng.integers(p["pool"], size=p["n"])]
             + noise * rng.normal(size=(p["n"], dim))).astype(np.float32)
    test = rng.normal(size=(p["m"], dim)).astype(np.float32)
    got = tma_rounds(train, test, p["farthest"], p["budget"], k=p["k"], chunk_size=p["chunk"])
    order, rounds = reference_tma(train, test, p["farthest"], p["budget"])
    assert got.order.tolist() == order
    assert got.rounds.tolist() == rounds


@settings(max_examples=60, deadline=None)
@given(problem, st.integers(0, 6), st.integers(1, 4))
def test_tma_window_equals_reference_rounds(p, start, size):
    rng = np.random.default_rng(p["seed"])
    train = lattice_vectors(rng, p["n"], p["dim"], p["pool"])
    test = lattice_vectors(rng, p["m"], p["dim"], p["pool"])
    order, rounds = reference_tma(train, test, max_rounds=start + size)
    want = [o for o, r in zip(order, rounds) if r >= start]
    table = _table(p["n"])
    win = tma_window(table, train, test, start=start, size=size, k=p["k"], chunk_size=p["chunk"],
                     within_round="test-order")
    assert win.ids == [f"x{i}" for i in want]
    assert set(win.table["round"]) <= set(range(start, start + size))


def _table(n, tasks=None):
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    return instances_from_records(
        [{"id": f"x{i}", "task": None if tasks is None else tasks[i], "messages": msgs}
         for i in range(n)])


@settings(max_examples=60, deadline=None)
@given(problem, st.sampled_from(["nft", "fft", "rt", "max-min", "min-max"]))
def test_tma_settings_compose_reference_rounds(p, setting):
    rng = np.random.default_rng(p["seed"])
    train = lattice_vectors(rng, p["n"], p["dim"], p["pool"])
    test = lattice_vectors(rng, p["m"], p["dim"], p["pool"])
    budget = p["budget"] or p["n"]
    table = _table(p["n"])
    with np.testing.suppress_warnings() as sup:
        sup.filter(UserWarning)
        # the reference keeps picks in the order the test instances made them
        a = tma(table, train, test, setting, budget=budget, seed=p["seed"], k=p["k"],
                within_round="test-order")
        b = tma(table, train, test, setting, budget=budget, seed=p["seed"], k=p["k"],
                within_round="test-order")
    assert a.ids == b.ids  # same seed, same order
    assert len(set(a.ids)) == len(a.ids) and set(a.ids) <= {f"x{i}" for i in range(p["n"])}
    near, near_r = reference_tma(train, test, False, budget)
    if setting == "nft":
        want = near
    elif setting == "fft":
        want = reference_tma(train, test, True, budget)[0]
    elif setting == "rt":
        assert sorted(a.ids) == sorted(f"x{i}" for i in near)
        return
    else:
        first, second = (budget + 1) // 2, budget // 2
        far_first = setting == "max-min"
        o1, _ = reference_tma(train, test, far_first, first)
        o2, r2 = reference_tma(train, test, not far_first, second) if second else ([], [])
        o2 = [o for _, o in sorted(zip([-r for r in r2], o2), key=lambda t: t[0])]  # rounds reversed
        want = list(dict.fromkeys(o1 + o2))  # duplicates keep their first position
        assert (a.table["half"].iloc[: len(o1)] == ("far" if far_first else "near")).all()
    assert a.ids == [f"x{i}" for i in want]


def test_rounds_pick_against_pool_at_round_start():
    # test 0 and test 1 both want row 0 in round 0; row 1 is test 1's second choice but
    # must not be taken in round 0 (picks in a round see the pool as it was at its start).
    train = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], np.float32)
    test = np.array([[1.0, 0.0], [0.9, 0.1]], np.float32)
    r = tma_rounds(train, test)
    assert r.order.tolist() == [0, 1, 2] and r.rounds.tolist() == [0, 1, 2]
    assert r.test_index.tolist() == [0, 0, 0]


def test_budget_larger_than_training_set_warns_and_stops():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(5, 4)), rng.normal(size=(2, 4))
    with pytest.warns(UserWarning, match="exceeds the training set"):
        a = tma(_table(5), train, test, "nft", budget=50)
    assert sorted(a.ids) == [f"x{i}" for i in range(5)]
    assert a.params["exhausted"] is True and a.params["selected"] == 5


def test_budget_cuts_last_round_in_test_order():
    train = np.eye(4, dtype=np.float32)
    test = np.eye(4, dtype=np.float32)[::-1]  # test j wants row 3 - j
    r = tma_rounds(train, test, budget=3)
    assert r.order.tolist() == [3, 2, 1] and not r.exhausted


@pytest.mark.parametrize("bad", [
    dict(train=np.zeros((0, 3)), test=np.ones((2, 3))),
    dict(train=np.ones((3, 3)), test=np.zeros((0, 3))),
    dict(train=np.ones((3, 3)), test=np.ones((2, 4))),
    dict(train=np.array([[1.0, np.nan], [1.0, 0.0]]), test=np.ones((1, 2))),
    dict(train=np.array([[0.0, 0.0], [1.0, 0.0]]), test=np.ones((1, 2))),
    dict(train=np.ones((3, 2)), test=np.array([[0.0, 0.0]])),
])
def test_bad_embeddings_raise(bad):
    with pytest.raises(ArrangementError):
        tma_rounds(bad["train"], bad["test"])


def test_bad_budget_and_setting_raise():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(4, 3)), rng.normal(size=(2, 3))
    with pytest.raises(ArrangementError, match="budget"):
        tma_rounds(train, test, budget=0)
    with pytest.raises(ArrangementError, match="setting"):
        tma(_table(4), train, test, "nearest")
    with pytest.raises(ArrangementError, match="expected 5 rows"):
        tma(_table(5), train, test, "nft")


def test_tma_works_on_memmap(tmp_path):
    rng = np.random.default_rng(3)
    train = rng.normal(size=(300, 16)).astype(np.float32)
    mm = np.lib.format.open_memmap(tmp_path / "t.npy", mode="w+", dtype=np.float32,
                                   shape=train.shape)
    mm[:] = train
    mm.flush()
    mm = np.load(tmp_path / "t.npy", mmap_mode="r")
    test = rng.normal(size=(7, 16)).astype(np.float32)
    a = tma_rounds(mm, test, budget=40, k=4, chunk_size=64)
    b = tma_rounds(train, test, budget=40, k=4, chunk_size=64)
    assert a.order.tolist() == b.order.tolist()
    assert a.order.tolist() == reference_tma(train, test, budget=40)[0]


def dense_reference(train, test, farthest=False, budget=None):
    """Algorithm 1 vectorised (same rules as reference_tma; np.argmin takes the first,
    i.e. lower, index on ties) — for inputs too big for the direct version."""
    dist = -exact_similarity(train, test).T  # M x N
    if farthest:
        dist = -dist
    order, limit = [], len(train) if budget is None else min(budget, len(train))
    while len(order) < limit:
        picks = list(dict.fromkeys(np.argmin(dist, axis=1).tolist()))[: limit - len(order)]
        order += picks
        dist[:, picks] = np.inf
    return order


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans(), st.sampled_from([0.0, 1e-6, 1e-3, 1.0]),
       st.sampled_from([None, 4, 40]))
def test_tma_equals_reference_at_screening_scale(seed, farthest, noise, k):
    """Thousands of rows: the sampled thresholds, bf16 screen, lazy scoring and refills
    (small k, clustered data consumed deep, exact duplicates) all take part."""
    rng = np.random.default_rng(seed)
    n, m, dim = 9000, 30, 16
    pool = rng.normal(size=(40, dim))
    train = (pool[rng.integers(40, size=n)] + noise * rng.normal(size=(n, dim))).astype(np.float32)
    test = rng.normal(size=(m, dim)).astype(np.float32)
    budget = int(rng.integers(100, 2500))
    got = tma_rounds(train, test, farthest, budget, k=k, chunk_size=int(rng.choice([1000, 8192])))
    assert got.order.tolist() == dense_reference(train, test, farthest, budget)
    sims = exact_similarity(train, test)
    np.testing.assert_array_equal(got.distance, -sims[got.order, got.test_index].astype(np.float64))


@pytest.mark.parametrize("setting", ["nft", "fft", "max-min", "min-max"])
def test_within_round_order_reorders_picks_inside_rounds_only(setting):
    rng = np.random.default_rng(3)
    train, test = rng.normal(size=(120, 6)), rng.normal(size=(12, 6))
    by = {how: tma(_table(120), train, test, setting, budget=60, seed=4, within_round=how)
          for how in ("test-order", "train-index", "shuffle")}
    ref = by["test-order"].table
    for how, a in by.items():
        t = a.table
        assert t["round"].tolist() == ref["round"].tolist()  # rounds stay where they were
        for _, grp in ref.groupby(["half", "round"], sort=False):
            same = t.loc[grp.index]
            assert sorted(same["id"]) == sorted(grp["id"])  # the same picks in each round
    rows = lambda a: [int(i[1:]) for i in a.ids]  # noqa: E731 - ids are x<row>
    blocks = by["train-index"].table.groupby(["half", "round"], sort=False)["id"]
    assert all(list(g.map(lambda i: int(i[1:]))) == sorted(g.map(lambda i: int(i[1:])))
               for _, g in blocks)
    assert rows(by["shuffle"]) != rows(by["test-order"])
    again = tma(_table(120), train, test, setting, budget=60, seed=4)  # shuffle is the default
    assert again.ids == by["shuffle"].ids
    other = tma(_table(120), train, test, setting, budget=60, seed=5)
    assert other.ids != again.ids and sorted(other.ids) == sorted(again.ids)


def test_within_round_order_is_checked():
    rng = np.random.default_rng(0)
    with pytest.raises(ArrangementError, match="within_round"):
        tma(_table(5), rng.normal(size=(5, 3)), rng.normal(size=(2, 3)), "nft",
            within_round="by-task")
