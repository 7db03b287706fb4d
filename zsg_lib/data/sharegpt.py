"""Conversation datasets without tasks: ShareGPT and NoRobots (``task`` is null).

- **ShareGPT**: a JSON array (or JSON Lines) of ``{"id", "conversations": [{"from", "value"}]}``
  with speakers ``human``/``gpt`` (also ``system``, ``chatgpt``, ``bard``...). Large dumps are
  streamed into the Parquet cache like Flan-mini.
- **NoRobots** (HuggingFaceH4/no_robots): ``{"prompt_id", "messages": [{"role", "content"}],
  "category"}`` as Parquet, JSON Lines or JSON; ``category`` goes to the metadata.

A conversation ends at its last assistant turn (that turn is the response); one with no
assistant turn is an error naming the file, record and field.

>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "nr.jsonl").write_text(json.dumps({"prompt_id": "p1", "category": "Chat",
...     "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]}))
>>> t = load_norobots(d / "nr.jsonl")
>>> t.column("task").to_pylist(), t.column("metadata").to_pylist()
([None], ['{"category": "Chat"}'])
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import DataError, where
from ..schema import INSTANCE_SCHEMA, validate_instances
from .cache import convert_cached
from .source_records import IdSet, conversation_rows, iter_any, record_id, require, to_messages


def sharegpt_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield schema rows from a ShareGPT file (DataError on bad records)."""
    return conversation_rows(path, "sharegpt", task_field=None)


def load_sharegpt(path: str | Path, cache_dir: str | Path | None = None) -> pa.Table:
    """Load a ShareGPT JSON/JSONL file as an instance table, through the Parquet cache."""
    return convert_cached(path, lambda: sharegpt_rows(path), kind="sharegpt",
                          cache_dir=cache_dir)


def load_norobots(path: str | Path) -> pa.Table:
    """Load NoRobots (a file or a folder of Parquet/JSONL/JSON files) as an instance table."""
    ids = IdSet()
    rows: dict[str, list] = {n: [] for n in INSTANCE_SCHEMA.names}
    for file, index, rec in iter_any(path):
        if not isinstance(rec, dict):
            raise DataError(f"{where(file, index, None, None)}: record is not an object")
        key = "prompt_id" if "prompt_id" in rec else "id"
        rid = record_id(rec, file, index, key)
        ids.add(rid, file, index)
        loc = (file, index, rid)
        turns = require(rec, "messages", list, loc)
        category = rec.get("category")
        if category is not None and not isinstance(category, str):
            raise DataError(f"{where(*loc, 'category')}: expected string")
        rows["id"].append(rid)
        rows["task"].append(None)
        rows["messages"].append(to_messages(turns, loc, "messages", "role", "content"))
        rows["source"].append("norobots")
        rows["metadata"].append(json.dumps({"category": category} if category else {}))
    return validate_instances(pa.Table.from_pydict(rows, schema=INSTANCE_SCHEMA), str(path))
