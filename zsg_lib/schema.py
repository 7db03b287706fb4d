"""The one instance schema every dataset is loaded into.

An *instance* is one training or test example:

=========  ==========================  =====================================================
column     type                        meaning
=========  ==========================  =====================================================
id         string, unique              stable id (from the source file where it has one)
task       string or null              task name; null for datasets without tasks (ShareGPT)
messages   list<{role, content}>       the conversation; roles are ``system``, ``user``,
                                       ``assistant``; the last message is the response
source     string                      source dataset (``flan-mini``, ``niv2``, ``p3``, ...)
metadata   string (JSON object)        free metadata, kept as JSON text so any keys fit
=========  ==========================  =====================================================

In memory a set of instances is a :class:`pyarrow.Table` with :data:`INSTANCE_SCHEMA`
(columnar, so a million instances stay cheap); :func:`to_frame` gives pandas for looking.

>>> t = instances_from_records([
...     {"id": "a", "task": "t1", "messages": [{"role": "user", "content": "2+2?"},
...                                             {"role": "assistant", "content": "4"}]},
... ])
>>> t.num_rows, t.schema.names
(1, ['id', 'task', 'messages', 'source', 'metadata'])
>>> text_view(t, "all_turns")
['2+2? 4']
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from .errors import DataError

ROLES = ("system", "user", "assistant")

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])

INSTANCE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=True),
        pa.field("messages", pa.list_(MESSAGE_TYPE), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("metadata", pa.string(), nullable=False),
    ]
)

TextView = Literal["all_turns", "first_turn", "prompt", "response"]


def instances_from_records(
    records: Iterable[Mapping[str, Any]], source: str = "custom"
) -> pa.Table:
    """Build an instance table from plain dicts (``id``, ``task``, ``messages``, ...).

    Missing ``source`` falls back to ``source``; missing ``metadata`` to ``{}``.
    """
    rows = {name: [] for name in INSTANCE_SCHEMA.names}
    for rec in records:
        rows["id"].append(str(rec["id"]))
        rows["task"].append(rec.get("task"))
        rows["messages"].append(
            [{"role": m["role"], "content": m["content"]} for m in rec["messages"]]
        )
        rows["source"].append(rec.get("source") or source)
        meta = rec.get("metadata", {})
        rows["metadata"].append(meta if isinstance(meta, str) else json.dumps(meta))
    return pa.Table.from_pydict(rows, schema=INSTANCE_SCHEMA)


def validate_instances(table: pa.Table, name: str = "instances") -> pa.Table:
    """Check schema, unique ids and a response turn; return the table cast to the schema.

    Raises :class:`DataError` naming the record and field at fault.
    """
    missing = [f for f in INSTANCE_SCHEMA.names if f not in table.schema.names]
    if missing:
        raise DataError(f"{name}: missing column(s) {missing}")
    table = table.select(INSTANCE_SCHEMA.names).cast(INSTANCE_SCHEMA)
    if table.num_rows == 0:
        raise DataError(f"{name}: no instances")
    ids = table.column("id")
    counts = pc.value_counts(ids)
    dup = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(dup):
        first = dup[0]["values"].as_py()
        index = ids.to_pylist().index(first)
        raise DataError(f"{name}: record {index} (id {first!r}), field 'id': duplicate id")
    lengths = pc.list_value_length(table.column("messages"))
    bad = pc.indices_nonzero(pc.less(lengths, 2))
    if len(bad):
        i = bad[0].as_py()
        raise DataError(
            f"{name}: record {i} (id {ids[i].as_py()!r}), field 'messages': "
            "needs a prompt and a response turn"
        )
    return table


def to_frame(table: pa.Table):  # -> pandas.DataFrame
    """The table as a pandas DataFrame (messages as lists of dicts, metadata parsed)."""
    df = table.to_pandas()
    df["metadata"] = df["metadata"].map(json.loads)
    df["messages"] = df["messages"].map(lambda ms: [dict(m) for m in ms])
    return df


def _view(messages: Sequence[Mapping[str, str]], view: TextView) -> str:
    if view == "all_turns":
        return " ".join(m["content"] for m in messages)
    if view == "first_turn":
        user = next((m["content"] for m in messages if m["role"] == "user"), "")
        answer = next((m["content"] for m in messages if m["role"] == "assistant"), "")
        return f"{user} {answer}".strip()
    if view == "prompt":
        return " ".join(m["content"] for m in messages[:-1])
    if view == "response":
        return messages[-1]["content"]
    raise ValueError(f"unknown text view {view!r}; use one of {TextView.__args__}")


def text_view(table: pa.Table, view: TextView = "all_turns") -> list[str]:
    """The text of each instance under a view, in table order.

    ``all_turns`` joins every turn with a space (PAPER.md §3); ``first_turn`` is the first
    user turn and the first answer (§5); ``prompt`` / ``response`` split the last turn off.
    """
    return [_view(ms, view) for ms in table.column("messages").to_pylist()]


def task_of(table: pa.Table) -> list[str | None]:
    """The task column as a Python list."""
    return table.column("task").to_pylist()


def has_tasks(table: pa.Table) -> bool:
    """True when every instance carries a task label."""
    return table.num_rows > 0 and table.column("task").null_count == 0
