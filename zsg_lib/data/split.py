"""Task splits and per-task sampling.

- :func:`split_tasks` splits by task: explicit lists (e.g. :func:`~zsg_lib.data.niv2_split`
  or the demo suite's default split) or a seeded random split of ``n_train``/``n_test``
  tasks. Train and test tasks never overlap: that is checked, not assumed.
- :func:`split_instances` holds out instances, for data without tasks (ShareGPT, NoRobots).
- :func:`sample_per_task` draws n instances of every task (the paper: 20 per training
  task, at most 5 per test task).

Random choices use ``numpy.random.default_rng(seed)`` over tasks in sorted order, and kept
rows stay in table order, so results depend only on the data and the seed.

>>> from zsg_lib.schema import instances_from_records
>>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
>>> t = instances_from_records([{"id": f"{k}{i}", "task": k, "messages": msgs}
...                             for k in "abc" for i in range(3)])
>>> s = split_tasks(t, test_tasks=["b"])
>>> s.train_tasks, s.test_tasks, s.train.num_rows, s.test.num_rows
(('a', 'c'), ('b',), 6, 3)
>>> sample_per_task(s.train, 2, seed=1).num_rows
4
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError


@dataclass(frozen=True)
class TaskSplit:
    """Train and test instances and the tasks on each side (empty tuples without tasks)."""

    train: pa.Table
    test: pa.Table
    train_tasks: tuple[str, ...]
    test_tasks: tuple[str, ...]


def _tasks_of(table: pa.Table) -> list[str]:
    col = table.column("task")
    if col.null_count:
        raise DataError(
            f"{col.null_count} instance(s) have no task label; use split_instances() for "
            "data without tasks"
        )
    return sorted(pc.unique(col).to_pylist())


def _select(table: pa.Table, tasks: Sequence[str]) -> pa.Table:
    mask = pc.is_in(table.column("task"), value_set=pa.array(list(tasks), pa.string()))
    return table.filter(mask)


def _check_known(tasks: Sequence[str], known: set[str], side: str) -> None:
    missing = [t for t in tasks if t not in known]
    if missing:
        raise DataError(f"{side} task(s) not in the data: {missing[:10]}"
                        + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))


def split_tasks(
    table: pa.Table,
    *,
    train_tasks: Sequence[str] | None = None,
    test_tasks: Sequence[str] | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> TaskSplit:
    """Split instances by task.

    - Both lists given: exactly those tasks on each side.
    - One list given: the other side is the remaining tasks (``n_train``/``n_test`` then
      draws that many of them at random).
    - No list: a seeded random split of ``n_test`` test tasks and ``n_train`` train tasks
      (default: all the rest).

    Raises :class:`DataError` when a named task is not in the table, when a task is on both
    sides, or when more tasks are asked for than exist.
    """
    known = _tasks_of(table)
    known_set = set(known)
    rng = np.random.default_rng(seed)

    def draw(pool: list[str], n: int | None, side: str) -> list[str]:
        if n is None:
            return pool
        if not 0 < n <= len(pool):
            raise DataError(f"n_{side}={n}: only {len(pool)} task(s) available for {side}")
        return sorted(rng.choice(pool, size=n, replace=False).tolist())

    if train_tasks is not None:
        _check_known(train_tasks, known_set, "train")
    if test_tasks is not None:
        _check_known(test_tasks, known_set, "test")
    if train_tasks is not None and test_tasks is not None:
        train, test = list(train_tasks), list(test_tasks)
    elif test_tasks is not None:
        test = list(test_tasks)
        train = draw([t for t in known if t not in set(test)], n_train, "train")
    elif train_tasks is not None:
        train = list(train_tasks)
        test = draw([t for t in known if t not in set(train)], n_test, "test")
    else:
        if n_test is None:
            raise DataError("split_tasks needs train_tasks/test_tasks or n_test")
        test = draw(known, n_test, "test")
        train = draw([t for t in known if t not in set(test)], n_train, "train")
    overlap = sorted(set(train) & set(test))
    if overlap:
        raise DataError(f"task(s) in both train and test: {overlap}")
    if not train or not test:
        raise DataError(f"empty split: {len(train)} train and {len(test)} test task(s)")
    return TaskSplit(_select(table, train), _select(table, test), tuple(train), tuple(test))


def split_instances(table: pa.Table, n_test: int, seed: int = 0) -> TaskSplit:
    """Hold out ``n_test`` random instances as the test set (for data without tasks).

    >>> from zsg_lib.schema import instances_from_records
    >>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    >>> t = instances_from_records([{"id": str(i), "messages": msgs} for i in range(10)])
    >>> s = split_instances(t, 3)
    >>> s.train.num_rows, s.test.num_rows, s.test_tasks
    (7, 3, ())
    """
    if not 0 < n_test < table.num_rows:
        raise DataError(f"n_test={n_test}: must be between 1 and {table.num_rows - 1} "
                        f"(the table has {table.num_rows} instances)")
    rng = np.random.default_rng(seed)
    test_idx = np.sort(rng.choice(table.num_rows, size=n_test, replace=False))
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[test_idx] = True
    return TaskSplit(table.filter(pa.array(~mask)), table.filter(pa.array(mask)), (), ())


def sample_per_task(table: pa.Table, n: int, seed: int = 0, at_most: bool = False) -> pa.Table:
    """``n`` random instances of every task, in table order.

    A task with fewer than ``n`` instances raises :class:`DataError` naming it, unless
    ``at_most=True`` (then all of its instances are kept).
    """
    if n < 1:
        raise DataError(f"sample size n={n}: must be >= 1")
    tasks = _tasks_of(table)
    codes = pc.index_in(table.column("task"), value_set=pa.array(tasks)).to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(tasks) + 1))
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for k, task in enumerate(tasks):
        rows = order[bounds[k]:bounds[k + 1]]
        if len(rows) < n and not at_most:
            raise DataError(f"task {task!r} has {len(rows)} instance(s), fewer than the "
                            f"sample size {n} (use at_most=True to keep all of them)")
        keep.append(rows if len(rows) <= n else rng.choice(rows, size=n, replace=False))
    idx = np.sort(np.concatenate(keep)) if keep else np.array([], dtype=np.int64)
    return table.take(pa.array(idx))
