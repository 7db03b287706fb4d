"""The one instance schema every dataset is loaded into.

An *instance* is one training or test example:

=========  ==========================  =====================================================
column     type                        meaning
=========  ==========================  =====================================================
id         string, unique, not blank   stable id (from the source file where it has one)
task       string (not blank) or null  task name; null for datasets without tasks (ShareGPT)
messages   list<{role, content}>       the conversation; roles are ``system``, ``user``,
                                       ``assistant``; the last message is the response
source     string                      source dataset (``flan-mini``, ``niv2``, ``p3``, ...)
metadata   string (JSON object)        free metadata, kept as JSON text so any keys fit
=========  ==========================  =====================================================

**Conversation rules** (one prompt → response instance), checked by
:func:`conversation_fault` for every loader, record by record, and by
:func:`validate_instances`:

1. ``system`` turns may come only at the start (any number, content may be blank);
2. then turns alternate ``user``, ``assistant``, ``user``, ... starting with ``user`` — an
   assistant greeting before the first user turn, two user (or two assistant) turns in a
   row, or a system turn later on are errors;
3. the last turn is ``assistant``: the response;
4. every user and assistant turn has content: a string that is not empty or whitespace.

So the shortest instance is ``[user, assistant]`` and the ``first_turn`` view (first user
turn + first answer) is always the start of the conversation. Loaders of conversation dumps
drop turns after the last assistant turn (an unanswered follow-up) before checking.
:func:`instances_from_records` builds a table without these checks (tests and notebooks
build edge cases with it); loaders run them.

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
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from .errors import DataError, where

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

    Missing ``source`` falls back to ``source``; missing ``metadata`` to ``{}``. The
    conversation rules are not checked here (see the module doc): call
    :func:`validate_instances` on the result for that.
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


@dataclass(frozen=True)
class Fault:
    """What breaks the conversation rules: the turn (None: the whole conversation), the key
    of that turn at fault (``"role"`` or ``"content"``) and what is wrong and what is right."""

    turn: int | None
    key: str | None
    problem: str


def conversation_fault(messages: Sequence[Mapping[str, Any]]) -> Fault | None:
    """The first breach of the conversation rules (module doc) in ``messages``, or None.

    >>> ok = [{"role": "system", "content": ""}, {"role": "user", "content": "hi"},
    ...       {"role": "assistant", "content": "yo"}]
    >>> conversation_fault(ok) is None
    True
    >>> conversation_fault(ok[:2])  # doctest: +ELLIPSIS
    Fault(turn=1, key='role', problem="no response (assistant) turn: ...")
    """
    if not messages:
        return Fault(None, None, "no turns; expected a user turn, then the assistant's response")
    start = next((i for i, m in enumerate(messages) if m.get("role") != "system"), None)
    if start is None:
        return Fault(len(messages) - 1, "role", "only system turns; expected a user turn "
                     "after them and the assistant's response last")
    for t, m in enumerate(messages):
        fault = _turn_fault(messages, t, start) or _content_fault(m, t)
        if fault:
            return fault
    last = messages[-1]["role"]
    if last != "assistant":
        return Fault(len(messages) - 1, "role", "no response (assistant) turn: the "
                     f"conversation ends with a {last!r} turn; it must end with the "
                     "assistant's response")
    return None


def _turn_fault(messages: Sequence[Mapping[str, Any]], t: int, start: int) -> Fault | None:
    """A breach of rules 1–2 at turn ``t`` (``start``: the first non-system turn)."""
    role = messages[t].get("role")
    if role not in ROLES:
        return Fault(t, "role", f"unknown role {role!r}; expected one of {list(ROLES)}")
    if t < start:
        return None
    if role == "system":
        return Fault(t, "role", "a system turn after the conversation started; system "
                     "turns may only come first: move it to the start or drop it")
    expected = "user" if (t - start) % 2 == 0 else "assistant"
    if role == expected:
        return None
    if t == start and len(messages) - start == 1:
        return Fault(t, "role", "no prompt turn before the response: the only turn after the "
                     "system turns is 'assistant'; a 'user' turn must come first")
    if t == start:
        return Fault(t, "role", "the conversation starts with an 'assistant' turn (e.g. a "
                     "greeting) before the first user turn; after any system turns the first "
                     "turn must be 'user': drop the leading assistant turn or make it system")
    return Fault(t, "role", f"a {role!r} turn right after another {role!r} turn; after the "
                 f"system turns, user and assistant turns must alternate (expected "
                 f"{expected!r} here): merge the two turns or drop one")


def _content_fault(message: Mapping[str, Any], t: int) -> Fault | None:
    """A breach of rule 4 at turn ``t``: content not a string, or blank where text is due."""
    content = message.get("content")
    if not isinstance(content, str):
        return Fault(t, "content", f"content must be a string, got {type(content).__name__}")
    if message["role"] != "system" and not content.strip():
        what = "is empty" if content == "" else "is whitespace only"
        return Fault(t, "content", f"the {message['role']} turn {what}; user and assistant "
                     "turns need text")
    return None


def check_table(table: Any, arg: str = "table") -> pa.Table:
    """``table`` itself when it is a :class:`pyarrow.Table` with the schema's columns.

    A clear DataError otherwise, instead of an error from deep inside pyarrow:

    >>> check_table([{"id": "a"}], "train")
    Traceback (most recent call last):
    ...
    zsg_lib.errors.DataError: train: expected a pyarrow.Table of instances (...), got list
    """
    if not isinstance(table, pa.Table):
        raise DataError(f"{arg}: expected a pyarrow.Table of instances (INSTANCE_SCHEMA), "
                        f"got {type(table).__name__}")
    missing = [f for f in INSTANCE_SCHEMA.names if f not in table.schema.names]
    if missing:
        raise DataError(f"{arg}: missing column(s) {missing}; expected the columns of "
                        f"INSTANCE_SCHEMA {INSTANCE_SCHEMA.names}")
    return table


def validate_instances(table: pa.Table, name: str = "instances") -> pa.Table:
    """Check schema, unique non-blank ids and task names, and the conversation rules;
    return the table cast to the schema.

    Raises :class:`DataError` naming the record and field at fault (``messages[0].role``).
    """
    table = check_table(table, name)
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
    _check_not_blank(table, "id", name)
    _check_not_blank(table, "task", name)
    lengths = pc.list_value_length(table.column("messages"))
    bad = pc.indices_nonzero(pc.less(lengths, 2))
    if len(bad):
        i = bad[0].as_py()
        raise DataError(
            f"{name}: record {i} (id {ids[i].as_py()!r}), field 'messages': "
            "needs a prompt and a response turn"
        )
    for i, messages in enumerate(table.column("messages").to_pylist()):
        fault = conversation_fault(messages)
        if fault is not None:
            field = "messages" if fault.turn is None else f"messages[{fault.turn}].{fault.key}"
            raise DataError(f"{where(name, i, ids[i].as_py(), field)}: {fault.problem}")
    return table


def _check_not_blank(table: pa.Table, column: str, name: str) -> None:
    """DataError at the first row whose ``column`` is an empty or whitespace-only string."""
    col = table.column(column)
    blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(col), ""), False)
    hits = pc.indices_nonzero(blank)
    if len(hits):
        i = hits[0].as_py()
        rid = table.column("id")[i].as_py() if column != "id" else None
        raise DataError(f"{where(name, i, rid, column)}: empty or whitespace-only {column}; "
                        f"expected a non-blank {'task name' if column == 'task' else 'id'}")


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


def has_tasks(table: pa.Table) -> bool:
    """True when every instance carries a task label."""
    return table.num_rows > 0 and table.column("task").null_count == 0
