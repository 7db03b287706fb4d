"""P3 (T0's prompted datasets): records with an input text, a target text and a task name.

Accepted layouts (``path`` is a file or a folder searched recursively):

- JSON Lines / JSON arrays of ``{"inputs", "targets", "task_name"}``;
- Parquet files or Arrow files, e.g. a folder written by ``datasets.save_to_disk`` (read with
  pyarrow; the ``datasets`` package is not needed).

Text columns: ``inputs_pretokenized``/``targets_pretokenized`` when present (Hugging Face's P3
stores token ids in ``inputs``/``targets``), else ``inputs``/``targets``; neither may be blank.
The task is the record's ``task_name`` or ``task``; only when the record has neither (absent
or null) does it fall back to the first sub-folder below ``path`` that is not a split name
(P3 keeps one folder per prompted task), else the file's stem. An empty or whitespace-only
task name is an error, never replaced. Ids are the record's ``id`` if any (not blank), else
``<task>-<n>``.

>>> import json, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "p3.jsonl"
>>> _ = p.write_text(json.dumps({"inputs": "Is 3 odd?", "targets": "yes",
...                              "task_name": "odd_GPT3_style"}) + "\\n")
>>> t = load_p3(p)
>>> t.column("id").to_pylist(), t.column("task").to_pylist()
(['odd_GPT3_style-0'], ['odd_GPT3_style'])
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import DataError, where
from ..schema import INSTANCE_SCHEMA, validate_instances
from .jsonfiles import as_path
from .source_records import IdSet, data_files, iter_any, record_id, require_text

SOURCE = "p3"
SPLIT_NAMES = {"train", "validation", "test", "dev", "data"}


def _task_from_path(root: Path, file: Path) -> str:
    if root.is_dir():
        for part in file.relative_to(root).parent.parts:
            if part.lower() not in SPLIT_NAMES:
                return part
        if root.name.lower() not in SPLIT_NAMES:
            return root.name
    return file.stem


def _text(rec: Any, keys: tuple[str, str], loc: tuple, what: str) -> str:
    """The first of ``keys`` present in ``rec``, checked to be a string that is not blank."""
    key = keys[0] if isinstance(rec, dict) and rec.get(keys[0]) is not None else keys[1]
    return require_text(rec, key, loc, what)


def _task(rec: dict, loc: tuple, root: Path, file: Path) -> str:
    """The record's task name (``task_name`` or ``task``), else the one its path implies."""
    for key in ("task_name", "task"):
        if rec.get(key) is not None:
            return require_text(rec, key, loc, "task name")
    return _task_from_path(root, file)


def load_p3(path: str | Path) -> pa.Table:
    """Load P3 records from a file or folder as an instance table (see module doc)."""
    root = as_path(path)
    data_files(root)  # fails early, naming the path, when there is nothing to read
    counters: Counter[str] = Counter()
    ids = IdSet()
    rows: dict[str, list] = {n: [] for n in INSTANCE_SCHEMA.names}
    for file, index, rec in iter_any(root):
        if not isinstance(rec, dict):
            raise DataError(f"{where(file, index, None, None)}: record is not an object")
        rid = record_id(rec, file, index) if rec.get("id") is not None else None
        loc = (file, index, rid)
        task = _task(rec, loc, root, file)
        prompt = _text(rec, ("inputs_pretokenized", "inputs"), loc, "prompt text")
        target = _text(rec, ("targets_pretokenized", "targets"), loc, "target text")
        if rid is None:
            rid = f"{task}-{counters[task]}"
        counters[task] += 1
        ids.add(str(rid), file, index)
        rows["id"].append(str(rid))
        rows["task"].append(task)
        rows["messages"].append([{"role": "user", "content": prompt},
                                 {"role": "assistant", "content": target}])
        rows["source"].append(SOURCE)
        choices = rec.get("answer_choices")
        rows["metadata"].append(json.dumps({"answer_choices": choices} if choices else {},
                                           ensure_ascii=False))
    return validate_instances(pa.Table.from_pydict(rows, schema=INSTANCE_SCHEMA), str(root))
