"""The embedded demo suite: size, determinism, wording, length, and the documented split."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict

import pytest

from zsg_lib.data import demo_dataset, load
from zsg_lib.data.demo import HELD_OUT_FAMILIES, demo_json, task_templates


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    start = time.perf_counter()
    d = demo_dataset(cache_dir=tmp_path_factory.mktemp("demo"))
    return d, time.perf_counter() - start


def test_generation_is_fast(demo):
    _, seconds = demo
    assert seconds < 60


def test_same_seed_gives_identical_bytes_and_other_seeds_differ():
    a = demo_json(seed=3, instances_per_task=40)
    assert a == demo_json(seed=3, instances_per_task=40)
    assert a != demo_json(seed=4, instances_per_task=40)
    records = json.loads(a)
    assert {"id", "source", "conversations"} == set(records[0])  # Flan-mini's shape


def test_size_and_families(demo):
    d, _ = demo
    per_task = Counter(d.table.column("task").to_pylist())
    assert len(per_task) >= 120
    assert min(per_task.values()) >= 40
    assert d.families["family"].nunique() >= 15
    assert set(d.families["task"]) == set(per_task)
    assert set(d.table.column("source").to_pylist()) == {"flan-mini"}  # went through the loader
    assert d.path.suffix == ".json" and d.path.exists()


def test_each_task_has_its_own_wording_and_several_templates(demo):
    d, _ = demo
    templates = task_templates(0)
    assert all(len(t) >= 3 for t in templates.values())
    assert len({frozenset(t) for t in templates.values()}) == len(templates)
    # Several templates are in use within each task's instances.
    shapes = defaultdict(set)
    for task, msgs in zip(d.table.column("task").to_pylist(),
                          d.table.column("messages").to_pylist(), strict=True):
        shapes[task].add(msgs[0]["content"].split()[0])
    assert sum(len(s) >= 2 for s in shapes.values()) >= 0.9 * len(shapes)


def test_instances_are_short(demo):
    d, _ = demo
    words = [len(" ".join(m["content"] for m in msgs).split())
             for msgs in d.table.column("messages").to_pylist()]
    assert sum(words) / len(words) < 20  # ≈ 20–40 model tokens
    assert max(words) < 45


def test_instances_are_distinct_within_a_task(demo):
    d, _ = demo
    seen = Counter(zip(d.table.column("task").to_pylist(),
                       [m[0]["content"] for m in d.table.column("messages").to_pylist()],
                       strict=True))
    assert max(seen.values()) == 1


def test_default_split_has_near_and_far_test_tasks(demo):
    d, _ = demo
    f = d.families.set_index("task")
    assert not set(d.train_tasks) & set(d.test_tasks)
    assert set(d.train_tasks) | set(d.test_tasks) == set(f.index)
    assert (f.loc[list(d.test_tasks), "split"] == "test").all()
    # The documented example: en→fr months held out; en→de months and en→fr countries trained.
    assert "month_names_en_fr" in d.test_tasks
    assert {"month_names_en_de", "country_names_en_fr"} <= set(d.train_tasks)
    assert {"month_names_en_de", "country_names_en_fr"} <= set(
        f.loc["month_names_en_fr", "relatives"].split(", "))
    test = f.loc[list(d.test_tasks)]
    near, far = test[test.has_relative], test[~test.has_relative]
    assert len(near) >= 10 and len(far) >= 5
    assert set(far.family) == set(HELD_OUT_FAMILIES)
    assert not set(f[f.split == "train"].family) & set(HELD_OUT_FAMILIES)


def test_split_method_and_reuse(demo, tmp_path):
    d, _ = demo
    s = d.split()
    assert s.test_tasks == d.test_tasks and s.test.num_rows == 50 * len(d.test_tasks)
    mtime = d.path.stat().st_mtime_ns
    again = demo_dataset(cache_dir=d.path.parent)
    assert again.path == d.path and d.path.stat().st_mtime_ns == mtime  # not rewritten
    assert again.table.equals(d.table)


def test_dispatcher_demo(tmp_path):
    t = load("demo", tmp_path, seed=1, instances_per_task=40).table
    assert t.num_rows == 40 * 125
