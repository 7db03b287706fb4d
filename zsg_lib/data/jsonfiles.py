"""Streaming readers for JSON and JSON Lines record files.

Real instruction datasets are large (Flan-mini: 1.3 million records, 1–2 GB of JSON), so a
file is never parsed into Python objects all at once: :func:`iter_records` yields one record
at a time from a JSON array (with ``ijson``) or from JSON Lines. Malformed input becomes a
:class:`~zsg_lib.errors.DataError` naming the file, the record (index and id) and the field.

What is read, and what is refused with a message saying how to fix it:

- UTF-8 text, with or without a byte-order mark; gzip-compressed files (``.json.gz``,
  ``.jsonl.gz``, recognised by their content) are decompressed on the fly.
- UTF-16/UTF-32 files are refused (re-encode them as UTF-8), as is invalid UTF-8.
- A JSON object wrapping the array (``{"data": [...]}``) is refused naming its keys; two
  arrays one after the other are refused naming the line where the second starts.
- ``NaN`` and ``Infinity`` are not JSON: they are refused in JSON arrays and in JSON Lines
  alike, naming the record and field (Python's ``json`` would accept them in JSON Lines).

>>> import json, tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
>>> _ = p.write_text(json.dumps([{"id": "a"}, {"id": "b"}]))
>>> [(i, r["id"]) for i, r in iter_records(p)]
[(0, 'a'), (1, 'b')]
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import ijson

from ..errors import DataError, where

_ID_RE = re.compile(r'"id"\s*:\s*"((?:[^"\\]|\\.)*)"')
_KEY_RE = re.compile(r'"(\w+)"\s*:')
_NONFINITE_RE = re.compile(r"-?(?:NaN|Infinity)")

UTF8_BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
# Checked longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_WIDE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
              (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
_UTF8_HINT = "re-encode it as UTF-8 (e.g. iconv -f {enc} -t UTF-8 in.json > out.json)"
_EXPECTED = "expected a JSON array of records or JSON Lines (one record per line)"


def as_path(value: Any, arg: str = "path") -> Path:
    """``value`` as a Path; DataError naming ``arg`` when it is not a str or path-like.

    >>> as_path(["a.json"])
    Traceback (most recent call last):
    ...
    zsg_lib.errors.DataError: path: expected a file or folder path (str or os.PathLike), got list
    """
    if isinstance(value, (str, os.PathLike)) and str(value) != "":
        return Path(value)
    got = "an empty string" if value == "" else type(value).__name__
    raise DataError(f"{arg}: expected a file or folder path (str or os.PathLike), got {got}")


def check_file(path: str | Path) -> Path:
    """``path`` as a Path, or DataError when it does not exist or is a folder."""
    path = as_path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a file (a JSON array of records or "
                        "JSON Lines)")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return path


def _wide_encoding(head: bytes) -> str | None:
    """``"UTF-16"``/``"UTF-32"`` when ``head`` starts like such a file, else None."""
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            return name
    # Without a mark, ASCII text in UTF-16 has a NUL byte next to every character.
    if len(head) >= 4 and head[:4].count(0) == 2 and (head[0] == 0 or head[1] == 0):
        return "UTF-16"
    return None


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a record file for reading bytes: gunzipped if gzip, UTF-8 BOM skipped.

    A UTF-16 or UTF-32 file is a DataError saying so (the parsers read UTF-8 only).
    """
    path = check_file(path)
    with open(path, "rb") as raw:
        magic = raw.read(2)
    f: IO[bytes] = gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")
    try:
        head = f.peek(4)[:4]  # type: ignore[attr-defined]
    except (OSError, EOFError, zlib.error) as exc:
        f.close()
        raise DataError(f"{path}: corrupt gzip file ({exc}); re-create or re-download it") from None
    encoding = _wide_encoding(head)
    if encoding:
        f.close()
        raise DataError(f"{path}: is {encoding} encoded; {_UTF8_HINT.format(enc=encoding)}")
    if head.startswith(UTF8_BOM):
        f.read(len(UTF8_BOM))
    return f


def _first_char(path: Path) -> str:
    """The first non-whitespace character of a file ('' when it is empty or blank)."""
    with open_binary(path) as f:
        while True:
            chunk = _read(f, path, 4096)
            if not chunk:
                return ""
            stripped = chunk.lstrip()
            if stripped:
                return stripped[:1].decode("utf-8", errors="replace")


def _read(f: IO[bytes], path: Path, size: int = -1) -> bytes:
    """``f.read(size)``, a truncated or corrupt gzip stream turned into a DataError."""
    try:
        return f.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip file ({exc}); re-create or "
                        "re-download it") from None


def file_format(path: str | Path) -> str:
    """``"json"`` for a JSON array, ``"jsonl"`` for JSON Lines; DataError if empty or neither.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.jsonl").write_bytes(b'\\xef\\xbb\\xbf{"id": 1}\\n')
    >>> file_format(d / "a.jsonl")
    'jsonl'
    >>> file_format(d)
    Traceback (most recent call last):
    ...
    zsg_lib.errors.DataError: ...: is a folder, expected a file (a JSON array ...)
    """
    path = check_file(path)
    first = _first_char(path)
    if first == "":
        raise DataError(f"{path}: empty file ({_EXPECTED})")
    if first == "[":
        return "json"
    if first == "{":
        return "jsonl"
    raise DataError(f"{path}: starts with {first!r}; {_EXPECTED}")


