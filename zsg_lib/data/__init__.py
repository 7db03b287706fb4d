"""The data layer: every dataset loaded into one instance schema, split and sampled.

The kinds, their loaders, the path each reads, whether they carry tasks and their own split
are listed once, in :data:`DATASETS` (:mod:`zsg_lib.data.catalog`).

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

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from ..errors import DataError
from .catalog import DATASETS, KINDS, DatasetKind, DatasetSpec
from .demo import DemoData, demo_dataset
from .flan_mini import load_flan_mini
from .niv2 import load_niv2, niv2_split
from .p3 import load_p3
from .sharegpt import load_norobots, load_sharegpt
from .split import (
    TaskSplit,
    choose_split,
    query_split,
    sample_per_task,
    split_instances,
    split_tasks,
)


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


def _function(name: str) -> Callable[..., Any]:
    """A catalog's ``module.function`` in this package."""
    module, function = name.rsplit(".", 1)
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)


def _call(fn: Callable[..., Any], path: str | Path | None, options: dict[str, Any],
          **kw: Any) -> Any:
    """``fn(path, ...)`` with the options it takes (by parameter name) and ``kw``."""
    takes = inspect.signature(fn).parameters
    return fn(path, **{k: v for k, v in options.items() if k in takes}, **kw)


def load(kind: str, path: str | Path | None = None, *, seed: int = 0,
         track: str = "default", **kw: Any) -> Dataset:
    """Load a dataset by kind (one of :data:`KINDS`); extra keywords go to the loader.

    ``demo``: ``path`` is the cache folder (optional) and ``seed`` the generation seed.
    ``niv2``: ``path`` is the root with ``tasks/`` and ``splits/``; ``track`` picks the split.
    Every other kind needs ``path`` and has no split of its own (see :data:`DATASETS`).
    """
    key = kind.lower().replace("_", "-")
    if key not in DATASETS:
        raise DataError(f"unknown dataset kind {kind!r}; use one of {list(KINDS)}")
    spec = DATASETS[key]
    if path is None and spec.path != "none":
        raise DataError(f"dataset kind {kind!r} needs a path")
    options = {k: v for k, v in {"seed": seed, "track": track}.items() if k in spec.options}
    own = None
    if spec.own_split not in (None, "loaded"):  # read first: a bad split file fails fast
        train, test = _call(_function(spec.own_split), path, options)
        own = OwnSplit(tuple(train), tuple(test))
    loaded = _call(_function(spec.loader), path, options, **kw)
    if spec.own_split == "loaded":  # the loader's result carries its split (the demo)
        return Dataset(key, loaded.table, OwnSplit(tuple(loaded.train_tasks),
                                                   tuple(loaded.test_tasks)), loaded.families)
    return Dataset(key, loaded, own)


__all__ = [
    "DATASETS",
    "KINDS",
    "DatasetKind",
    "Dataset",
    "DatasetSpec",
    "DemoData",
    "OwnSplit",
    "TaskSplit",
    "choose_split",
    "demo_dataset",
    "load",
    "load_flan_mini",
    "load_niv2",
    "load_norobots",
    "load_p3",
    "load_sharegpt",
    "niv2_split",
    "query_split",
    "sample_per_task",
    "split_instances",
    "split_tasks",
]
