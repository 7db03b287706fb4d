"""Issue 10, data layer: nothing wrong gets in silently.

Every bad input is a DataError naming the file, the record (index and id) and the field, and
saying what would be right. One section per class of fault:

1. conversation structure   2. blank task names and ids   3. file formats
4. messages that point at the right place   5. numbers   6. argument types   7. the cache
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zsg_lib.data import (
    cache as cache_mod,
    load_flan_mini,
    load_niv2,
    load_norobots,
    load_p3,
    load_sharegpt,
    niv2_split,
    sample_per_task,
    split_instances,
    split_tasks,
)
from zsg_lib.data.jsonfiles import file_format, iter_records
from zsg_lib.data.split import TaskList, read_task_list
from zsg_lib.errors import DataError, DataWarning
from zsg_lib.schema import instances_from_records, text_view, validate_instances

REPO = Path(__file__).resolve().parents[1]


def turn(speaker: str, text: str) -> dict:
    return {"from": speaker, "value": text}


def flan(i: int, turns: list | None = None, **over) -> dict:
    turns = turns if turns is not None else [turn("human", f"q{i}"), turn("gpt", f"a{i}")]
    return {"id": f"r{i}", "source": "t0", "conversations": turns} | over


def write_json(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def error_of(fn, *args, **kw) -> str:
    with pytest.raises(DataError) as err:
        fn(*args, **kw)
    return str(err.value)


def assert_parts(msg: str, *parts: str) -> None:
    for part in parts:
        assert part in msg, (part, msg)


# ---- 1. conversation structure -------------------------------------------------------------

H, G, S = "human", "gpt", "system"

BAD_CONVERSATIONS = {
    # name: (turns as (speaker, text), index of the turn at fault, key at fault, words)
    "greeting before the first user turn": (
        [(G, "Hello! How can I help?"), (H, "2+2?"), (G, "4")], 0, "from", ["greeting", "'user'"]),
    "assistant only": ([(G, "4")], 0, "from", ["no prompt"]),
    "assistant first, no user at all": ([(S, "be brief"), (G, "4")], 1, "from", ["no prompt"]),
    "system turn in the middle": (
        [(H, "q"), (G, "a"), (S, "now be rude"), (H, "q2"), (G, "a2")], 2, "from",
        ["system turns may only come first"]),
    "two user turns in a row": ([(H, "q"), (H, "more"), (G, "a")], 1, "from",
                                ["alternate", "merge"]),
    "two assistant turns in a row": ([(H, "q"), (G, "a"), (G, "b")], 2, "from",
                                     ["alternate", "expected 'user'"]),
    "only system turns": ([(S, "be brief"), (S, "really")], 1, "from", ["only system turns"]),
    "blank response": ([(H, "q"), (G, "   ")], 1, "value", ["whitespace only"]),
    "empty response": ([(H, "q"), (G, "")], 1, "value", ["is empty"]),
    "empty prompt": ([(H, ""), (G, "a")], 0, "value", ["user turn is empty"]),
    "blank middle answer": ([(H, "q"), (G, "\n"), (H, "q2"), (G, "a2")], 1, "value",
                            ["whitespace only"]),
}


def _turns(spec: list) -> list:
    return [turn(s, t) for s, t in spec]


@pytest.mark.parametrize("case", list(BAD_CONVERSATIONS))
@pytest.mark.parametrize("loader", ["flan-mini", "sharegpt"])
def test_bad_conversation_structure_is_refused(tmp_path, case, loader):
    spec, at, key, words = BAD_CONVERSATIONS[case]
    src = write_json(tmp_path / "data.json", [flan(0), flan(1, _turns(spec))])
    load = load_flan_mini if loader == "flan-mini" else load_sharegpt
    msg = error_of(load, src, cache_dir=tmp_path / "c")
    assert_parts(msg, str(src), "record 1", "'r1'", f"conversations[{at}].{key}", *words)
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").iterdir())  # no cache


def test_empty_conversation_names_the_field(tmp_path):
    src = write_json(tmp_path / "data.json", [flan(0, [])])
    msg = error_of(load_flan_mini, src, cache_dir=tmp_path / "c")
    assert_parts(msg, "record 0", "'r0'", "field 'conversations'", "no turns")


@pytest.mark.parametrize("spec", [
    [(S, "be brief"), (S, ""), (H, "q"), (G, "a")],           # several system turns, one blank
    [(H, "q"), (G, "a"), (H, "q2"), (G, "a2"), (H, "thanks")],  # unanswered follow-up dropped
])
def test_valid_conversations_load_and_first_turn_is_the_first_exchange(tmp_path, spec):
    src = write_json(tmp_path / "data.json", [flan(0, _turns(spec))])
    t = load_flan_mini(src, cache_dir=tmp_path / "c")
    roles = [m["role"] for m in t.column("messages").to_pylist()[0]]
    assert roles[-1] == "assistant"
    first_user = next(text for s, text in spec if s == H)
    first_answer = next(text for s, text in spec if s == G)
    assert text_view(t, "first_turn") == [f"{first_user} {first_answer}"]


@pytest.mark.parametrize("messages,field,words", [
    ([{"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "q"},
      {"role": "assistant", "content": "a"}], "messages[0].role", ["greeting"]),
    ([{"role": "user", "content": "q"}, {"role": "user", "content": "q2"},
      {"role": "assistant", "content": "a"}], "messages[1].role", ["alternate"]),
    ([{"role": "user", "content": "q"}, {"role": "narrator", "content": "a"}],
     "messages[1].role", ["unknown role 'narrator'"]),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}],
     "messages[1].content", ["whitespace only"]),
])
def test_norobots_messages_follow_the_same_rules(tmp_path, messages, field, words):
    good = {"prompt_id": "p0", "messages": [{"role": "user", "content": "q"},
                                            {"role": "assistant", "content": "a"}]}
    path = write_jsonl(tmp_path / "nr.jsonl", [good, {"prompt_id": "p1", "messages": messages}])
    msg = error_of(load_norobots, path)
    if "narrator" in words[0]:  # NoRobots maps speakers first: an unknown one is named there
        words = ["unknown speaker 'narrator'"]
    assert_parts(msg, str(path), "record 1", "'p1'", field, *words)


@pytest.mark.parametrize("messages,field,words", [
    ([{"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "q"},
      {"role": "assistant", "content": "a"}], "messages[0].role", ["'user'"]),
    ([{"role": "user", "content": "q"}, {"role": "system", "content": "x"},
      {"role": "assistant", "content": "a"}], "messages[1].role", ["only come first"]),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
      {"role": "user", "content": "q2"}], "messages[2].role", ["no response"]),
    ([{"role": "user", "content": "q"}, {"role": "critic", "content": "a"}],
     "messages[1].role", ["unknown role 'critic'"]),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}],
     "messages[1].content", ["is empty"]),
])
def test_validate_instances_checks_the_conversation_rules(messages, field, words):
    good = {"id": "ok", "task": "t", "messages": [{"role": "user", "content": "q"},
                                                  {"role": "assistant", "content": "a"}]}
    t = instances_from_records([good, {"id": "bad", "task": "t", "messages": messages}])
    msg = error_of(validate_instances, t, "mydata.json")
    assert_parts(msg, "mydata.json", "record 1", "'bad'", field, *words)


# ---- 2. blank task names and ids -----------------------------------------------------------

@pytest.mark.parametrize("blank", ["", "  ", "\t"])
def test_flan_blank_task_name(tmp_path, blank):
    src = write_json(tmp_path / "f.json", [flan(0), flan(1, source=blank)])
    msg = error_of(load_flan_mini, src, cache_dir=tmp_path / "c")
    assert_parts(msg, str(src), "record 1", "'r1'", "field 'source'", "task name")


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_id(tmp_path, blank):
    src = write_json(tmp_path / "f.json", [flan(0), flan(1, id=blank)])
    msg = error_of(load_sharegpt, src, cache_dir=tmp_path / "c")
    assert_parts(msg, str(src), "record 1", "field 'id'", "empty id", "non-blank")


def p3(i: int, **over) -> dict:
    return {"inputs": f"q{i}", "targets": f"a{i}", "task_name": "rte"} | over


@pytest.mark.parametrize("key,blank", [("task_name", ""), ("task_name", "  "), ("task", "")])
def test_p3_blank_task_is_an_error_not_the_file_stem(tmp_path, key, blank):
    bad = {k: v for k, v in p3(1).items() if k != "task_name"} | {key: blank}
    path = write_jsonl(tmp_path / "fallback_name.jsonl", [p3(0), bad])
    msg = error_of(load_p3, path)
    assert_parts(msg, str(path), "record 1", f"field {key!r}", "task name")


def test_p3_absent_task_falls_back_to_the_file_stem(tmp_path):
    path = write_jsonl(tmp_path / "copa_plain.jsonl", [{"inputs": "q", "targets": "a"}])
    assert load_p3(path).column("task").to_pylist() == [path.stem]


@pytest.mark.parametrize("over,field", [({"targets": " "}, "targets"), ({"inputs": ""}, "inputs"),
                                        ({"id": " "}, "id")])
def test_p3_blank_text_or_id(tmp_path, over, field):
    path = write_jsonl(tmp_path / "p3.jsonl", [p3(0), p3(1, **over)])
    assert_parts(error_of(load_p3, path), str(path), "record 1", f"field {field!r}")


def niv2_task(name: str, n: int = 3, **over) -> dict:
    return {"Definition": [f"Do {name}."], "Positive Examples": [{"input": "x", "output": "y"}],
            "Categories": ["c"],
            "Instances": [{"id": f"{name}-{i}", "input": f"in {i}", "output": [f"out {i}"]}
                          for i in range(n)]} | over


def niv2_root(tmp_path: Path, train=("ta", "tb"), test=("tc",), **tasks) -> Path:
    root = tmp_path / "niv2"
    (root / "tasks").mkdir(parents=True)
    (root / "splits" / "default").mkdir(parents=True)
    for name in {*train, *test}:
        data = tasks.get(name) or niv2_task(name)
        (root / "tasks" / f"{name}.json").write_text(json.dumps(data))
    (root / "splits/default/train_tasks.txt").write_text("".join(f"{t}\n" for t in train))
    (root / "splits/default/test_tasks.txt").write_text("".join(f"{t}\n" for t in test))
    return root


@pytest.mark.parametrize("definition,words", [
    ([], ["empty list", "definition"]), ([""], ["is empty"]), (["  ", "\n"], ["whitespace"]),
    ("", ["is empty"]),
])
def test_niv2_blank_definition(tmp_path, definition, words):
    root = niv2_root(tmp_path, tb=niv2_task("tb", Definition=definition))
    msg = error_of(load_niv2, root)
    assert_parts(msg, str(root / "tasks" / "tb.json"), "field 'Definition'", *words)


def test_niv2_blank_reference_output(tmp_path):
    task = niv2_task("tc")
    task["Instances"][1]["output"] = [" ", "real"]
    root = niv2_root(tmp_path, tc=task)
    msg = error_of(load_niv2, root)
    assert_parts(msg, str(root / "tasks" / "tc.json"), "record 1", "'tc-1'", "output[0]")


def test_validate_instances_blank_task():
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    t = instances_from_records([{"id": "a", "task": "t", "messages": msgs},
                                {"id": "b", "task": " ", "messages": msgs}])
    assert_parts(error_of(validate_instances, t, "x"), "record 1", "'b'", "field 'task'")


# ---- 3. file formats -----------------------------------------------------------------------

RECORDS = [flan(0), flan(1)]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_utf8_bom_is_skipped(tmp_path, fmt):
    path = (write_json if fmt == "json" else write_jsonl)(tmp_path / f"f.{fmt}", RECORDS)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert file_format(path) == fmt
    t = load_flan_mini(path, cache_dir=tmp_path / "c")
    assert t.column("id").to_pylist() == [r["id"] for r in RECORDS]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_gzip_is_read_transparently(tmp_path, fmt):
    plain = (write_json if fmt == "json" else write_jsonl)(tmp_path / f"f.{fmt}", RECORDS)
    gz = tmp_path / f"f.{fmt}.gz"
    gz.write_bytes(gzip.compress(b"\xef\xbb\xbf" + plain.read_bytes()))
    assert [r for _, r in iter_records(gz)] == RECORDS
    assert load_sharegpt(gz, cache_dir=tmp_path / "c").num_rows == len(RECORDS)


def test_gzip_in_a_p3_folder(tmp_path):
    (tmp_path / "p3").mkdir()
    (tmp_path / "p3" / "rte.jsonl.gz").write_bytes(
        gzip.compress("".join(json.dumps(p3(i)) + "\n" for i in range(3)).encode()))
    assert load_p3(tmp_path / "p3").num_rows == 3


def test_truncated_gzip(tmp_path):
    data = gzip.compress(json.dumps([flan(i) for i in range(200)]).encode())
    path = tmp_path / "f.json.gz"
    path.write_bytes(data[: len(data) // 2])
    assert_parts(error_of(lambda: list(iter_records(path))), str(path), "gzip")


@pytest.mark.parametrize("encoding,name", [("utf-16", "UTF-16"), ("utf-16-le", "UTF-16"),
                                           ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32")])
@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_wide_encodings_say_re_encode_as_utf8(tmp_path, encoding, name, fmt):
    text = json.dumps(RECORDS) if fmt == "json" else json.dumps(RECORDS[0]) + "\n"
    path = tmp_path / f"f.{fmt}"
    path.write_bytes(text.encode(encoding))
    msg = error_of(load_flan_mini, path, cache_dir=tmp_path / "c")
    assert_parts(msg, str(path), name, "re-encode it as UTF-8")


def test_invalid_utf8_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "f.jsonl", RECORDS)
    path.write_bytes(path.read_bytes() + '{"id": "r2", "source": "caf\xe9"}\n'.encode("latin-1"))
    msg = error_of(lambda: list(iter_records(path)))
    assert_parts(msg, str(path), f"record {len(RECORDS)}", f"line {len(RECORDS) + 1}", "UTF-8")


@pytest.mark.parametrize("wrapper,keys,array_key", [
    ({"data": RECORDS, "version": "1.0"}, ["'data'", "'version'"], "data"),
    ({"version": "1.0", "records": RECORDS}, ["'version'", "'records'"], "records"),
    ({"meta": {"n": 2}}, ["'meta'"], None),
])
def test_json_object_wrapping_the_array(tmp_path, wrapper, keys, array_key):
    path = tmp_path / "f.json"
    path.write_text(json.dumps(wrapper, indent=2))
    msg = error_of(load_flan_mini, path, cache_dir=tmp_path / "c")
    assert_parts(msg, str(path), "JSON object with key", *keys, "expected an array of records")
    assert (f"under {array_key!r}" in msg) == (array_key is not None)


@pytest.mark.parametrize("loader,records", [
    (load_flan_mini, RECORDS),
    (load_sharegpt, [{"id": f"r{i}", "messages": [{"role": "user", "content": "q"},
                                                 {"role": "assistant", "content": "a"}]}
                     for i in range(3)]),
])
def test_object_wrapping_the_records_on_one_line(tmp_path, loader, records):
    """One line holding ``{"data": [...]}`` parses as a one-record JSON Lines file: the
    message says the records are wrapped, under which key, and what was expected."""
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"version": 2, "data": records}))  # no newline: one line
    msg = error_of(loader, path, cache_dir=tmp_path / "c")
    assert_parts(msg, str(path), "record 0", "field 'id'", "missing",
                 f"'data' holds {len(records)} records", "wraps its records in an object",
                 "expected a JSON array of records or JSON Lines", "write the array under 'data'")


def test_a_missing_field_in_a_real_record_gets_no_wrapper_hint(tmp_path):
    path = write_jsonl(tmp_path / "f.jsonl", [{"id": "r0", "source": "t0",
                                               "turns": [{"from": "human", "value": "q"}]}])
    msg = error_of(load_flan_mini, path, cache_dir=tmp_path / "c")
    assert_parts(msg, "field 'conversations'", "missing")
    assert "wraps" not in msg


def _line_col(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


@pytest.mark.parametrize("sep", ["", "\n", "\n\n  "])
def test_two_arrays_concatenated(tmp_path, sep):
    first = json.dumps([flan(0), flan(1), flan(2)], indent=1)
    text = first + sep + json.dumps([flan(3)], indent=1)
    path = tmp_path / "f.json"
    path.write_text(text)
    line, col = _line_col(text, len(first) + len(sep))
    msg = error_of(load_flan_mini, path, cache_dir=tmp_path / "c")
    assert_parts(msg, str(path), f"second JSON value starts at line {line}, column {col}",
                 "3 record(s)", "one array")


def test_second_value_found_across_read_chunks(tmp_path, monkeypatch):
    from zsg_lib.data import jsonfiles as records

    monkeypatch.setattr(records, "_CHUNK", 7)  # strings and brackets straddle chunk ends
    first = json.dumps([flan(0, source='t "quoted" [0] \\ {x}'), flan(1)], indent=1)
    text = first + "\n" + json.dumps([flan(2)])
    path = tmp_path / "f.json"
    path.write_text(text)
    line, col = _line_col(text, len(first) + 1)
    assert_parts(error_of(lambda: list(iter_records(path))), f"line {line}, column {col}")


def test_pretty_printed_objects_one_after_another(tmp_path):
    first = json.dumps(flan(0), indent=2)
    text = first + "\n" + json.dumps(flan(1), indent=2)
    path = tmp_path / "f.jsonl"
    path.write_text(text)
    line, col = _line_col(text, len(first) + 1)
    msg = error_of(load_flan_mini, path, cache_dir=tmp_path / "c")
    assert_parts(msg, str(path), "one after another", f"line {line}, column {col}",
                 "each record on one line")


NONFINITE = ["NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("token", NONFINITE)
@pytest.mark.parametrize("fmt", ["json", "jsonl"])
@pytest.mark.parametrize("where_", ["score", "conversations[1].value"])
def test_nan_is_refused_alike_in_json_and_jsonl(tmp_path, token, fmt, where_):
    bad = flan(1, score=1.0) if where_ == "score" else flan(1)
    marker = "__HERE__"
    if where_ == "score":
        bad["score"] = marker
    else:
        bad["conversations"][1]["value"] = marker
    records = [flan(0), bad]
    if fmt == "json":
        text = json.dumps(records, indent=1)
    else:
        text = "".join(json.dumps(r) + "\n" for r in records)
    path = tmp_path / f"f.{fmt}"
    path.write_text(text.replace(f'"{marker}"', token))
    msg = error_of(load_flan_mini, path, cache_dir=tmp_path / "c")
    assert_parts(msg, str(path), "record 1", "'r1'", f"field {where_!r}",
                 f"{token} is not valid JSON", "null")


# ---- 4. messages that point at the right place ---------------------------------------------

def test_task_listed_twice_in_a_split_file(tmp_path):
    root = niv2_root(tmp_path, train=("ta", "tb"))
    split = root / "splits/default/train_tasks.txt"
    split.write_text("ta\n# comment\ntb\n\nta\n")
    for fn in (niv2_split, load_niv2):
        msg = error_of(fn, root)
        assert_parts(msg, str(split), "line 5", "'ta'", "listed twice", "first on line 1")
        assert "duplicate id" not in msg


def test_byte_order_mark_in_a_split_list_is_not_part_of_a_task_name(tmp_path):
    root = niv2_root(tmp_path, train=("ta", "tb"))
    split = root / "splits/default/train_tasks.txt"
    split.write_bytes(b"\xef\xbb\xbfta\ntb\n")  # as Notepad saves "UTF-8 with BOM"
    train, _ = niv2_split(root)
    assert list(train) == ["ta", "tb"]
    assert sorted(set(load_niv2(root).column("task").to_pylist())) == ["ta", "tb", "tc"]


def test_task_listed_twice_in_the_tasks_argument(tmp_path):
    root = niv2_root(tmp_path)
    msg = error_of(load_niv2, root, tasks=["ta", "tc", "ta"])
    assert_parts(msg, "tasks", "'ta'", "listed twice", "positions 0 and 2")
    assert "duplicate id" not in msg


def test_overlap_between_split_files_names_both_files_and_lines(tmp_path):
    root = niv2_root(tmp_path, train=("ta", "tb"), test=("tc", "tb"))
    msg = error_of(niv2_split, root)
    assert_parts(msg, "'tb'", "both train and test",
                 f"line 2 of {root / 'splits/default/train_tasks.txt'}",
                 f"line 2 of {root / 'splits/default/test_tasks.txt'}", "remove it")


def test_split_file_missing_task_names_line(tmp_path):
    root = niv2_root(tmp_path)
    split = root / "splits/default/test_tasks.txt"
    split.write_text("\ntc\ntz_missing\n")
    assert_parts(error_of(niv2_split, root), str(split), "entry 2", "line 3", "'tz_missing'")


def folder_where_a_file_is_expected(tmp_path: Path):
    (tmp_path / "d.json").mkdir()
    return tmp_path / "d.json"


@pytest.mark.parametrize("call", [
    lambda p, tmp: load_flan_mini(p, cache_dir=tmp / "c"),
    lambda p, tmp: load_sharegpt(p, cache_dir=tmp / "c"),
    lambda p, tmp: list(iter_records(p)),
    lambda p, tmp: file_format(p),
    lambda p, tmp: read_task_list(p),
])
def test_a_folder_where_a_file_is_expected(tmp_path, call):
    path = folder_where_a_file_is_expected(tmp_path)
    msg = error_of(call, path, tmp_path)
    assert_parts(msg, str(path), "is a folder, expected a file")
    assert "no such file" not in msg


def test_niv2_task_file_that_is_a_folder(tmp_path):
    root = niv2_root(tmp_path)
    (root / "tasks" / "tc.json").unlink()
    (root / "tasks" / "tc.json").mkdir()
    for fn in (niv2_split, load_niv2):
        assert_parts(error_of(fn, root), str(root / "tasks" / "tc.json"), "is a folder")
    assert_parts(error_of(load_niv2, root, tasks=["tc"]), "is a folder, expected a file")


def test_niv2_root_that_is_a_file_or_missing(tmp_path):
    f = tmp_path / "niv2.json"
    f.write_text("{}")
    assert_parts(error_of(load_niv2, f), str(f), "is a file, expected the NIV2 folder")
    assert_parts(error_of(niv2_split, tmp_path / "nope"), "no such folder")


SIZES = {"a": 3, "b": 2, "c": 4}
MSGS = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
T = instances_from_records([{"id": f"{k}{i}", "task": k, "messages": MSGS}
                            for k, n in SIZES.items() for i in range(n)])


def test_split_tasks_names_the_file_of_a_missing_task(tmp_path):
    path = tmp_path / "test_tasks.txt"
    path.write_text("b\n\nzz_missing\n")
    msg = error_of(split_tasks, T, test_tasks=read_task_list(path))
    assert_parts(msg, "test task(s) not in the data", "'zz_missing'", f"line 3 of {path}",
                 "check the names")


def test_split_tasks_names_the_files_of_an_overlap(tmp_path):
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("a\nb\n")
    test.write_text("c\nb\n")
    msg = error_of(split_tasks, T, train_tasks=read_task_list(train),
                   test_tasks=read_task_list(test))
    assert_parts(msg, "both train and test: ['b']", f"line 2 of {train}", f"line 2 of {test}")


def test_split_tasks_with_plain_lists_names_the_tasks():
    msg = error_of(split_tasks, T, train_tasks=["a", "c"], test_tasks=["c", "b"])
    assert_parts(msg, "['c']", "remove it")
    assert " of " not in msg.split(";")[0]  # no file claimed for lists given in code


def test_task_list_behaves_like_a_list(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a\nb\n")
    tl = read_task_list(path)
    assert tl == ["a", "b"] and tl + ["c"] == ["a", "b", "c"] and tl.where("b").endswith(str(path))
    assert TaskList(["a"]).where("a") == ""


# ---- 5. numbers ----------------------------------------------------------------------------

BAD_COUNTS = [0, -1, 2.5, 2.0, True, "3", None]


@pytest.mark.parametrize("n", BAD_COUNTS)
def test_sample_per_task_bad_n(n):
    assert f"n={n!r}" in error_of(sample_per_task, T, n)


@pytest.mark.parametrize("n", BAD_COUNTS)
def test_split_instances_bad_n_test(n):
    assert "n_test=" in error_of(split_instances, T, n)


@pytest.mark.parametrize("arg", ["n_train", "n_test"])
@pytest.mark.parametrize("n", [0, -2, 1.5, False])
def test_split_tasks_bad_counts(arg, n):
    kw = {"test_tasks": ["a"]} if arg == "n_train" else {"train_tasks": ["a"]}
    assert f"{arg}=" in error_of(split_tasks, T, **kw, **{arg: n})


@pytest.mark.parametrize("seed", [-1, 0.5, "0"])
def test_bad_seed(seed):
    assert "seed=" in error_of(sample_per_task, T, 1, seed=seed)
    assert "seed=" in error_of(split_tasks, T, n_test=1, seed=seed)


def test_numpy_integers_are_counts():
    assert sample_per_task(T, np.int64(2)).num_rows == 2 * len(SIZES)
    assert split_instances(T, np.int32(2)).test.num_rows == 2


@pytest.mark.parametrize("kw,arg", [({"k_positive": -1}, "k_positive"),
                                    ({"k_positive": True}, "k_positive"),
                                    ({"k_positive": 1.5}, "k_positive"),
                                    ({"instances_per_task": 0}, "instances_per_task"),
                                    ({"instances_per_task": 2.0}, "instances_per_task")])
def test_niv2_bad_counts(tmp_path, kw, arg):
    assert f"{arg}=" in error_of(load_niv2, niv2_root(tmp_path), **kw)


# ---- 6. argument types ---------------------------------------------------------------------

@pytest.mark.parametrize("kw,words", [
    ({"test_tasks": "b"}, ["test_tasks", "got the string 'b'", "['b']"]),
    ({"train_tasks": Path("train.txt")}, ["train_tasks", "got the path", "read_task_list"]),
    ({"test_tasks": ["b", 3]}, ["test_tasks[1]", "int"]),
    ({"test_tasks": ["b", " "]}, ["test_tasks[1]", "blank"]),
    ({"test_tasks": 5}, ["test_tasks", "int"]),
    ({"test_tasks": ["b", "b"]}, ["'b'", "listed twice"]),
])
def test_split_tasks_bad_task_lists(kw, words):
    assert_parts(error_of(split_tasks, T, **kw), *words)


@pytest.mark.parametrize("fn", [
    lambda t: sample_per_task(t, 1), lambda t: split_instances(t, 1),
    lambda t: split_tasks(t, n_test=1), lambda t: validate_instances(t),
])
@pytest.mark.parametrize("bad", [T.to_pylist(), T.to_pandas(), "data.json", T.drop(["task"])])
def test_table_arguments_of_the_wrong_kind(fn, bad):
    msg = error_of(fn, bad)
    assert "expected a pyarrow.Table" in msg or "missing column" in msg


def test_at_most_must_be_a_bool():
    assert "at_most=" in error_of(sample_per_task, T, 1, at_most="yes")


def test_niv2_tasks_given_as_a_string(tmp_path):
    root = niv2_root(tmp_path)
    assert_parts(error_of(load_niv2, root, tasks="tc"), "tasks", "got the string 'tc'")


# ---- 7. the cache ----------------------------------------------------------------------------

def _cache(tmp_path: Path) -> Path:
    [cache] = (tmp_path / "c").glob("*.parquet")
    return cache


def test_stale_temp_files_are_removed_on_the_next_write(tmp_path):
    cdir = tmp_path / "c"
    cdir.mkdir()
    stale, fresh = cdir / ".tmp-old.flan-mini.x.parquet.k1ll3d", cdir / ".tmp-now.parquet.w0rk"
    other = cdir / ".tmp-notes.txt.abc"  # not a cache temp: left alone
    for p in (stale, fresh, other):
        p.write_bytes(b"PAR1 half")
    old = os.stat(fresh).st_mtime - cache_mod.STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    load_flan_mini(write_json(tmp_path / "f.json", RECORDS), cache_dir=cdir)
    assert not stale.exists() and fresh.exists() and other.exists()


def test_a_killed_write_leaves_a_temp_file_that_the_next_run_removes(tmp_path, monkeypatch):
    src = write_json(tmp_path / "f.json", [flan(i) for i in range(30)])
    script = textwrap.dedent(f"""
        import os
        from zsg_lib.data import cache, flan_mini
        cache.BATCH_ROWS = 5
        def dying():
            for i, row in enumerate(flan_mini.flan_mini_rows({str(src)!r})):
                if i == 12:
                    os._exit(9)  # like a kill: no cleanup runs
                yield row
        cache.convert_cached({str(src)!r}, dying, kind="flan-mini",
                             cache_dir={str(tmp_path / 'c')!r})
    """)
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    assert subprocess.run([sys.executable, "-c", script], env=env).returncode == 9
    left = list((tmp_path / "c").glob(".tmp-*"))
    assert len(left) == 1 and not list((tmp_path / "c").glob("*.parquet"))
    monkeypatch.setattr(cache_mod, "STALE_TMP_SECONDS", 0)
    t = load_flan_mini(src, cache_dir=tmp_path / "c")
    assert t.num_rows == 30 and not left[0].exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupt_cache_is_rebuilt_with_a_warning(tmp_path, damage):
    src = write_json(tmp_path / "f.json", [flan(i) for i in range(20)])
    first = load_flan_mini(src, cache_dir=tmp_path / "c")
    cache = _cache(tmp_path)
    data = cache.read_bytes()
    cache.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00junk" * 50,
                       "empty": b""}[damage])
    with pytest.warns(DataWarning, match="rebuilding") as rec:
        again = load_flan_mini(src, cache_dir=tmp_path / "c")
    assert str(cache) in str(rec[0].message)
    assert again.equals(first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_flan_mini(src, cache_dir=tmp_path / "c").equals(first)  # healthy again


def test_read_cache_on_a_corrupt_file_says_to_delete_it(tmp_path):
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"PAR1 not really")
    assert_parts(error_of(cache_mod.read_cache, bad), str(bad), "corrupt", "delete it")


def test_a_cache_with_another_schema_is_rebuilt(tmp_path):
    src = write_json(tmp_path / "f.json", RECORDS)
    load_flan_mini(src, cache_dir=tmp_path / "c")
    pq.write_table(pa.table({"something": [1, 2]}), _cache(tmp_path))
    with pytest.warns(DataWarning):
        assert load_flan_mini(src, cache_dir=tmp_path / "c").num_rows == len(RECORDS)


def test_cache_dir_that_is_a_file(tmp_path):
    (tmp_path / "c").write_text("not a folder")
    src = write_json(tmp_path / "f.json", RECORDS)
    assert_parts(error_of(load_flan_mini, src, cache_dir=tmp_path / "c"), "is a file",
                 "expected a folder")


@pytest.mark.parametrize("call", [
    lambda bad: load_flan_mini(bad), lambda bad: load_sharegpt(bad), lambda bad: load_p3(bad),
    lambda bad: load_norobots(bad), lambda bad: load_niv2(bad), lambda bad: niv2_split(bad),
    lambda bad: read_task_list(bad), lambda bad: list(iter_records(bad)),
])
@pytest.mark.parametrize("bad", [123, ["a.json"], None, ""])
def test_paths_of_the_wrong_type(call, bad):
    assert "expected a file or folder path" in error_of(call, bad)


@pytest.mark.parametrize("track", [5, "", "../default", None])
def test_niv2_bad_track(tmp_path, track):
    assert "track=" in error_of(niv2_split, niv2_root(tmp_path), track)


def test_cache_dir_of_the_wrong_type(tmp_path):
    src = write_json(tmp_path / "f.json", RECORDS)
    assert_parts(error_of(load_flan_mini, src, cache_dir=3), "cache_dir", "int")
