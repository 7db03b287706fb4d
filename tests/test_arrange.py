"""Every arrangement: a permutation (TMA: a duplicate-free subset), seeded, and as defined."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from zsg_lib.arrange import ARRANGEMENTS, Arrangement, arrange, by_similarity, cluster, round_robin
from zsg_lib.errors import ArrangementError
from zsg_lib.schema import instances_from_records
from zsg_lib.similarity import distance_stats

MSGS = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def table(tasks):
    return instances_from_records(
        [{"id": f"x{i}", "task": t, "messages": MSGS} for i, t in enumerate(tasks)])


def data(seed, n_tasks, per_task, m=3, dim=6, with_tasks=True):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, per_task + 1, size=n_tasks)
    tasks = [f"t{k}" for k, s in enumerate(sizes) for _ in range(s)]
    rng.shuffle(tasks)
    train = table(tasks if with_tasks else [None] * len(tasks))
    return train, rng.normal(size=(len(tasks), dim)), rng.normal(size=(m, dim)), tasks


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6), st.integers(1, 5), st.sampled_from(
    sorted(ARRANGEMENTS)))
def test_every_arrangement_is_a_seeded_permutation_or_subset(seed, n_tasks, per_task, name):
    train, e_train, e_test, _ = data(seed, n_tasks, per_task)
    params = {"seed": seed} if name != "tma-window" else {"start": 0, "size": 2}
    if name.startswith("tma-") and name != "tma-window":
        params["budget"] = max(1, train.num_rows - 1)
    a = arrange(name, train, e_train, e_test, **params)
    b = arrange(name, train, e_train, e_test, **params)
    all_ids = set(train.column("id").to_pylist())
    assert isinstance(a, Arrangement) and a.ids == b.ids
    assert len(set(a.ids)) == len(a.ids) and set(a.ids) <= all_ids
    if not name.startswith("tma"):
        assert set(a.ids) == all_ids
    assert a.table["position"].tolist() == list(range(len(a.ids)))
    assert a.table["id"].tolist() == a.ids
    assert list(a.table.columns[:5]) == ["position", "id", "task", "score", "round"]


def test_seeds_change_the_order():
    train, e_train, e_test, _ = data(0, 8, 6)
    for name in ("random", "round-robin", "cluster", "rt", "coarse-rt", "tma-rt"):
        kw = {"budget": 20} if name == "tma-rt" else {}
        assert (arrange(name, train, e_train, e_test, seed=1, **kw).ids
                != arrange(name, train, e_train, e_test, seed=2, **kw).ids), name


def test_round_robin_spreads_tasks_and_cluster_keeps_them_together():
    _, _, _, tasks = data(4, 5, 4)
    train = table(tasks)
    rr = round_robin(train, seed=3)
    counts = pd.Series(tasks).value_counts()
    for r, group in rr.table.groupby("round"):
        # turn r holds one instance of every task that has more than r instances
        assert sorted(group["task"]) == sorted(counts[counts > r].index)
    cl = cluster(train, seed=3)
    runs = (cl.table["task"] != cl.table["task"].shift()).sum()
    assert runs == len(counts)  # each task one contiguous block
    assert cl.table.groupby("task")["round"].nunique().eq(1).all()


def test_fine_orders_follow_wsd():
    train, e_train, e_test, _ = data(5, 4, 5, with_tasks=False)
    wsd = distance_stats(e_train, e_test).wsd
    nft = by_similarity(train, e_train, e_test, "nft")
    fft = by_similarity(train, e_train, e_test, "fft")
    assert np.all(np.diff(nft.table["score"]) >= 0)
    assert np.all(np.diff(fft.table["score"]) <= 0)
    assert nft.ids == [f"x{i}" for i in np.argsort(wsd, kind="stable")]
    np.testing.assert_allclose(np.sort(nft.table["score"]), np.sort(wsd))
    rt = by_similarity(train, e_train, e_test, "rt", seed=0)
    assert sorted(rt.ids) == sorted(nft.ids) and rt.ids != nft.ids


@pytest.mark.parametrize("measure", ["ad", "md", "ot"])
def test_other_measures(measure):
    train, e_train, e_test, _ = data(6, 3, 4)
    a = by_similarity(train, e_train, e_test, "nft", measure=measure)
    assert np.all(np.diff(a.table["score"]) >= 0)
    if measure != "ot":
        want = getattr(distance_stats(e_train, e_test), measure)
        assert a.ids == [f"x{i}" for i in np.argsort(want, kind="stable")]


def test_coarse_orders_tasks_by_wsd_of_mean_embedding():
    train, e_train, e_test, tasks = data(7, 5, 4)
    a = by_similarity(train, e_train, e_test, "nft", granularity="coarse")
    names = sorted(set(tasks))
    unit = e_train / np.linalg.norm(e_train, axis=1, keepdims=True)
    means = np.stack([unit[[t == n for t in tasks]].mean(axis=0) for n in names])
    want = [names[i] for i in np.argsort(distance_stats(means, e_test).wsd, kind="stable")]
    blocks = a.table["task"].loc[a.table["task"] != a.table["task"].shift()].tolist()
    assert blocks == want  # tasks in WSD order, each one contiguous block
    fft = by_similarity(train, e_train, e_test, "fft", granularity="coarse")
    assert fft.table["task"].loc[fft.table["task"] != fft.table["task"].shift()].tolist() == \
        want[::-1]


@pytest.mark.parametrize("name", [n for n, info in ARRANGEMENTS.items() if info.needs_tasks])
def test_task_arrangements_refuse_data_without_tasks(name):
    train, e_train, e_test, _ = data(0, 3, 3, with_tasks=False)
    with pytest.raises(ArrangementError, match="needs task labels"):
        arrange(name, train, e_train, e_test)


@pytest.mark.parametrize("name", [n for n, info in ARRANGEMENTS.items() if not info.needs_tasks])
def test_other_arrangements_work_without_tasks(name):
    train, e_train, e_test, _ = data(0, 3, 3, with_tasks=False)
    kw = {"start": 0, "size": 1} if name == "tma-window" else {}
    a = arrange(name, train, e_train, e_test, **kw)
    assert len(a.ids) > 0 and a.table["task"].isna().all()


def test_bad_input():
    train, e_train, e_test, _ = data(0, 3, 3)
    with pytest.raises(ArrangementError, match="unknown arrangement"):
        arrange("nearest", train, e_train, e_test)
    with pytest.raises(ArrangementError, match="takes no parameter"):
        arrange("random", train, budget=3)
    with pytest.raises(ArrangementError, match="takes no parameter"):
        arrange("nft", train, e_train, e_test, order="fft")  # the name fixes the order
    with pytest.raises(ArrangementError, match="needs train_emb and test_emb"):
        arrange("nft", train)
    with pytest.raises(ArrangementError, match="expected .* rows"):
        arrange("nft", train, e_train[:-1], e_test)
    with pytest.raises(ArrangementError, match="dimension"):
        arrange("nft", train, e_train, e_test[:, :3])
    with pytest.raises(ArrangementError, match="empty"):
        arrange("random", table([]))
    with pytest.raises(ArrangementError, match="order must be"):
        by_similarity(train, e_train, e_test, "nearest")
    with pytest.raises(ArrangementError, match="granularity"):
        by_similarity(train, e_train, e_test, "nft", granularity="medium")
    nan = e_train.copy()
    nan[2, 0] = np.nan
    with pytest.raises(ArrangementError, match="row 2 has a NaN"):
        arrange("tma-nft", train, nan, e_test, budget=3)
    with pytest.raises(ArrangementError, match="window"):
        arrange("tma-window", train, e_train, e_test, start=-1)


def test_arrangement_accepts_a_dataframe():
    train, e_train, e_test, _ = data(1, 3, 3)
    df = train.to_pandas()
    assert arrange("cluster", df, seed=1).ids == arrange("cluster", train, seed=1).ids
