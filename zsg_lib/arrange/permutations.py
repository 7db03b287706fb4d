"""Permutations that ignore the test set (PAPER.md §2): random, round-robin, cluster.

Seeds drive NumPy's ``default_rng``. Tasks are taken in sorted order before the seeded
shuffle of tasks, so the task order does not depend on the table's row order; within a task
the rows are shuffled starting from table order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from .base import Arrangement, check_seed, ids_and_tasks, make_arrangement, require_tasks


def _task_blocks(tasks: list[str | None], rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices per task: tasks in seeded random order, rows shuffled within each task."""
    by_task: dict[str, list[int]] = {}
    for i, t in enumerate(tasks):
        by_task.setdefault(t, []).append(i)
    names = sorted(by_task)
    blocks = [rng.permutation(np.asarray(by_task[t], dtype=np.int64)) for t in names]
    return [blocks[i] for i in rng.permutation(len(names))]


def random_order(train: pa.Table | pd.DataFrame, seed: int = 0) -> Arrangement:
    """A seeded shuffle of the training set (the baseline). Works without task labels.

    >>> from zsg_lib.schema import instances_from_records
    >>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    >>> train = instances_from_records([{"id": f"x{i}", "messages": msgs} for i in range(5)])
    >>> random_order(train, seed=1).ids == random_order(train, seed=1).ids
    True
    >>> sorted(random_order(train, seed=1).ids)
    ['x0', 'x1', 'x2', 'x3', 'x4']
    """
    ids, tasks = ids_and_tasks(train)
    seed = check_seed(seed)
    order = np.random.default_rng(seed).permutation(len(ids))
    return make_arrangement("random", ids, tasks, order, {"seed": seed})


def round_robin(train: pa.Table | pd.DataFrame, seed: int = 0) -> Arrangement:
    """One instance from every task in turn: tasks spread as far apart as possible.

    Turn ``r`` (the ``round`` column) takes the ``r``-th instance of each task, tasks in one
    seeded order kept for every turn; a task that runs out is skipped. Needs task labels.

    >>> from zsg_lib.schema import instances_from_records
    >>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    >>> recs = [{"id": f"{t}{i}", "task": t, "messages": msgs} for t in "ab" for i in range(2)]
    >>> a = round_robin(instances_from_records(recs), seed=0)
    >>> [t[0] for t in a.ids], a.table["round"].tolist()
    (['a', 'b', 'a', 'b'], [0, 0, 1, 1])
    """
    ids, tasks = ids_and_tasks(train)
    seed = check_seed(seed)
    require_tasks("round-robin", tasks)
    blocks = _task_blocks(tasks, np.random.default_rng(seed))
    order, turns = [], []
    for r in range(max(len(b) for b in blocks)):
        for b in blocks:
            if r < len(b):
                order.append(b[r])
                turns.append(r)
    return make_arrangement("round-robin", ids, tasks, order, {"seed": seed}, rounds=turns)


def cluster(train: pa.Table | pd.DataFrame, seed: int = 0) -> Arrangement:
    """Every task's instances contiguous: seeded block order and within-block order.

    The ``round`` column is the block number (0 = first task trained). Needs task labels.

    >>> from zsg_lib.schema import instances_from_records
    >>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    >>> recs = [{"id": f"{t}{i}", "task": t, "messages": msgs} for i in range(2) for t in "abc"]
    >>> a = cluster(instances_from_records(recs), seed=0)
    >>> [t[0] for t in a.ids], a.table["round"].tolist()
    (['b', 'b', 'c', 'c', 'a', 'a'], [0, 0, 1, 1, 2, 2])
    """
    ids, tasks = ids_and_tasks(train)
    seed = check_seed(seed)
    require_tasks("cluster", tasks)
    blocks = _task_blocks(tasks, np.random.default_rng(seed))
    order = np.concatenate(blocks)
    rounds = np.repeat(np.arange(len(blocks)), [len(b) for b in blocks])
    return make_arrangement("cluster", ids, tasks, order, {"seed": seed}, rounds=rounds)
