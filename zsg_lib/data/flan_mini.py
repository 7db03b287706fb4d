"""Flan-mini: a JSON array of ``{"id", "source", "conversations": [{"from", "value"}]}``.

Flan-mini (declare-lab) names each record's task in its ``source`` field (e.g.
``"cot_gsm8k"``, ``"niv2_task1234_..."``). In the instance schema that name becomes the
``task``, while the ``source`` column holds the dataset name, ``"flan-mini"``. Speakers map
``human`` → ``user`` and ``gpt`` → ``assistant``.

The file is streamed with ``ijson`` and converted, 50,000 records at a time, into a Parquet
cache (:mod:`zsg_lib.data.cache`); the second load reads only the cache.

>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "flan.json").write_text(json.dumps([{"id": "r0", "source": "add",
...     "conversations": [{"from": "human", "value": "2+3="}, {"from": "gpt", "value": "5"}]}]))
>>> t = load_flan_mini(d / "flan.json", cache_dir=d / "cache")
>>> t.column("task").to_pylist(), t.column("source").to_pylist()
(['add'], ['flan-mini'])
>>> t.column("messages").to_pylist()[0][1]
{'role': 'assistant', 'content': '5'}
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from .cache import convert_cached
from .source_records import conversation_rows

SOURCE = "flan-mini"


def flan_mini_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield schema rows from a Flan-mini file, checking each record (DataError on bad ones)."""
    return conversation_rows(path, SOURCE, task_field="source")


def load_flan_mini(path: str | Path, cache_dir: str | Path | None = None) -> pa.Table:
    """Load a Flan-mini JSON file as an instance table, through the Parquet cache.

    ``cache_dir`` defaults to ``$ZSG_HOME/datasets``. Bad records raise
    :class:`~zsg_lib.errors.DataError` naming the file, record index, id and field, and leave
    no cache file.
    """
    return convert_cached(path, lambda: flan_mini_rows(path), kind="flan-mini",
                          cache_dir=cache_dir)
