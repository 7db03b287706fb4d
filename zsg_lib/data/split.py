"""Task splits and per-task sampling.

- :func:`split_tasks` splits by task: explicit lists (e.g. :func:`~zsg_lib.data.niv2_split`
  or the demo suite's default split) or a seeded random split of ``n_train``/``n_test``
  tasks. Train and test tasks never overlap: that is checked, not assumed.
- :func:`choose_split` is the one split policy a profile's ``split:`` section follows:
  explicit lists win, then the dataset's own split, then a seeded random split.
- :func:`split_instances` holds out instances, for data without tasks (ShareGPT, NoRobots).
- :func:`sample_per_task` draws n instances of every task (the paper: 20 per training
  task, at most 5 per test task).
- :func:`query_split` splits each test task's instances into *query* instances (the only
  ones an arrangement may read) and *evaluation* instances (scored, never arranged toward).

Random choices use ``numpy.random.default_rng(seed)`` over tasks in sorted order, and kept
rows stay in table order, so results depend only on the data and the seed.

Arguments are checked before any work: a task list must be a list of non-blank names with
no repeats (a string or a path is an error: read a file with :func:`read_task_list`), and
counts are whole numbers (``True`` and ``2.0`` are not). A :class:`TaskList` read from a
file remembers it, so a message about one of its tasks names the file and the line.

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

import numbers
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from ..schema import check_table
from .jsonfiles import as_path

#: A test instance's part under a query split (issue #29): arrangements read the ``query``
#: instances only; ``evaluation`` instances are scored by every run and never arranged
#: toward. Without a split every test instance is a query instance (the paper's design).
#: Score tables name it in the ``TEST_PART`` column.
QUERY, EVALUATION = "query", "evaluation"
TEST_PARTS = (QUERY, EVALUATION)
TEST_PART = "test_part"


@dataclass(frozen=True)
class TaskSplit:
    """Train and test instances and the tasks on each side (empty tuples without tasks)."""

    train: pa.Table
    test: pa.Table
    train_tasks: tuple[str, ...]
    test_tasks: tuple[str, ...]


class TaskList(list):
    """A list of task names that remembers the file, and the line of each name, it came from.

    It is a plain ``list`` otherwise (compares equal to one, concatenates, slices).

    >>> tl = TaskList(["a", "b"], source="train.txt", lines=[1, 3])
    >>> tl == ["a", "b"], tl.where("b")
    (True, 'line 3 of train.txt')
    """

    def __init__(self, names: Iterable[str] = (), source: str | Path | None = None,
                 lines: Sequence[int] | None = None) -> None:
        super().__init__(names)
        self.source = source
        self.lines = list(lines) if lines is not None else None

    def where(self, name: str) -> str:
        """``"line N of FILE"`` for a name read from a file, ``""`` otherwise."""
        if self.source is None or name not in self:
            return ""
        i = self.index(name)
        line = f"line {self.lines[i]} of " if self.lines and i < len(self.lines) else ""
        return f"{line}{self.source}"


def read_task_list(path: str | Path) -> TaskList:
    """Task names from a text file, one per line (blank lines and ``#`` comments skipped).

    A byte-order mark at the start is skipped (Windows editors write one). A missing file, a
    folder, or a task listed twice is a :class:`DataError` naming the file and the lines.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "test_tasks.txt"
    >>> _ = p.write_text("# held out\\ntask1\\n\\ntask2\\n")
    >>> tl = read_task_list(p)
    >>> tl, tl.lines
    (['task1', 'task2'], [2, 4])
    """
    path = as_path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a file (a task list, one per line)")
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    names, lines, first = [], [], {}
    for line_no, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        name = raw.strip()
        if not name or name.startswith("#"):
            continue
        if name in first:
            raise DataError(f"{path}: line {line_no}: task {name!r} is listed twice (first on "
                            f"line {first[name]}); list each task once")
        first[name] = line_no
        names.append(name)
        lines.append(line_no)
    return TaskList(names, source=path, lines=lines)


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int, or DataError naming the argument when it is not a whole number
    ``>= minimum`` (bools and floats such as ``2.0`` are refused).

    >>> check_count(3, "n")
    3
    >>> check_count(2.5, "n")
    Traceback (most recent call last):
    ...
    zsg_lib.errors.DataError: n=2.5: expected a whole number >= 1 (an int), got float
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DataError(f"{name}={value!r}: expected a whole number >= {minimum} (an int), "
                        f"got {type(value).__name__}")
    if value < minimum:
        raise DataError(f"{name}={value}: must be >= {minimum}")
    return int(value)


def check_task_names(tasks: Any, arg: str) -> list[str]:
    """``tasks`` checked to be a list of distinct, non-blank task names (DataError if not).

    A :class:`TaskList` is returned as it is, so later messages can name its file.

    >>> check_task_names("task1", "test_tasks")
    Traceback (most recent call last):
    ...
    zsg_lib.errors.DataError: test_tasks: expected a list of task names, got the string 'task1'; ...
    """
    if isinstance(tasks, (str, Path)):
        kind = "string" if isinstance(tasks, str) else "path"
        raise DataError(f"{arg}: expected a list of task names, got the {kind} {str(tasks)!r}; "
                        f"write [{str(tasks)!r}] (or read a file of names with read_task_list)")
    if not isinstance(tasks, Iterable) or isinstance(tasks, (dict, bytes)):
        raise DataError(f"{arg}: expected a list of task names, got {type(tasks).__name__}")
    names = tasks if isinstance(tasks, TaskList) else list(tasks)
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            what = "a blank string" if isinstance(name, str) else type(name).__name__
            raise DataError(f"{arg}[{i}]: expected a non-blank task name, got {what}"
                            f"{_at(names, name)}")
        if name in seen:
            raise DataError(f"{arg}: task {name!r} is listed twice (positions {seen[name]} and "
                            f"{i}){_at(names, name)}; list each task once")
        seen[name] = i
    return names


def _at(tasks: Sequence[str], name: Any) -> str:
    """`` (line N of FILE)`` for a name of a TaskList read from a file, ``""`` otherwise."""
    loc = _origin(tasks, name) if isinstance(name, str) else ""
    return f" ({loc})" if loc else ""


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


def _origin(tasks: Sequence[str], name: str) -> str:
    """``"line N of FILE"`` when ``tasks`` is a TaskList read from a file, else ``""``."""
    return tasks.where(name) if isinstance(tasks, TaskList) else ""


def _check_known(tasks: Sequence[str], known: set[str], side: str) -> None:
    missing = [t for t in tasks if t not in known]
    if not missing:
        return
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    origins = [f"{t!r} at {o}" for t in missing[:3] if (o := _origin(tasks, t))]
    source = f" ({'; '.join(origins)})" if origins else ""
    raise DataError(f"{side} task(s) not in the data: {missing[:10]}{more}{source}; the data "
                    f"has {len(known)} task(s), e.g. {sorted(known)[:5]}: check the names, or "
                    "load the data that holds these tasks")


def _check_disjoint(train: Sequence[str], test: Sequence[str]) -> None:
    overlap = sorted(set(train) & set(test))
    if not overlap:
        return
    name = overlap[0]
    sides = [f"{o} ({side})" for side, tasks in (("train", train), ("test", test))
             if (o := _origin(tasks, name))]
    source = f"; {name!r} is at {' and '.join(sides)}" if sides else ""
    raise DataError(f"task(s) in both train and test: {overlap}{source}; a task may be on one "
                    "side only: remove it from one of the lists")


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

    - Both lists given: exactly those tasks on each side (``n_train``/``n_test`` unused).
    - One list given: the other side is the remaining tasks (``n_train``/``n_test`` then
      draws that many of them at random).
    - No list: a seeded random split of ``n_test`` test tasks and ``n_train`` train tasks
      (default: all the rest).

    Raises :class:`DataError` when a named task is not in the table, when a task is on both
    sides, when more tasks are asked for than exist, or when an argument has the wrong type.
    """
    table = check_table(table)
    train_tasks = None if train_tasks is None else check_task_names(train_tasks, "train_tasks")
    test_tasks = None if test_tasks is None else check_task_names(test_tasks, "test_tasks")
    n_train = None if n_train is None else check_count(n_train, "n_train")
    n_test = None if n_test is None else check_count(n_test, "n_test")
    rng = np.random.default_rng(check_count(seed, "seed", minimum=0))
    known = _tasks_of(table)
    known_set = set(known)

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
        train, test = train_tasks, test_tasks
    elif test_tasks is not None:
        test = test_tasks
        train = draw([t for t in known if t not in set(test)], n_train, "train")
    elif train_tasks is not None:
        train = train_tasks
        test = draw([t for t in known if t not in set(train)], n_test, "test")
    else:
        if n_test is None:
            raise DataError("split_tasks needs train_tasks/test_tasks or n_test")
        test = draw(known, n_test, "test")
        train = draw([t for t in known if t not in set(test)], n_train, "train")
    _check_disjoint(train, test)
    if not train or not test:
        raise DataError(f"empty split: {len(train)} train and {len(test)} test task(s); each "
                        "side needs at least one task")
    return TaskSplit(_select(table, train), _select(table, test), tuple(train), tuple(test))


def draw_tasks(tasks: Iterable[str], n: int | None, seed: int, arg: str) -> list[str]:
    """``n`` of ``tasks`` drawn with ``numpy.random.default_rng(seed)`` from the sorted list
    (all of them, sorted, when ``n`` is ``None``); DataError naming ``arg`` when fewer exist.

    >>> draw_tasks(["c", "a", "b"], None, 0, "n"), len(draw_tasks(["c", "a", "b"], 2, 0, "n"))
    (['a', 'b', 'c'], 2)
    """
    tasks = sorted(tasks)
    if n is None:
        return tasks
    if not 0 < n <= len(tasks):
        raise DataError(f"{arg}: {n} asked, {len(tasks)} available")
    return sorted(np.random.default_rng(seed).choice(tasks, size=n, replace=False).tolist())


def choose_split(
    table: pa.Table,
    *,
    own: tuple[Sequence[str], Sequence[str]] | None = None,
    train_tasks: Sequence[str] | None = None,
    test_tasks: Sequence[str] | None = None,
    n_train_tasks: int | None = None,
    n_test_tasks: int | None = None,
    seed: int = 0,
) -> TaskSplit:
    """The one split policy (a profile's ``split:`` section): which tasks train, which test.

    Explicit task lists win; otherwise the dataset's ``own`` split ``(train, test)`` where it
    has one (a test task listed explicitly leaves its own training side); otherwise a seeded
    random split (:func:`split_tasks`, one test task unless ``n_test_tasks`` says more).
    ``n_train_tasks`` / ``n_test_tasks`` then draw that many tasks from a listed side
    (:func:`draw_tasks`: training seeded by ``seed``, test by ``seed + 1``), or from the
    remaining tasks of an unlisted one.

    >>> from zsg_lib.schema import instances_from_records
    >>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    >>> t = instances_from_records([{"id": f"{k}{i}", "task": k, "messages": msgs}
    ...                             for k in "abcd" for i in range(2)])
    >>> s = choose_split(t, own=(["a", "b", "c"], ["d"]), test_tasks=["c"])
    >>> s.train_tasks, s.test_tasks
    (('a', 'b'), ('c',))
    """
    test = list(test_tasks) if test_tasks is not None else None
    train = list(train_tasks) if train_tasks is not None else None
    if own is not None:
        own_train, own_test = own
        train = train if train is not None else [t for t in own_train if t not in set(test or ())]
        test = test if test is not None else list(own_test)
    if train is not None:
        train = draw_tasks(train, n_train_tasks, seed, "n_train_tasks")
    if test is not None:
        test = draw_tasks(test, n_test_tasks, seed + 1, "n_test_tasks")
        return split_tasks(table, train_tasks=train, test_tasks=test, n_train=n_train_tasks,
                           seed=seed)
    return split_tasks(table, train_tasks=train, n_train=n_train_tasks,
                       n_test=n_test_tasks or 1, seed=seed)


def split_instances(table: pa.Table, n_test: int, seed: int = 0) -> TaskSplit:
    """Hold out ``n_test`` random instances as the test set (for data without tasks).

    >>> from zsg_lib.schema import instances_from_records
    >>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    >>> t = instances_from_records([{"id": str(i), "messages": msgs} for i in range(10)])
    >>> s = split_instances(t, 3)
    >>> s.train.num_rows, s.test.num_rows, s.test_tasks
    (7, 3, ())
    """
    table = check_table(table)
    n_test = check_count(n_test, "n_test")
    rng = np.random.default_rng(check_count(seed, "seed", minimum=0))
    if not n_test < table.num_rows:
        raise DataError(f"n_test={n_test}: must be between 1 and {table.num_rows - 1} "
                        f"(the table has {table.num_rows} instances)")
    test_idx = np.sort(rng.choice(table.num_rows, size=n_test, replace=False))
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[test_idx] = True
    return TaskSplit(table.filter(pa.array(~mask)), table.filter(pa.array(mask)), (), ())


def sample_per_task(table: pa.Table, n: int, seed: int = 0, at_most: bool = False) -> pa.Table:
    """``n`` random instances of every task, in table order.

    A task with fewer than ``n`` instances raises :class:`DataError` naming it, unless
    ``at_most=True`` (then all of its instances are kept).
    """
    table = check_table(table)
    n = check_count(n, "n")
    rng = np.random.default_rng(check_count(seed, "seed", minimum=0))
    if not isinstance(at_most, (bool, np.bool_)):
        raise DataError(f"at_most={at_most!r}: expected True or False, "
                        f"got {type(at_most).__name__}")
    tasks = _tasks_of(table)
    codes = pc.index_in(table.column("task"), value_set=pa.array(tasks)).to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(tasks) + 1))
    keep: list[np.ndarray] = []
    for k, task in enumerate(tasks):
        rows = order[bounds[k]:bounds[k + 1]]
        if len(rows) < n and not at_most:
            raise DataError(f"task {task!r} has {len(rows)} instance(s), fewer than the "
                            f"sample size {n} (use at_most=True to keep all of them)")
        keep.append(rows if len(rows) <= n else rng.choice(rows, size=n, replace=False))
    idx = np.sort(np.concatenate(keep)) if keep else np.array([], dtype=np.int64)
    return table.take(pa.array(idx))


