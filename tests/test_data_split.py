"""Task splits, instance splits and per-task sampling."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings, strategies as st

from zsg_lib.data import (
    choose_split,
    query_split,
    sample_per_task,
    split_instances,
    split_tasks,
)
from zsg_lib.errors import DataError
from zsg_lib.schema import instances_from_records

MSGS = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def table(sizes: dict[str, int]):
    return instances_from_records([{"id": f"{t}-{i}", "task": t, "messages": MSGS}
                                   for t, n in sizes.items() for i in range(n)])


def ids(t) -> list[str]:
    return t.column("id").to_pylist()


T = table({"a": 5, "b": 3, "c": 4, "d": 6, "e": 2})


def test_explicit_lists():
    s = split_tasks(T, train_tasks=["a", "c"], test_tasks=["b"])
    assert s.train_tasks == ("a", "c") and s.test_tasks == ("b",)
    assert set(s.train.column("task").to_pylist()) == {"a", "c"} and s.train.num_rows == 9
    assert ids(s.test) == ["b-0", "b-1", "b-2"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.train_tasks = ()


def test_test_list_only_trains_on_the_rest():
    s = split_tasks(T, test_tasks=["e"])
    assert s.train_tasks == ("a", "b", "c", "d")
    assert split_tasks(T, test_tasks=["e"], n_train=2, seed=3).train_tasks == \
        split_tasks(T, test_tasks=["e"], n_train=2, seed=3).train_tasks


def test_choose_split_lists_win_then_the_own_split_then_a_random_one():
    own = (["a", "b", "c"], ["d", "e"])
    assert choose_split(T, own=own).test_tasks == ("d", "e")
    # an explicit test list replaces the own test side and leaves the own training side
    s = choose_split(T, own=own, test_tasks=["c"])
    assert (s.train_tasks, s.test_tasks) == (("a", "b"), ("c",))
    # without lists or an own split: a seeded random split, one test task by default
    assert len(choose_split(T, seed=4).test_tasks) == 1
    assert choose_split(T, seed=4).test_tasks == choose_split(T, seed=4).test_tasks


def test_choose_split_draws_from_a_listed_side_seeded_apart():
    own = (["a", "b", "c", "d"], ["e"])
    draws = {choose_split(T, own=own, n_train_tasks=2, seed=s).train_tasks for s in range(8)}
    assert all(len(d) == 2 and set(d) <= set(own[0]) for d in draws) and len(draws) > 1
    with pytest.raises(DataError, match="n_test_tasks: 3 asked, 1 available"):
        choose_split(T, own=own, n_test_tasks=3)


def test_overlap_is_an_error():
    with pytest.raises(DataError, match=r"both train and test: \['b'\]"):
        split_tasks(T, train_tasks=["a", "b"], test_tasks=["b", "c"])


def test_unknown_task_is_an_error():
    with pytest.raises(DataError, match="test task.*'zz'"):
        split_tasks(T, test_tasks=["zz"])


def test_random_split_is_seeded_and_disjoint():
    s1 = split_tasks(T, n_test=2, seed=7)
    s2 = split_tasks(T, n_test=2, seed=7)
    assert s1.test_tasks == s2.test_tasks and s1.train_tasks == s2.train_tasks
    assert len(s1.test_tasks) == 2 and len(s1.train_tasks) == 3
    assert not set(s1.train_tasks) & set(s1.test_tasks)
    seen = {split_tasks(T, n_test=2, seed=k).test_tasks for k in range(20)}
    assert len(seen) > 1  # the seed matters


def test_random_split_too_many_tasks():
    with pytest.raises(DataError, match="n_test=9"):
        split_tasks(T, n_test=9)
    with pytest.raises(DataError, match="needs"):
        split_tasks(T)


def test_split_tasks_needs_task_labels():
    untasked = instances_from_records([{"id": str(i), "messages": MSGS} for i in range(4)])
    with pytest.raises(DataError, match="split_instances"):
        split_tasks(untasked, n_test=1)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 5), min_size=2, max_size=8),
       seed=st.integers(0, 2**31), frac=st.floats(0.01, 0.99))
def test_random_split_partitions_the_instances(sizes, seed, frac):
    t = table({f"t{k}": n for k, n in enumerate(sizes)})
    n_test = max(1, min(len(sizes) - 1, round(frac * len(sizes))))
    s = split_tasks(t, n_test=n_test, seed=seed)
    assert not set(s.train_tasks) & set(s.test_tasks)
    assert sorted(ids(s.train) + ids(s.test)) == sorted(ids(t))


def test_split_instances():
    untasked = instances_from_records([{"id": str(i), "messages": MSGS} for i in range(20)])
    s = split_instances(untasked, 5, seed=1)
    assert s.test.num_rows == 5 and s.train.num_rows == 15
    assert not set(ids(s.train)) & set(ids(s.test))
    assert ids(s.test) == ids(split_instances(untasked, 5, seed=1).test)
    assert ids(s.test) != ids(split_instances(untasked, 5, seed=2).test)
    with pytest.raises(DataError, match="n_test=20"):
        split_instances(untasked, 20)


def test_sample_per_task():
    s = sample_per_task(T, 2, seed=0)
    tasks = s.column("task").to_pylist()
    assert {t: tasks.count(t) for t in set(tasks)} == {t: 2 for t in "abcde"}
    assert ids(s) == [i for i in ids(T) if i in set(ids(s))]  # table order kept
    assert ids(sample_per_task(T, 2, seed=0)) == ids(s)
    assert any(ids(sample_per_task(T, 2, seed=k)) != ids(s) for k in range(1, 6))


def test_sample_larger_than_a_task_names_the_task():
    with pytest.raises(DataError, match="task 'e' has 2 instance"):
        sample_per_task(T, 3)
    s = sample_per_task(T, 3, at_most=True)
    tasks = s.column("task").to_pylist()
    assert tasks.count("e") == 2 and tasks.count("a") == 3


def test_sample_bad_n():
    with pytest.raises(DataError, match="n=0"):
        sample_per_task(T, 0)


# --------------------------------------------------------------------------- query split


def test_query_split_takes_per_task_from_every_task_seeded_in_table_order():
    query, evaluation = query_split(T, 1, seed=[3, 2])
    assert sorted(query.column("task").to_pylist()) == ["a", "b", "c", "d", "e"]
    assert sorted(ids(query) + ids(evaluation)) == sorted(ids(T))
    order = ids(T)
    for part in (query, evaluation):  # table order kept
        assert [order.index(i) for i in ids(part)] == sorted(order.index(i) for i in ids(part))
    again, _ = query_split(T, 1, seed=[3, 2])
    assert ids(again) == ids(query)
    draws = {tuple(ids(query_split(T, 1, seed=[s, 2])[0])) for s in range(8)}
    assert len(draws) > 1  # the seed decides the draw


@pytest.mark.parametrize("per_task, match", [
    (2, r"per_task=2: test task 'e' has 2 instance\(s\), which leaves it no evaluation "
        r"instance; at most 1"),
    (0, r"per_task=0: must be >= 1"),
    (1.0, r"per_task=1.0: expected a whole number"),
])
def test_query_split_bad_input_names_the_task_or_argument(per_task, match):
    with pytest.raises(DataError, match=match):
        query_split(T, per_task)


def test_query_split_refuses_data_without_tasks():
    chats = instances_from_records([{"id": str(i), "messages": MSGS} for i in range(4)])
    with pytest.raises(DataError, match="needs tasks"):
        query_split(chats, 1)
