"""The data layer: every dataset loaded into one instance schema, split and sampled.

=============  ==============================================  ====================
kind           loader                                          tasks
=============  ==============================================  ====================
``flan-mini``  :func:`load_flan_mini` (streamed, Parquet cache)  ``source`` field
``niv2``       :func:`load_niv2` (+ :func:`niv2_split`)          task file name
``p3``         :func:`load_p3` (JSONL, Parquet, Arrow folder)    ``task_name``
``sharegpt``   :func:`load_sharegpt` (streamed, Parquet cache)   none
``norobots``   :func:`load_norobots`                             none (``category`` in metadata)
``demo``       :func:`demo_dataset` (the embedded default)       generated
=============  ==============================================  ====================

Every loader returns a :class:`pyarrow.Table` with :data:`zsg_lib.schema.INSTANCE_SCHEMA`
and raises :class:`~zsg_lib.errors.DataError` on bad input, naming file, record, id and field.

>>> import tempfile
>>> t = load_dataset("demo", tempfile.mkdtemp())
>>> t.num_rows
6250
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import DataError
from .demo import DemoData, demo_dataset
from .flan_mini import load_flan_mini
from .niv2 import load_niv2, niv2_split
from .p3 import load_p3
from .sharegpt import load_norobots, load_sharegpt
from .split import TaskSplit, sample_per_task, split_instances, split_tasks

LOADERS = {
    "flan-mini": load_flan_mini,
    "niv2": load_niv2,
    "p3": load_p3,
    "sharegpt": load_sharegpt,
    "norobots": load_norobots,
}
KINDS = (*LOADERS, "demo")


def load_dataset(kind: str, path: str | Path | None = None, **kw: Any) -> pa.Table:
    """Load a dataset by kind (one of :data:`KINDS`); extra keywords go to the loader.

    For ``"demo"``, ``path`` is the cache folder (optional) and ``seed`` may be given.
    """
    key = kind.lower().replace("_", "-")
    if key == "demo":
        return demo_dataset(cache_dir=path, **kw).table
    if key not in LOADERS:
        raise DataError(f"unknown dataset kind {kind!r}; use one of {list(KINDS)}")
    if path is None:
        raise DataError(f"dataset kind {kind!r} needs a path")
    return LOADERS[key](path, **kw)


__all__ = [
    "KINDS",
    "DemoData",
    "TaskSplit",
    "demo_dataset",
    "load_dataset",
    "load_flan_mini",
    "load_niv2",
    "load_norobots",
    "load_p3",
    "load_sharegpt",
    "niv2_split",
    "sample_per_task",
    "split_instances",
    "split_tasks",
]
