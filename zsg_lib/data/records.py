"""Streaming readers for record files, and the checks every conversation record passes.

Real instruction datasets are large (Flan-mini: 1.3 million records, 1–2 GB of JSON), so a
file is never parsed into Python objects all at once: :func:`iter_records` yields one record
at a time from a JSON array (with ``ijson``) or from JSON Lines. Malformed input becomes a
:class:`~zsg_lib.errors.DataError` naming the file, the record (index and id) and the field.

>>> import json, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
>>> _ = p.write_text(json.dumps([{"id": "a"}, {"id": "b"}]))
>>> [(i, r["id"]) for i, r in iter_records(p)]
[(0, 'a'), (1, 'b')]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import ijson

from ..errors import DataError, where

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

_ID_RE = re.compile(r'"id"\s*:\s*"((?:[^"\\]|\\.)*)"')
_KEY_RE = re.compile(r'"(\w+)"\s*:')


def _first_char(path: Path) -> str:
    """The first non-whitespace character of a file ('' when it is empty or blank)."""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(4096)
            if not chunk:
                return ""
            stripped = chunk.lstrip()
            if stripped:
                return stripped[:1].decode("utf-8", errors="replace")


def file_format(path: str | Path) -> str:
    """``"json"`` for a JSON array, ``"jsonl"`` for JSON Lines; DataError if empty or neither."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    first = _first_char(path)
    if first == "":
        raise DataError(f"{path}: empty file (expected a JSON array of records or JSON Lines)")
    if first == "[":
        return "json"
    if first == "{":
        return "jsonl"
    raise DataError(
        f"{path}: starts with {first!r}; expected a JSON array of records or JSON Lines"
    )


def iter_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, record)`` from a JSON array or a JSON Lines file, streaming.

    An empty file, an empty array, and syntax errors (a truncated file, a stray comma) raise
    :class:`DataError`; a syntax error names the record being read, its id when it was
    already seen, and the field being parsed.
    """
    path = Path(path)
    fmt = file_format(path)
    n = 0
    if fmt == "json":
        with open(path, "rb") as f:
            try:
                for rec in ijson.items(f, "item", use_float=True):
                    yield n, rec
                    n += 1
            except ijson.JSONError as exc:
                raise DataError(_locate_syntax_error(path, exc)) from None
    else:
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    m = _ID_RE.search(line)
                    rid = m.group(1) if m else None
                    # The last key before the error position is the field being parsed.
                    keys = _KEY_RE.findall(line[: exc.pos])
                    field = keys[-1] if keys else "(record start)"
                    raise DataError(
                        f"{where(path, n, rid, field)}: invalid JSON on line {line_no + 1}, "
                        f"column {exc.colno}: {exc.msg}"
                    ) from None
                yield n, rec
                n += 1
    if n == 0:
        raise DataError(f"{path}: no records")


def _locate_syntax_error(path: Path, exc: Exception) -> str:
    """Re-parse event by event (only on the error path) to name the record, id and field."""
    counters: dict[str, int] = {"item": -1}  # array prefix -> index of its current element
    rid, last = None, ("", "", None)
    try:
        with open(path, "rb") as f:
            for prefix, event, value in ijson.parse(f):
                if prefix.endswith("item") and event not in ("end_map", "end_array", "map_key"):
                    counters[prefix] = counters.get(prefix, -1) + 1
                    if prefix == "item":
                        rid = None
                if event == "start_array":
                    counters[f"{prefix}.item" if prefix else "item"] = -1
                if prefix == "item.id" and event in ("string", "number"):
                    rid = value
                last = (prefix, event, value)
    except ijson.JSONError:
        pass
    prefix, event, value = last
    if event == "map_key":
        prefix = f"{prefix}.{value}"
    field = _field_path(prefix, counters) or "(record start)"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    loc = where(path, max(counters["item"], 0), rid, field)
    return f"{loc}: invalid or truncated JSON ({detail})"


def _field_path(prefix: str, counters: dict[str, int]) -> str:
    """``item.conversations.item.value`` -> ``conversations[1].value`` (record prefix dropped)."""
    out, cur = "", "item"
    for part in prefix.split(".")[1:]:
        cur += "." + part
        out += f"[{counters.get(cur, 0)}]" if part == "item" else ("." if out else "") + part
    return out


def require(rec: Any, key: str, kind: type | tuple[type, ...], loc: tuple) -> Any:
    """``rec[key]``, checked to exist and be of ``kind``; ``loc`` is (file, index, id)."""
    if not isinstance(rec, Mapping):
        raise DataError(f"{where(*loc, None)}: record is {type(rec).__name__}, not an object")
    if key not in rec or rec[key] is None:
        raise DataError(f"{where(*loc, key)}: missing")
    value = rec[key]
    if not isinstance(value, kind):
        raise DataError(
            f"{where(*loc, key)}: expected {_kind_name(kind)}, got {type(value).__name__}"
        )
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({str: "string", list: "list", dict: "object", int: "integer"}.get(
        k, k.__name__) for k in kinds)


def record_id(rec: Any, file: Path | str, index: int, key: str = "id") -> str:
    """The record's id as a string (integers allowed), or DataError naming the field."""
    rid = require(rec, key, (str, int), (file, index, None))
    if isinstance(rid, bool):
        raise DataError(f"{where(file, index, None, key)}: expected string, got bool")
    rid = str(rid)
    if not rid:
        raise DataError(f"{where(file, index, None, key)}: empty id")
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
    turn); a conversation with no assistant turn, or nothing before its first one, is an
    error.

    >>> to_messages([{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"},
    ...              {"from": "human", "value": "?"}], ("f", 0, "a"), "conversations",
    ...             "from", "value")
    [{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'yo'}]
    """
    file, index, rid = loc
    if not isinstance(turns, list):
        raise DataError(
            f"{where(file, index, rid, field)}: expected a list of turns, "
            f"got {type(turns).__name__}"
        )
    messages: list[dict[str, str]] = []
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
        content = turn.get(content_key)
        if not isinstance(content, str):
            raise DataError(
                f"{where(file, index, rid, f'{tfield}.{content_key}')}: content must be a "
                f"string, got {type(content).__name__}"
            )
        messages.append({"role": ROLE_MAP[speaker.lower()], "content": content})
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    if last < 0:
        raise DataError(f"{where(file, index, rid, field)}: no response (assistant) turn")
    if last == 0:
        raise DataError(f"{where(file, index, rid, field)}: no prompt turn before the response")
    return messages[: last + 1]


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


def data_files(path: str | Path) -> list[Path]:
    """The record files under ``path``: itself if a file, else every data file below it.

    A folder written by ``datasets.save_to_disk`` holds ``*.arrow`` shards next to
    ``dataset_info.json``/``state.json``; those JSON sidecars are not data and are skipped.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    sidecars = {"dataset_info.json", "state.json", "dataset_dict.json"}
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name not in sidecars
                   and p.suffix in COLUMNAR_SUFFIXES + ROW_SUFFIXES)
    if not files:
        raise DataError(f"{path}: no .parquet, .arrow, .json or .jsonl files found")
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
    path = Path(path)
    ids = IdSet()
    for index, rec in iter_records(path):
        rid = record_id(rec, path, index)
        ids.add(rid, path, index)
        loc = (path, index, rid)
        task = require(rec, task_field, str, loc) if task_field is not None else None
        turns = require(rec, "conversations", list, loc)
        yield {"id": rid, "task": task,
               "messages": to_messages(turns, loc, "conversations", "from", "value"),
               "source": source, "metadata": "{}"}
