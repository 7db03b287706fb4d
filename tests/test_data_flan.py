"""Flan-mini loading: schema mapping, the Parquet cache, streaming, and the bad-input battery."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from zsg_lib.data import flan_mini, load_flan_mini
from zsg_lib.data.jsonfiles import iter_records
from zsg_lib.errors import DataError
from zsg_lib.schema import INSTANCE_SCHEMA


def rec(i: int, task: str = "t0", **over) -> dict:
    r = {"id": f"r{i}", "source": task,
         "conversations": [{"from": "human", "value": f"question {i}"},
                           {"from": "gpt", "value": f"answer {i}"}]}
    r.update(over)
    return r


def write(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


def cache_files(d: Path) -> list[Path]:
    return sorted(d.iterdir()) if d.exists() else []


def test_maps_records_to_schema(tmp_path):
    multi = rec(2, "t1")
    multi["conversations"] = [{"from": "system", "value": "be brief"},
                              *multi["conversations"],
                              {"from": "human", "value": "more?"},
                              {"from": "gpt", "value": "no"}]
    src = write(tmp_path / "flan.json", [rec(0), rec(1), multi])
    t = load_flan_mini(src, cache_dir=tmp_path / "c")
    assert t.schema.equals(INSTANCE_SCHEMA)
    assert t.column("id").to_pylist() == ["r0", "r1", "r2"]
    assert t.column("task").to_pylist() == ["t0", "t0", "t1"]
    assert set(t.column("source").to_pylist()) == {"flan-mini"}
    msgs = t.column("messages").to_pylist()
    assert msgs[0] == [{"role": "user", "content": "question 0"},
                       {"role": "assistant", "content": "answer 0"}]
    assert [m["role"] for m in msgs[2]] == ["system", "user", "assistant", "user", "assistant"]


def test_trailing_unanswered_turn_is_dropped(tmp_path):
    r = rec(0)
    r["conversations"].append({"from": "human", "value": "thanks"})
    t = load_flan_mini(write(tmp_path / "f.json", [r]), cache_dir=tmp_path / "c")
    assert t.column("messages").to_pylist()[0][-1] == {"role": "assistant", "content": "answer 0"}


def test_jsonl_is_accepted(tmp_path):
    src = tmp_path / "flan.jsonl"
    src.write_text("\n".join(json.dumps(rec(i)) for i in range(3)) + "\n")
    assert load_flan_mini(src, cache_dir=tmp_path / "c").num_rows == 3


def test_second_load_reads_the_cache(tmp_path, monkeypatch):
    src = write(tmp_path / "flan.json", [rec(i) for i in range(5)])
    first = load_flan_mini(src, cache_dir=tmp_path / "c")
    [cache] = cache_files(tmp_path / "c")
    assert cache.suffix == ".parquet"

    def boom(path):
        raise AssertionError("the source was parsed again")

    monkeypatch.setattr(flan_mini, "flan_mini_rows", boom)
    second = load_flan_mini(src, cache_dir=tmp_path / "c")
    assert second.equals(first)


def test_changed_source_invalidates_the_cache(tmp_path):
    src = write(tmp_path / "flan.json", [rec(i) for i in range(5)])
    assert load_flan_mini(src, cache_dir=tmp_path / "c").num_rows == 5
    write(src, [rec(i) for i in range(7)])
    assert load_flan_mini(src, cache_dir=tmp_path / "c").num_rows == 7


def test_default_cache_dir_is_under_zsg_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSG_HOME", str(tmp_path / "home"))
    load_flan_mini(write(tmp_path / "f.json", [rec(0)]))
    assert len(list((tmp_path / "home" / "datasets").glob("*.parquet"))) == 1


def test_records_stream_one_at_a_time(tmp_path):
    """The reader yields early records before it has seen the rest of the file."""
    src = tmp_path / "f.json"
    src.write_text(json.dumps([rec(0), rec(1)])[:-1] + ", {broken")
    it = iter_records(src)
    assert next(it)[1]["id"] == "r0"
    assert next(it)[1]["id"] == "r1"
    with pytest.raises(DataError):
        next(it)


def test_conversion_batches_large_files(tmp_path, monkeypatch):
    from zsg_lib.data import cache

    monkeypatch.setattr(cache, "BATCH_ROWS", 7)
    src = write(tmp_path / "f.json", [rec(i, f"t{i % 3}") for i in range(50)])
    t = load_flan_mini(src, cache_dir=tmp_path / "c")
    assert t.column("id").to_pylist() == [f"r{i}" for i in range(50)]


# ---- bad input: each case names the file, the record (index and id) and the field ----------

def _cases():
    good = [rec(0), rec(1)]
    no_conv = rec(1)
    del no_conv["conversations"]
    no_resp = rec(1)
    no_resp["conversations"] = [{"from": "human", "value": "hello?"}]
    only_resp = rec(1)
    only_resp["conversations"] = [{"from": "gpt", "value": "hi"}]
    non_str = rec(1)
    non_str["conversations"][1]["value"] = 42
    bad_speaker = rec(1)
    bad_speaker["conversations"][0]["from"] = "narrator"
    no_source = rec(1)
    del no_source["source"]
    turns_not_list = rec(1, conversations="hello")
    return {
        "missing conversations": ([good[0], no_conv], ["record 1", "'r1'", "conversations",
                                                       "missing"]),
        "no response turn": ([good[0], no_resp], ["record 1", "'r1'", "conversations",
                                                  "no response"]),
        "no prompt turn": ([good[0], only_resp], ["record 1", "'r1'", "no prompt"]),
        "non-string content": ([good[0], non_str], ["record 1", "'r1'",
                                                    "conversations[1].value", "int"]),
        "unknown speaker": ([good[0], bad_speaker], ["record 1", "'r1'",
                                                     "conversations[0].from", "narrator"]),
        "missing source": ([good[0], no_source], ["record 1", "'r1'", "source"]),
        "turns not a list": ([good[0], turns_not_list], ["record 1", "'r1'", "conversations"]),
        "duplicate id": ([rec(0), rec(1), rec(0)], ["record 2", "'r0'", "'id'", "duplicate",
                                                    "record 0"]),
        "missing id": ([rec(0), {"source": "t", "conversations": []}], ["record 1", "'id'"]),
        "record not an object": ([rec(0), "text"], ["record 1", "not an object"]),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_bad_records_raise_and_leave_no_cache(tmp_path, case):
    records, expected = _cases()[case]
    src = write(tmp_path / "bad.json", records)
    with pytest.raises(DataError) as err:
        load_flan_mini(src, cache_dir=tmp_path / "c")
    msg = str(err.value)
    assert str(src) in msg
    for part in expected:
        assert part in msg, (part, msg)
    assert cache_files(tmp_path / "c") == []  # no cache, no stray temporary file


def test_truncated_json_names_record_id_and_field(tmp_path):
    text = json.dumps([rec(0), rec(1), rec(2)], indent=1)
    src = tmp_path / "trunc.json"
    src.write_text(text[: text.index("answer 2") - 3])  # cut inside record 2's last turn
    with pytest.raises(DataError) as err:
        load_flan_mini(src, cache_dir=tmp_path / "c")
    msg = str(err.value)
    for part in [str(src), "record 2", "'r2'", "conversations", "truncated"]:
        assert part in msg, (part, msg)
    assert cache_files(tmp_path / "c") == []


def test_invalid_json_syntax(tmp_path):
    src = tmp_path / "bad.json"
    src.write_text('[{"id": "r0", "source": "t", "conversations": [}]')
    with pytest.raises(DataError, match=r"record 0 \(id 'r0'\), field 'conversations'"):
        load_flan_mini(src, cache_dir=tmp_path / "c")


def test_invalid_jsonl_line(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps(rec(0)) + "\n" + '{"id": "r1", "source": "t", "conversations": [,\n')
    with pytest.raises(DataError) as err:
        load_flan_mini(src, cache_dir=tmp_path / "c")
    for part in [str(src), "record 1", "'r1'", "conversations", "line 2"]:
        assert part in str(err.value)


@pytest.mark.parametrize("content,expected", [("", "empty file"), ("  \n", "empty file"),
                                              ("[]", "no records"), ("42", "expected")])
def test_empty_or_wrong_files(tmp_path, content, expected):
    src = tmp_path / "empty.json"
    src.write_text(content)
    with pytest.raises(DataError, match=expected) as err:
        load_flan_mini(src, cache_dir=tmp_path / "c")
    assert str(src) in str(err.value)
    assert cache_files(tmp_path / "c") == []


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_flan_mini(tmp_path / "nope.json", cache_dir=tmp_path / "c")


def test_result_is_an_arrow_table(tmp_path):
    t = load_flan_mini(write(tmp_path / "f.json", [rec(0)]), cache_dir=tmp_path / "c")
    assert isinstance(t, pa.Table)