def iter_records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, record)`` from a JSON array or a JSON Lines file, streaming.

    An empty file, an empty array, and syntax errors (a truncated file, a stray comma) raise
    :class:`DataError`; a syntax error names the record being read, its id when it was
    already seen, and the field being parsed.
    """
    path = check_file(path)
    records = _array_records(path) if file_format(path) == "json" else _line_records(path)
    n = 0
    for n, rec in enumerate(records, start=1):
        yield n - 1, rec
    if n == 0:
        raise DataError(f"{path}: no records")


def _array_records(path: Path) -> Iterator[Any]:
    n = 0
    with open_binary(path) as f:
        try:
            for rec in ijson.items(f, "item", use_float=True):
                yield rec
                n += 1
        except ijson.JSONError as exc:
            raise DataError(_locate_syntax_error(path, exc)) from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{where(path, n)}: not valid UTF-8 ({exc.reason}); "
                            f"{_UTF8_HINT.format(enc='LATIN1')}") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{where(path, n)}: truncated or corrupt gzip file ({exc}); "
                            "re-create or re-download it") from None


def _line_records(path: Path) -> Iterator[Any]:
    n = 0
    with open_binary(path) as f:
        for line_no, raw in enumerate(_lines(f, path), start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{where(path, n)}: line {line_no} is not valid UTF-8 "
                                f"(byte {exc.start}); {_UTF8_HINT.format(enc='LATIN1')}") from None
            if not line.strip():
                continue
            yield _parse_line(path, n, line_no, line)
            n += 1


def _lines(f: IO[bytes], path: Path) -> Iterator[bytes]:
    while True:
        try:
            line = f.readline()
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: truncated or corrupt gzip file ({exc}); re-create or "
                            "re-download it") from None
        if not line:
            return
        yield line


class _NonFinite(str):
    """Stands in for a NaN/Infinity constant while a JSON line is parsed, to locate it."""


def _parse_line(path: Path, n: int, line_no: int, line: str) -> Any:
    """One JSON Lines record; DataError naming record, id and field on bad JSON or NaN."""
    try:
        rec = json.loads(line, parse_constant=_NonFinite)
    except json.JSONDecodeError as exc:
        if n == 0:
            _raise_if_not_json_lines(path)
        m = _ID_RE.search(line)
        rid = m.group(1) if m else None
        # The last key before the error position is the field being parsed.
        keys = _KEY_RE.findall(line[: exc.pos])
        field = keys[-1] if keys else "(record start)"
        raise DataError(
            f"{where(path, n, rid, field)}: invalid JSON on line {line_no}, "
            f"column {exc.colno}: {exc.msg}"
        ) from None
    found = _find_nonfinite(rec)
    if found is not None:
        field, token = found
        rid = rec.get("id") if isinstance(rec, Mapping) else None
        raise DataError(f"{where(path, n, rid, field or '(record)')}: {_nonfinite_msg(token)} "
                        f"(line {line_no})")
    return rec


def _nonfinite_msg(token: str) -> str:
    return (f"{token} is not valid JSON (NaN and Infinity are not JSON numbers); write null, "
            "a number or a quoted string instead")


def _find_nonfinite(value: Any, field: str = "") -> tuple[str, str] | None:
    """``(field path, token)`` of the first NaN/Infinity in a parsed record, else None."""
    if isinstance(value, _NonFinite):
        return field, str(value)
    if isinstance(value, Mapping):
        items = ((f"{field}.{k}" if field else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{field}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for sub, v in items:
        found = _find_nonfinite(v, sub)
        if found is not None:
            return found
    return None


def _raise_if_not_json_lines(path: Path) -> None:
    """A file starting with ``{`` whose first line is no whole record: say what it is."""
    keys, arrays, trailing = _top_level_keys(path)
    if keys is None:
        return
    if trailing:
        at = _second_value_start(path)
        where_ = f" (the second starts at line {at[0]}, column {at[1]})" if at else ""
        raise DataError(
            f"{path}: line 1 holds no whole record: this looks like JSON objects written over "
            f"several lines, one after another{where_}; JSON Lines needs each record on one "
            "line, or write the records as one JSON array")
    hint = (f"; the records seem to be the array under {arrays[0]!r}: write that array out "
            "on its own" if arrays else "")
    names = ", ".join(repr(k) for k in keys[:10]) + (" ..." if len(keys) > 10 else "")
    raise DataError(f"{path}: this is a JSON object with key(s) {names}, expected an array of "
                    f"records (or JSON Lines, one record per line){hint}")


def _top_level_keys(path: Path) -> tuple[list[str] | None, list[str], bool]:
    """Keys of a file holding one JSON object, those whose value is an array, and whether
    more JSON follows it; ``(None, [], False)`` when the file is not such an object."""
    keys: list[str] = []
    arrays: list[str] = []
    prev: tuple[str, str, Any] = ("", "", None)
    with open_binary(path) as f:
        try:
            for prefix, event, value in ijson.parse(f):
                if prefix == "" and event == "map_key":
                    keys.append(value)
                elif prev[:2] == ("", "map_key") and event == "start_array":
                    arrays.append(prev[2])
                prev = (prefix, event, value)
        except ijson.JSONError as exc:
            trailing = "trailing garbage" in str(exc) and prev[:2] == ("", "end_map")
            return (keys, arrays, True) if trailing else (None, [], False)
        except (UnicodeDecodeError, DataError):
            return None, [], False
    return keys, arrays, False


# A string (complete), a bracket, or a quote opening a string that runs past the buffer.
_TOKEN_RE = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]|"')
_NON_SPACE_RE = re.compile(rb"\S")
_CHUNK = 1 << 20


def _second_value_start(path: Path) -> tuple[int, int] | None:
    """``(line, column)`` where a second top-level JSON value starts in ``path``, if any.

    Scans bracket depth outside strings, a chunk at a time (only on the error path).
    """
    with open_binary(path) as f:
        buf, depth, ended = b"", 0, False
        line, line_start, base = 1, 0, 0  # base: offset of buf[0] in the stream
        while True:
            chunk = _read(f, path, _CHUNK)
            buf += chunk
            keep, found = _scan(buf, depth, ended, bool(chunk))
            if found is not None:
                nl = buf.rfind(b"\n", 0, found)
                col = found - nl if nl >= 0 else base + found - line_start + 1
                return line + buf.count(b"\n", 0, found), col
            if not chunk:
                return None
            depth, ended, cut = keep
            line += buf.count(b"\n", 0, cut)
            nl = buf.rfind(b"\n", 0, cut)
            line_start = base + nl + 1 if nl >= 0 else line_start
            buf, base = buf[cut:], base + cut


def _scan(buf: bytes, depth: int, ended: bool, more: bool
          ) -> tuple[tuple[int, bool, int], int | None]:
    """Advance the depth scan over ``buf``: ``((depth, ended, cut), start)`` where ``start``
    is the offset of the second value (or None) and ``buf[cut:]`` must be kept for later."""
    pos = 0
    if not ended:
        for m in _TOKEN_RE.finditer(buf):
            tok = m.group()
            if tok == b'"' and more:  # an unterminated string: wait for the next chunk
                return (depth, False, m.start()), None
            depth += 1 if tok in (b"[", b"{") else -1 if tok in (b"]", b"}") else 0
            if depth == 0 and tok in (b"]", b"}"):
                ended, pos = True, m.end()
                break
        else:
            return (depth, False, len(buf)), None
    m = _NON_SPACE_RE.search(buf, pos)
    return ((depth, True, len(buf)), m.start()) if m else ((depth, True, len(buf)), None)


def _locate_syntax_error(path: Path, exc: Exception) -> str:
    """Re-parse event by event (only on the error path) to name the record, id and field."""
    counters: dict[str, int] = {"item": -1}  # array prefix -> index of its current element
    rid, last = None, ("", "", None)
    try:
        with open_binary(path) as f:
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
    except (ijson.JSONError, UnicodeDecodeError, DataError):
        pass
    prefix, event, value = last
    if (prefix, event) == ("", "end_array"):
        return _second_array_msg(path, counters["item"] + 1)
    if event == "map_key":
        prefix = f"{prefix}.{value}"
    field = _field_path(prefix, counters) or "(record start)"
    loc = where(path, max(counters["item"], 0), rid, field)
    token = _error_token(exc)
    if token:
        return f"{loc}: {_nonfinite_msg(token)}"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{loc}: invalid or truncated JSON ({detail})"


def _second_array_msg(path: Path, n_first: int) -> str:
    at = _second_value_start(path)
    start = f" at line {at[0]}, column {at[1]}" if at else ""
    return (f"{path}: a second JSON value starts{start}, after the first array's {n_first} "
            "record(s); expected one array of records: merge the arrays into one, or write "
            "JSON Lines (one record per line)")


def _error_token(exc: Exception) -> str | None:
    """The NaN/Infinity token yajl stopped at, read from its context and caret lines."""
    lines = str(exc).splitlines()
    if len(lines) < 3 or "^" not in lines[2]:
        return None
    caret = lines[2].index("^")  # yajl points just past the token's first character
    m = _NONFINITE_RE.search(lines[1], max(caret - 3, 0))
    return m.group() if m and m.start() <= caret else None


def _field_path(prefix: str, counters: dict[str, int]) -> str:
    """``item.conversations.item.value`` -> ``conversations[1].value`` (record prefix dropped)."""
    out, cur = "", "item"
    for part in prefix.split(".")[1:]:
        cur += "." + part
        out += f"[{counters.get(cur, 0)}]" if part == "item" else ("." if out else "") + part
    return out