def query_split(test: pa.Table, per_task: int,
                seed: int | Sequence[int] = 0) -> tuple[pa.Table, pa.Table]:
    """``(query, evaluation)``: ``per_task`` random instances of every test task are its
    query instances (the only ones an arrangement may read), the rest its evaluation
    instances (scored, never arranged toward); both keep table order.

    ``seed`` seeds ``numpy.random.default_rng`` (an int or a sequence, e.g. ``[seed, 2]``: a
    stream of its own, so the draws before it do not shift). Tasks are drawn in sorted
    order. A task left with no evaluation instance (``per_task`` at least its instances),
    data without tasks, or a ``per_task`` below 1 is a :class:`DataError` naming it.

    >>> from zsg_lib.schema import instances_from_records
    >>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    >>> t = instances_from_records([{"id": f"{k}{i}", "task": k, "messages": msgs}
    ...                             for k in "ab" for i in range(4)])
    >>> query, evaluation = query_split(t, 1, seed=[0, 2])
    >>> query.column("task").to_pylist(), evaluation.num_rows
    (['a', 'b'], 6)
    >>> query_split(t, 4)
    Traceback (most recent call last):
    ...
    zsg_lib.errors.DataError: per_task=4: test task 'a' has 4 instance(s), which leaves it no evaluation instance; at most 3
    """
    test = check_table(test)
    per_task = check_count(per_task, "per_task")
    if test.column("task").null_count:
        raise DataError("query_split: the test set has instances without a task; a query "
                        "split needs tasks (data without tasks holds out whole conversations)")
    tasks = test.column("task").to_pylist()
    counts = dict(sorted(Counter(tasks).items()))
    for task, n in counts.items():
        if per_task >= n:
            raise DataError(f"per_task={per_task}: test task {task!r} has {n} instance(s), "
                            f"which leaves it no evaluation instance; at most {n - 1}")
    rng = np.random.default_rng(seed)
    rows = np.arange(test.num_rows)
    owners = np.asarray(tasks, dtype=object)
    mask = np.zeros(test.num_rows, dtype=bool)
    for task in counts:
        mask[rng.choice(rows[owners == task], size=per_task, replace=False)] = True
    return test.filter(pa.array(mask)), test.filter(pa.array(~mask))
