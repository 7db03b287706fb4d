"""The :class:`Arrangement` result type and the checks shared by every arrangement.

Every public arrangement checks its arguments here before any work, so a wrong type is an
:class:`~zsg_lib.errors.ArrangementError` naming the argument, never a ``TypeError`` from
inside NumPy:

>>> check_int(2.0, "budget", minimum=1)
Traceback (most recent call last):
...
zsg_lib.errors.ArrangementError: budget: expected a whole number >= 1 (an int), got float 2.0
>>> check_int(None, "budget", minimum=1, optional=True) is None
True
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import ArrangementError
from ..similarity import check_embeddings


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
    _check_unique(ids)
    if tasks is None:
        tasks = [None] * len(ids)
    tasks = [None if (t is None or (isinstance(t, float) and np.isnan(t))) else t for t in tasks]
    return [str(i) for i in ids], tasks


def _check_unique(ids: list[Any]) -> None:
    """Raise naming the first id that appears twice, and both of its rows."""
    first: dict[Any, int] = {}
    for row, i in enumerate(ids):
        if i in first:
            raise ArrangementError(f"train: id {i!r} appears twice (rows {first[i]} and {row});"
                                   " ids must be unique: drop or rename the repeat")
        first[i] = row


def check_int(value: Any, name: str, minimum: int = 0, optional: bool = False) -> int | None:
    """``value`` as an int ``>= minimum`` (``None`` passes when ``optional``); anything else
    (a float such as ``2.0``, a string, a bool) is an :class:`ArrangementError` naming
    ``name``. NumPy integers are accepted."""
    if value is None and optional:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        extra = " (or None)" if optional else ""
        raise ArrangementError(f"{name}: expected a whole number >= {minimum} (an int){extra}, "
                               f"got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ArrangementError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def check_seed(seed: Any) -> int:
    """A seed for ``numpy.random.default_rng``: an int >= 0."""
    return check_int(seed, "seed", minimum=0)


def check_flag(value: Any, name: str) -> bool:
    """``value`` as a bool (``True``/``False`` only: ``"no"`` would be true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArrangementError(f"{name}: expected True or False, got {type(value).__name__} "
                               f"{value!r}")
    return bool(value)


def require_tasks(name: str, tasks: list[str | None]) -> None:
    """Raise :class:`ArrangementError` if any instance lacks a task label."""
    missing = sum(t is None for t in tasks)
    if missing:
        raise ArrangementError(
            f"arrangement {name!r} needs task labels, but {missing} of {len(tasks)} training "
            "instances have none (data without tasks: use random, nft/fft/rt or tma-*)"
        )


def check_rows(emb: np.ndarray, n: int, name: str) -> None:
    """Embeddings must be a 2-D numeric array with one row per training instance."""
    if emb is None:
        raise ArrangementError(f"{name} is required for this arrangement")
    check_embeddings(emb, name)
    if emb.shape[0] != n:
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
