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
:func:`load` is the one way to load any of them by kind: it returns a :class:`Dataset` with
the table, the dataset's own task split where it has one (demo, NIV2) and its metadata.

>>> import tempfile
>>> ds = load("demo", tempfile.mkdtemp())
>>> ds.table.num_rows, len(ds.own_split.test_tasks), list(ds.families.columns[:2])
(6250, 25, ['task', 'family'])
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
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
DatasetKind = Literal["demo", "flan-mini", "niv2", "p3", "sharegpt", "norobots"]
KINDS: tuple[str, ...] = typing.get_args(DatasetKind)
#: Kinds whose instances carry no task labels (PAPER.md §5: ShareGPT, NoRobots).
TASKLESS_KINDS = frozenset({"sharegpt", "norobots"})


@dataclass(frozen=True)
class OwnSplit:
    """A dataset's own train/test task lists (the demo's default, NIV2's ``splits/<track>``)."""

    train_tasks: tuple[str, ...]
    test_tasks: tuple[str, ...]


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: its instances, its own split (``None`` where it has none) and, for
    the demo, the task table (``families``: task, family, split, relatives, ...)."""

    kind: str
    table: pa.Table
    own_split: OwnSplit | None = None
    families: pd.DataFrame | None = None


def load(kind: str, path: str | Path | None = None, *, seed: int = 0,
         track: str = "default", **kw: Any) -> Dataset:
    """Load a dataset by kind (one of :data:`KINDS`); extra keywords go to the loader.

    ``demo``: ``path`` is the cache folder (optional) and ``seed`` the generation seed.
    ``niv2``: ``path`` is the root with ``tasks/`` and ``splits/``; ``track`` picks the split.
    Every other kind needs ``path`` and has no split of its own.
    """
    key = kind.lower().replace("_", "-")
    if key == "demo":
        demo = demo_dataset(cache_dir=path, seed=seed, **kw)
        return Dataset(key, demo.table, OwnSplit(demo.train_tasks, demo.test_tasks),
                       demo.families)
    if key not in LOADERS:
        raise DataError(f"unknown dataset kind {kind!r}; use one of {list(KINDS)}")
    if path is None:
        raise DataError(f"dataset kind {kind!r} needs a path")
    if key == "niv2":
        train, test = niv2_split(path, track)
        return Dataset(key, load_niv2(path, track=track, **kw), OwnSplit(tuple(train),
                                                                          tuple(test)))
    return Dataset(key, LOADERS[key](path, **kw))


__all__ = [
    "KINDS",
    "TASKLESS_KINDS",
    "DatasetKind",
    "Dataset",
    "DemoData",
    "OwnSplit",
    "TaskSplit",
    "demo_dataset",
    "load",
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
