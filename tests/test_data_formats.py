"""P3, ShareGPT and NoRobots loaders and the data.load dispatcher."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zsg_lib.data import KINDS, load, load_norobots, load_p3, load_sharegpt
from zsg_lib.errors import DataError
from zsg_lib.schema import INSTANCE_SCHEMA


def jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# ---- P3 ------------------------------------------------------------------------------------

def p3_rec(i: int, task: str = "rte_GPT3") -> dict:
    return {"inputs": f"premise {i}. True or false?", "targets": "true", "task_name": task}


def test_p3_jsonl(tmp_path):
    t = load_p3(jsonl(tmp_path / "p3.jsonl", [p3_rec(0), p3_rec(1), p3_rec(0, "copa_plain")]))
    assert t.schema.equals(INSTANCE_SCHEMA)
    assert t.column("id").to_pylist() == ["rte_GPT3-0", "rte_GPT3-1", "copa_plain-0"]
    assert t.column("task").to_pylist() == ["rte_GPT3", "rte_GPT3", "copa_plain"]
    assert t.column("messages").to_pylist()[0] == [
        {"role": "user", "content": "premise 0. True or false?"},
        {"role": "assistant", "content": "true"}]


def test_p3_saved_dataset_folder_of_arrow_files(tmp_path):
    """The layout `datasets.save_to_disk` writes: Arrow IPC streams + JSON sidecars, one
    folder per prompted task; token ids in inputs/targets, text in *_pretokenized."""
    for task in ["super_glue_rte_GPT_3_style", "hellaswag_Predict_ending"]:
        split = tmp_path / "p3" / task / "train"
        split.mkdir(parents=True)
        table = pa.table({"inputs": [[1, 2, 3]] * 2, "targets": [[4]] * 2,
                          "inputs_pretokenized": [f"{task} q0", f"{task} q1"],
                          "targets_pretokenized": ["a0", "a1"]})
        with pa.ipc.new_stream(split / "data-00000-of-00001.arrow", table.schema) as w:
            w.write_table(table)
        (split / "state.json").write_text("{}")
        (split / "dataset_info.json").write_text("{}")
    t = load_p3(tmp_path / "p3")
    assert sorted(set(t.column("task").to_pylist())) == ["hellaswag_Predict_ending",
                                                         "super_glue_rte_GPT_3_style"]
    msgs = t.column("messages").to_pylist()
    assert msgs[0][0]["content"].endswith("q0") and msgs[0][1]["content"] == "a0"


def test_p3_parquet(tmp_path):
    pq.write_table(pa.Table.from_pylist([p3_rec(i) for i in range(4)]), tmp_path / "p3.parquet")
    assert load_p3(tmp_path / "p3.parquet").num_rows == 4


def test_p3_missing_target(tmp_path):
    bad = p3_rec(1)
    del bad["targets"]
    path = jsonl(tmp_path / "p3.jsonl", [p3_rec(0), bad])
    with pytest.raises(DataError, match=r"record 1.*'targets'.*missing") as err:
        load_p3(path)
    assert str(path) in str(err.value)


def test_p3_non_string_input(tmp_path):
    bad = p3_rec(0) | {"inputs": 7, "id": "x7"}
    with pytest.raises(DataError, match=r"record 0 \(id 'x7'\), field 'inputs'"):
        load_p3(jsonl(tmp_path / "p3.jsonl", [bad]))


def test_p3_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .parquet"):
        load_p3(tmp_path / "empty")


def test_p3_empty_file(tmp_path):
    (tmp_path / "p3.jsonl").write_text("")
    with pytest.raises(DataError, match="empty file"):
        load_p3(tmp_path / "p3.jsonl")


# ---- ShareGPT --------------------------------------------------------------------------------

def sg(i: int, turns=None) -> dict:
    turns = turns or [{"from": "human", "value": f"hi {i}"}, {"from": "gpt", "value": "hello"},
                      {"from": "human", "value": "how?"}, {"from": "gpt", "value": "so."}]
    return {"id": f"sg{i}", "conversations": turns}


def test_sharegpt_multi_turn(tmp_path):
    path = tmp_path / "sg.json"
    path.write_text(json.dumps([sg(0), sg(1)]))
    t = load_sharegpt(path, cache_dir=tmp_path / "c")
    assert t.column("task").null_count == 2
    assert set(t.column("source").to_pylist()) == {"sharegpt"}
    assert [m["role"] for m in t.column("messages").to_pylist()[0]] == [
        "user", "assistant", "user", "assistant"]


@pytest.mark.parametrize("turns,expected", [
    ([{"from": "human", "value": "anyone?"}], "no response"),
    ([{"from": "human", "value": None}, {"from": "gpt", "value": "x"}],
     r"conversations\[0\].value"),
])
def test_sharegpt_bad_conversations(tmp_path, turns, expected):
    path = tmp_path / "sg.json"
    path.write_text(json.dumps([sg(0), sg(1, turns)]))
    with pytest.raises(DataError, match=rf"record 1 \(id 'sg1'\).*{expected}"):
        load_sharegpt(path, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").iterdir())


def test_sharegpt_duplicate_ids(tmp_path):
    path = tmp_path / "sg.json"
    path.write_text(json.dumps([sg(0), sg(0)]))
    with pytest.raises(DataError, match="duplicate id"):
        load_sharegpt(path, cache_dir=tmp_path / "c")


# ---- NoRobots --------------------------------------------------------------------------------

def nr(i: int, **over) -> dict:
    r = {"prompt": f"p{i}", "prompt_id": f"nr{i}", "category": "Brainstorm",
         "messages": [{"role": "system", "content": "Be kind."},
                      {"role": "user", "content": f"ideas {i}?"},
                      {"role": "assistant", "content": "some"}]}
    return r | over


def test_norobots_parquet_folder(tmp_path):
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist([nr(0), nr(1)]), tmp_path / "data" / "train.parquet")
    pq.write_table(pa.Table.from_pylist([nr(2)]), tmp_path / "data" / "test.parquet")
    t = load_norobots(tmp_path)
    assert sorted(t.column("id").to_pylist()) == ["nr0", "nr1", "nr2"]
    assert t.column("task").null_count == 3
    assert json.loads(t.column("metadata")[0].as_py()) == {"category": "Brainstorm"}
    assert [m["role"] for m in t.column("messages").to_pylist()[0]] == [
        "system", "user", "assistant"]


@pytest.mark.parametrize("bad,expected", [
    (nr(1, messages=None), r"'messages'.*missing"),
    (nr(1, messages=[{"role": "user", "content": "hello?"}]), "no response"),
    (nr(1, messages=[{"role": "user", "content": 3}, {"role": "assistant", "content": "x"}]),
     r"messages\[0\].content"),
    (nr(0), "duplicate id"),
])
def test_norobots_bad_records(tmp_path, bad, expected):
    path = jsonl(tmp_path / "nr.jsonl", [nr(0), bad])
    with pytest.raises(DataError, match=rf"record 1 \(id 'nr[01]'\).*{expected}") as err:
        load_norobots(path)
    assert str(path) in str(err.value)


# ---- dispatcher ------------------------------------------------------------------------------

def test_every_catalog_entry_names_functions_that_take_its_options():
    """A catalog entry is plain text: each loader and own-split function it names exists, and
    each option it lists is a parameter of the loader and a key of a profile's dataset:."""
    import dataclasses
    import inspect

    from zsg_lib.data import DATASETS, _function
    from zsg_lib.profiles.profile import DatasetParams

    profile_keys = {f.name for f in dataclasses.fields(DatasetParams)}
    for kind, spec in DATASETS.items():
        takes = set(inspect.signature(_function(spec.loader)).parameters)
        if spec.own_split not in (None, "loaded"):
            takes |= set(inspect.signature(_function(spec.own_split)).parameters)
        assert set(spec.options) <= takes & profile_keys, kind
        assert (spec.path in ("file", "folder")) == bool(spec.reads), kind


def test_dispatcher_kinds(tmp_path):
    assert set(KINDS) == {"flan-mini", "niv2", "p3", "sharegpt", "norobots", "demo"}
    flan = tmp_path / "f.json"
    flan.write_text(json.dumps([{"id": "a", "source": "t", "conversations": [
        {"from": "human", "value": "q"}, {"from": "gpt", "value": "r"}]}]))
    assert load("flan_mini", flan, cache_dir=tmp_path / "c").table.num_rows == 1
    assert load("norobots", jsonl(tmp_path / "nr.jsonl", [nr(0)])).table.num_rows == 1
    with pytest.raises(DataError, match="unknown dataset kind 'alpaca'"):
        load("alpaca", flan)
    with pytest.raises(DataError, match="needs a path"):
        load("p3")
