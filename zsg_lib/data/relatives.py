"""Each test task's relatives among the training tasks, on data that names task categories.

The demo suite knows its relatives (:func:`zsg_lib.data.demo.task_table`: families, helpful
and mirror tasks). Real data does not, but NIV2 names each task's ``Categories`` (kept in the
instance metadata as ``categories``) and a record may carry a ``category``: there a test
task's relatives are **the training tasks of its category**. :func:`category_table` builds the
same task table the demo has (``task, family, split, has_relative, relatives, helpful,
mirror, relatives_kind``), the category in the ``family`` column and every relative counted
as helpful (no mirror tasks), so the chapters read one table whatever the data.

Data with tasks but no categories (Flan-mini's ``id/source/conversations`` records, P3) gets
no table (``None``), and the chapters say they have no relatives to count.

>>> import json, pyarrow as pa
>>> meta = lambda c: json.dumps({"categories": [c]})
>>> t = pa.table({"task": ["a", "b", "c", "d"],
...               "metadata": [meta("QA"), meta("QA"), meta("Sum"), meta("QA")]})
>>> table = category_table(t, ["a", "b", "c"], ["d"])
>>> table.set_index("task").loc["d", ["family", "relatives", "relatives_kind"]].tolist()
['QA', 'a, b', 'same category']
>>> category_table(pa.table({"task": ["a"], "metadata": ["{}"]}), ["a"], []) is None
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa

#: What a test task's relatives are on data with categories (the chapters show it).
CATEGORY_BASIS = ("task categories: a test task's relatives are the training tasks of its "
                  "category (NIV2's `Categories`, a record's `category`)")
#: What they are on the demo suite.
DEMO_BASIS = ("the demo suite's task families: *helpful* relatives teach the same mapping "
              "into the same output language or format, *mirror* ones the other way round")


def category_of(metadata: str | None) -> str | None:
    """A record's category from its metadata JSON: the first of NIV2's ``categories``, else
    ``category``; ``None`` when it names none.

    >>> category_of('{"categories": ["Summarization", "Title Generation"]}')
    'Summarization'
    >>> category_of('{"category": "Chat"}'), category_of("{}"), category_of(None)
    ('Chat', None, None)
    """
    meta = json.loads(metadata) if metadata else {}
    cats = meta.get("categories") or ([meta["category"]] if meta.get("category") else [])
    return str(cats[0]) if cats else None


def task_categories(table: pa.Table) -> dict[str, str]:
    """Task → its category (the first instance's that names one), for tasks that have one."""
    if "metadata" not in table.column_names or "task" not in table.column_names:
        return {}
    out: dict[str, str] = {}
    for task, meta in zip(table.column("task").to_pylist(),
                          table.column("metadata").to_pylist()):
        if task is not None and task not in out:
            cat = category_of(meta)
            if cat is not None:
                out[task] = cat
    return out


def category_table(table: pa.Table, train_tasks: Sequence[str],
                   test_tasks: Sequence[str]) -> pd.DataFrame | None:
    """The task table of data with categories (see the module doc); ``None`` when no task
    of the split names a category."""
    cats = task_categories(table)
    tasks = [*train_tasks, *test_tasks]
    if not any(t in cats for t in tasks):
        return None
    by_cat: dict[str, list[str]] = {}
    for t in train_tasks:
        if t in cats:
            by_cat.setdefault(cats[t], []).append(t)
    test = set(test_tasks)
    rows = []
    for t in tasks:
        rel = [r for r in by_cat.get(cats.get(t, ""), []) if r != t] if t in cats else []
        rows.append({"task": t, "family": cats.get(t), "split": "test" if t in test else "train",
                     "has_relative": bool(rel), "relatives": ", ".join(rel),
                     "helpful": ", ".join(rel), "mirror": "",
                     "relatives_kind": "same category" if rel else "none"})
    return pd.DataFrame(rows)
