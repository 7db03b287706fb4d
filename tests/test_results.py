"""load_runs: tidy tables over several runs."""

from __future__ import annotations

import json

import pytest
from factories import conv

from zsg_lib.errors import TrainError
from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, records as runs, train_run
from zsg_lib.train.records import load_runs


def test_load_runs_over_a_root_and_paths(tmp_path):
    train = instances_from_records([{"id": f"t{i}", "task": f"k{i % 2}",
                                     "messages": conv(f"{i}?", str(i))} for i in range(8)])
    test = instances_from_records([{"id": f"x{i}", "task": f"k{i % 2}",
                                    "messages": conv(f"{i}!", str(i))} for i in range(3)])
    base = dict(model="tiny", bf16_autocast=False, batch_size=2, eval_every=2)
    a = train_run(TrainConfig(**base), train, test, [f"t{i}" for i in range(8)],
                  runs_root=tmp_path, run_name="fwd", progress=False)
    b = train_run(TrainConfig(**base, learning_rate=1e-3), train, test,
                  [f"t{i}" for i in range(6)], runs_root=tmp_path, run_name="short",
                  progress=False)
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / runs.PARAMS).write_text(json.dumps(
        {"format_version": runs.FORMAT_VERSION, "run_id": "zzz", "config": {}}))

    assert b.config == TrainConfig(**base, learning_rate=1e-3)  # the record's config reads back
    t = load_runs(tmp_path)
    assert sorted(t.params.run_id) == sorted([a.run_id, b.run_id])
    row = t.params.set_index("run_id").loc[b.run_id]
    assert row["config.learning_rate"] == 1e-3 and row["name"] == "short"
    assert row["data.n_order"] == 6 and row["max_steps"] == 3
    assert len(t.log) == 4 + 3
    assert len(t.scores) == 3 * (3 + 3)  # a: steps 0,2,4; b: 0,2,3
    assert set(t.scores.columns) >= {"run_id", "step", "id", "task", "loss", "n_tokens", "rougeL"}
    curves = t.loss_curves(by=["task"])
    assert set(curves.columns) == {"run_id", "step", "task", "loss"}

    only_a = load_runs([a.path])
    assert only_a.params.run_id.tolist() == [a.run_id] and set(only_a.scores.run_id) == {a.run_id}
    with_unfinished = load_runs(tmp_path, include_unfinished=True)
    assert len(with_unfinished.params) == 3 and not with_unfinished.params.done.all()


def test_load_runs_errors(tmp_path):
    with pytest.raises(TrainError, match="no run record"):
        load_runs(tmp_path / "missing")
    d = tmp_path / "old"
    d.mkdir()
    (d / runs.PARAMS).write_text(json.dumps({"format_version": 99, "run_id": "x"}))
    (d / runs.DONE).write_text("{}")
    with pytest.raises(TrainError, match="format 99"):
        load_runs(d)


@pytest.mark.parametrize("query, match", [
    (["x0", "x9"], r"query_ids: 1 id\(s\) not in the test set, e.g. \['x9'\]"),
    ([], r"query_ids: empty"),
    (["x0", "x0"], r"query_ids: an id appears twice"),
])
def test_a_query_split_that_is_not_the_test_sets_is_refused_before_work(tmp_path, query,
                                                                        match):
    train = instances_from_records([{"id": f"t{i}", "task": "k", "messages": conv(f"{i}?", "a")}
                                    for i in range(4)])
    test = instances_from_records([{"id": f"x{i}", "task": "k", "messages": conv(f"{i}!", "b")}
                                   for i in range(3)])
    with pytest.raises(TrainError, match=match):
        train_run(TrainConfig(model="tiny", bf16_autocast=False, batch_size=2), train, test,
                  ["t0", "t1"], runs_root=tmp_path, progress=False, query_ids=query)
    assert not any(tmp_path.iterdir())  # nothing started
