"""P3 (T0's prompted datasets): records with an input text, a target text and a task name.

Accepted layouts (``path`` is a file or a folder searched recursively):

- JSON Lines / JSON arrays of ``{"inputs", "targets", "task_name"}``;
- Parquet files or Arrow files, e.g. a folder written by ``datasets.save_to_disk`` (read with
  pyarrow; the ``datasets`` package is not needed).

Text columns: ``inputs_pretokenized``/``targets_pretokenized`` when present (Hugging Face's P3
stores token ids in ``inputs``/``targets``), else ``inputs``/``targets``. The task is the
record's ``task_name`` or ``task``; without one, the first sub-folder below ``path`` that is not
a split name (P3 keeps one folder per prompted task), else the file's stem. Ids are the
record's ``id`` if any, else ``<task>-<n>``.

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
from .records import IdSet, data_files, iter_any, require

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


def _text(rec: Any, keys: tuple[str, str], loc: tuple) -> str:
    """The first of ``keys`` present in ``rec``, checked to be a string."""
    key = keys[0] if isinstance(rec, dict) and rec.get(keys[0]) is not None else keys[1]
    return require(rec, key, str, loc)


def load_p3(path: str | Path) -> pa.Table:
    """Load P3 records from a file or folder as an instance table (see module doc)."""
    root = Path(path)
    data_files(root)  # fails early, naming the path, when there is nothing to read
    counters: Counter[str] = Counter()
    ids = IdSet()
    rows: dict[str, list] = {n: [] for n in INSTANCE_SCHEMA.names}
    for file, index, rec in iter_any(root):
        if not isinstance(rec, dict):
            raise DataError(f"{where(file, index, None, None)}: record is not an object")
        rid = rec.get("id")
        loc = (file, index, rid)
        task = rec.get("task_name") or rec.get("task") or _task_from_path(root, file)
        if not isinstance(task, str):
            raise DataError(f"{where(*loc, 'task_name')}: expected string")
        prompt = _text(rec, ("inputs_pretokenized", "inputs"), loc)
        target = _text(rec, ("targets_pretokenized", "targets"), loc)
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
