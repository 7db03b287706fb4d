"""The :class:`Arrangement` result type and helpers shared by every arrangement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import ArrangementError

TABLE_COLUMNS = ["position", "id", "task", "score", "round"]


@dataclass
class Arrangement:
    """A training order and why each instance is where it is.

    ``ids``: training instance ids in training order. ``table``: one row per position with
    ``position``, ``id``, ``task``, ``score`` (the measure the order was built from; NaN when
    none), ``round`` (TMA round, round-robin turn or cluster block; <NA> when none) and, for
    some arrangements, extra columns (TMA: ``test_index``, ``half``). ``params``: the
    arguments that produced it (and notes such as ``exhausted`` for TMA).
    """

    name: str
    ids: list[str]
    table: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def ids_and_tasks(train: pa.Table | pd.DataFrame) -> tuple[list[str], list[str | None]]:
    """The ``id`` and ``task`` columns of an instance table (Arrow or pandas)."""
    if isinstance(train, pa.Table):
        names = train.schema.names
        ids = train.column("id").to_pylist() if "id" in names else None
        tasks = train.column("task").to_pylist() if "task" in names else None
    elif isinstance(train, pd.DataFrame):
        ids = train["id"].tolist() if "id" in train else None
        tasks = train["task"].tolist() if "task" in train else None
    else:
        raise ArrangementError(f"train: expected a pyarrow Table or pandas DataFrame of "
                               f"instances, got {type(train).__name__}")
    if ids is None:
        raise ArrangementError("train: no 'id' column")
    if not ids:
        raise ArrangementError("train: empty (no instances)")
    if len(set(ids)) != len(ids):
        raise ArrangementError("train: ids are not unique")
    if tasks is None:
        tasks = [None] * len(ids)
    tasks = [None if (t is None or (isinstance(t, float) and np.isnan(t))) else t for t in tasks]
    return [str(i) for i in ids], tasks


def require_tasks(name: str, tasks: list[str | None]) -> None:
    """Raise :class:`ArrangementError` if any instance lacks a task label."""
    missing = sum(t is None for t in tasks)
    if missing:
        raise ArrangementError(
            f"arrangement {name!r} needs task labels, but {missing} of {len(tasks)} training "
            "instances have none (data without tasks: use random, nft/fft/rt or tma-*)"
        )


def check_rows(emb: np.ndarray, n: int, name: str) -> None:
    """Embeddings must have one row per training instance."""
    if emb is None:
        raise ArrangementError(f"{name} is required for this arrangement")
    if getattr(emb, "ndim", None) != 2 or emb.shape[0] != n:
        raise ArrangementError(
            f"{name}: expected {n} rows (one per training instance), got shape "
            f"{getattr(emb, 'shape', None)}"
        )


def make_arrangement(
    name: str,
    ids: list[str],
    tasks: list[str | None],
    order: np.ndarray | list[int],
    params: dict[str, Any],
    score: np.ndarray | None = None,
    rounds: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> Arrangement:
    """Build an :class:`Arrangement` from row indices into the training table.

    ``score``/``rounds``/``extra`` are given per *position* (already in training order).
    """
    order = np.asarray(order, dtype=np.int64)
    n = len(order)
    table = pd.DataFrame(
        {
            "position": np.arange(n, dtype=np.int64),
            "id": [ids[i] for i in order],
            "task": pd.Series([tasks[i] for i in order], dtype=object),
            "score": np.full(n, np.nan) if score is None else np.asarray(score, np.float64),
            "round": pd.array([pd.NA] * n if rounds is None else list(rounds), dtype="Int64"),
        }
    )
    for col, values in (extra or {}).items():
        table[col] = values
    return Arrangement(name=name, ids=table["id"].tolist(), table=table, params=params)
