"""The checks every record passes, and the loops that turn source records into instances.

Reading the files themselves (JSON arrays, JSON Lines, gzip, encodings) is
:mod:`zsg_lib.data.jsonfiles`; here: required fields and their types, blank text, ids,
conversations mapped to the schema's roles and checked against its rules, and the walk over a
file or a folder of files (JSON, JSON Lines, Parquet, Arrow).

>>> record_id({"id": 7}, "f.json", 0)
'7'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import DataError, where
from ..schema import conversation_fault
from .jsonfiles import as_path, iter_records

# Speaker names seen in ShareGPT/Flan-mini/NoRobots dumps, mapped to the schema's roles.
ROLE_MAP: dict[str, str] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
}

def require(rec: Any, key: str, kind: type | tuple[type, ...], loc: tuple) -> Any:
    """``rec[key]``, checked to exist and be of ``kind``; ``loc`` is (file, index, id)."""
    if not isinstance(rec, Mapping):
        raise DataError(f"{where(*loc, None)}: record is {type(rec).__name__}, not an object")
    if key not in rec or rec[key] is None:
        raise DataError(f"{where(*loc, key)}: missing{_wrapped_hint(rec, key)}")
    value = rec[key]
    if not isinstance(value, kind):
        raise DataError(
            f"{where(*loc, key)}: expected {_kind_name(kind)}, got {type(value).__name__}"
        )
    return value


def _wrapped_hint(rec: Mapping, key: str) -> str:
    """When ``rec`` lacks ``key`` but one of its values is a list of objects that have it, the
    file is one JSON object wrapping the records (read as a one-line JSON Lines file): say so.

    >>> _wrapped_hint({"data": [{"id": 1}, {"id": 2}]}, "id")
    "; this record is a JSON object whose key 'data' holds 2 records that have 'id': the file wraps its records in an object; expected a JSON array of records or JSON Lines (one record per line): write the array under 'data' out on its own"
    """
    for name, value in rec.items():
        if (isinstance(value, list) and value and isinstance(value[0], Mapping)
                and key in value[0]):
            return (f"; this record is a JSON object whose key {name!r} holds {len(value)} "
                    f"records that have {key!r}: the file wraps its records in an object; "
                    "expected a JSON array of records or JSON Lines (one record per line): "
                    f"write the array under {name!r} out on its own")
    return ""


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({str: "string", list: "list", dict: "object", int: "integer"}.get(
        k, k.__name__) for k in kinds)


def blank(text: str) -> str | None:
    """``"is empty"`` / ``"is whitespace only"`` for a blank string, None for real text.

    >>> blank(""), blank(" \\n"), blank("x")
    ('is empty', 'is whitespace only', None)
    """
    if text == "":
        return "is empty"
    return "is whitespace only" if not text.strip() else None


def require_text(rec: Any, key: str, loc: tuple, what: str = "text") -> str:
    """``rec[key]`` checked to be a string that is not blank; ``loc`` is (file, index, id)."""
    value = require(rec, key, str, loc)
    problem = blank(value)
    if problem:
        raise DataError(f"{where(*loc, key)}: {problem}; expected the {what}")
    return value


def record_id(rec: Any, file: Path | str, index: int, key: str = "id") -> str:
    """The record's id as a string (integers allowed), or DataError naming the field."""
    rid = require(rec, key, (str, int), (file, index, None))
    if isinstance(rid, bool):
        raise DataError(f"{where(file, index, None, key)}: expected string, got bool")
    rid = str(rid)
    problem = blank(rid)
    if problem:
        raise DataError(f"{where(file, index, None, key)}: empty id ({key!r} {problem}); "
                        "expected a non-blank string or an integer")
    return rid


def to_messages(
    turns: Any,
    loc: tuple,
    field: str,
    role_key: str,
    content_key: str,
) -> list[dict[str, str]]:
    """Check a list of turns and map it to schema messages ``[{role, content}]``.

    Roles go through :data:`ROLE_MAP`. Turns after the last assistant turn are dropped (a
    response must end the conversation, and ShareGPT dumps often end on an unanswered user
    turn); what is left must follow the conversation rules of :mod:`zsg_lib.schema`, checked
    by :func:`~zsg_lib.schema.conversation_fault` and reported with this file's field names.

    >>> to_messages([{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"},
    ...              {"from": "human", "value": "?"}], ("f", 0, "a"), "conversations",
    ...             "from", "value")
    [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'yo'}]
    >>> to_messages([{"from": "gpt", "value": "Hello!"}, {"from": "human", "value": "hi"},
    ...              {"from": "gpt", "value": "yo"}], ("f", 0, "a"), "conversations",
    ...             "from", "value")
    Traceback (most recent call last):
    ...
    zsg_lib.errors.DataError: f: record 0 (id 'a'), field 'conversations[0].from': ...
    """
    file, index, rid = loc
    if not isinstance(turns, list):
        raise DataError(
            f"{where(file, index, rid, field)}: expected a list of turns, "
            f"got {type(turns).__name__}"
        )
    messages: list[dict[str, Any]] = []
    for t, turn in enumerate(turns):
        tfield = f"{field}[{t}]"
        if not isinstance(turn, Mapping):
            raise DataError(f"{where(file, index, rid, tfield)}: turn is not an object")
        speaker = turn.get(role_key)
        if not isinstance(speaker, str) or speaker.lower() not in ROLE_MAP:
            raise DataError(
                f"{where(file, index, rid, f'{tfield}.{role_key}')}: unknown speaker "
                f"{speaker!r} (expected one of {sorted(ROLE_MAP)})"
            )
        messages.append({"role": ROLE_MAP[speaker.lower()], "content": turn.get(content_key)})
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    if last >= 0:
        messages = messages[: last + 1]
    fault = conversation_fault(messages)
    if fault is not None:
        key = {"role": role_key, "content": content_key}.get(fault.key or "")
        sub = field if fault.turn is None else f"{field}[{fault.turn}]" + (f".{key}" if key else "")
        raise DataError(f"{where(file, index, rid, sub)}: {fault.problem}")
    return messages


class IdSet:
    """Remembers ids seen so far, to report a duplicate with both of its positions."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, int]] = {}

    def add(self, rid: str, file: Path | str, index: int) -> None:
        here = (str(file), index)
        first = self._seen.setdefault(rid, here)
        if first != here:
            at = f"record {first[1]}" + ("" if first[0] == here[0] else f" of {first[0]}")
            raise DataError(f"{where(file, index, rid, 'id')}: duplicate id (first seen at {at})")


# Columnar files (P3 and NoRobots ship as Parquet or as a `datasets` folder of Arrow files).
COLUMNAR_SUFFIXES = (".parquet", ".arrow")
ROW_SUFFIXES = (".json", ".jsonl")


def is_row_file(path: Path) -> bool:
    """True for ``.json``/``.jsonl`` files, gzip-compressed (``.json.gz``) or not."""
    if path.suffix == ".gz":
        path = path.with_suffix("")
    return path.suffix in ROW_SUFFIXES


def data_files(path: str | Path) -> list[Path]:
    """The record files under ``path``: itself if a file, else every data file below it.

    A folder written by ``datasets.save_to_disk`` holds ``*.arrow`` shards next to
    ``dataset_info.json``/``state.json``; those JSON sidecars are not data and are skipped.
    """
    path = as_path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    sidecars = {"dataset_info.json", "state.json", "dataset_dict.json"}
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name not in sidecars
                   and (p.suffix in COLUMNAR_SUFFIXES or is_row_file(p)))
    if not files:
        raise DataError(f"{path}: no .parquet, .arrow, .json or .jsonl files found "
                        "(.json.gz and .jsonl.gz are read too)")
    return files


def _arrow_batches(path: Path) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=10_000)
            return
        try:  # `datasets` writes the IPC stream format; plain Arrow files use the file format
            reader = pa.ipc.open_stream(path)
            yield from reader
        except pa.ArrowInvalid:
            reader = pa.ipc.open_file(path)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: cannot read as {path.suffix[1:]} ({exc})") from None


def iter_any(path: str | Path) -> Iterator[tuple[Path, int, Any]]:
    """Yield ``(file, index, record)`` from JSON, JSON Lines, Parquet or Arrow files.

    ``path`` may be one file or a folder of them (see :func:`data_files`); indexes count
    records within each file.
    """
    for file in data_files(path):
        if file.suffix in COLUMNAR_SUFFIXES:
            n = 0
            for batch in _arrow_batches(file):
                for rec in batch.to_pylist():
                    yield file, n, rec
                    n += 1
            if n == 0:
                raise DataError(f"{file}: no records")
        else:
            for n, rec in iter_records(file):
                yield file, n, rec


def conversation_rows(
    path: str | Path, source: str, task_field: str | None
) -> Iterator[dict[str, Any]]:
    """Schema rows from a file of ``{"id", "conversations": [{"from", "value"}]}`` records.

    Flan-mini and ShareGPT share this format; Flan-mini names its task in ``task_field``
    (``"source"``), ShareGPT has none (``None``). Each record is checked (DataError).
    """
    path = as_path(path)
    ids = IdSet()
    for index, rec in iter_records(path):
        rid = record_id(rec, path, index)
        ids.add(rid, path, index)
        loc = (path, index, rid)
        task = require_text(rec, task_field, loc, "task name") if task_field else None
        turns = require(rec, "conversations", list, loc)
        yield {"id": rid, "task": task,
               "messages": to_messages(turns, loc, "conversations", "from", "value"),
               "source": source, "metadata": "{}"}
