"""The columnar cache: a source file converted once to Parquet, read back in seconds.

A cache file is keyed by the source file's resolved path, size and modification time (and the
converter's name and version), so editing the source invalidates it. It is written batch by
batch to a temporary file and moved into place only when the whole conversion succeeded: a
bad record half-way through a file leaves no cache behind.

Two fault edges are handled on the next run:

- a process killed while writing leaves its ``.tmp-<name>.parquet.*`` file (see
  :mod:`zsg_lib.atomic`; the names carry no pid) behind; the next write into that folder
  removes such files not modified for :data:`STALE_TMP_SECONDS` (a live writer touches its
  file at every batch, far more often);
- a truncated or corrupt cache file (a disk filled up, a copy cut short) is detected when it
  is read: it is removed and rebuilt from the source with a :class:`~zsg_lib.errors.DataWarning`;
  :func:`read_cache` alone raises a DataError naming the file and saying to delete it.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> src = d / "src.txt"; _ = src.write_text("x")
>>> rows = lambda: iter([{"id": "a", "task": "t", "messages": [
...     {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
...     "source": "demo", "metadata": "{}"}])
>>> t = convert_cached(src, rows, kind="doc", cache_dir=d / "cache")
>>> t.num_rows, len(list((d / "cache").glob("*.parquet")))
(1, 1)
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path
from ..errors import DataError, DataWarning
from ..paths import cache_dir as default_cache_dir
from ..schema import INSTANCE_SCHEMA
from .jsonfiles import as_path, check_file

#: Bump when a converter's output changes, so old caches are not reused. (2: caches are
#: only written from records that passed the conversation rules of zsg_lib.schema.)
CACHE_VERSION = 2
BATCH_ROWS = 50_000
#: A cache temp file untouched this long (seconds) belongs to a writer that died.
STALE_TMP_SECONDS = 3600


def cache_key(path: str | Path, kind: str) -> str:
    """A short hex key from the file's path, size and mtime, the converter and its version."""
    path = Path(path).resolve()
    st = path.stat()
    raw = f"{kind}|v{CACHE_VERSION}|{path}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def cache_path(path: str | Path, kind: str, cache_dir: str | Path | None = None) -> Path:
    """Where the Parquet cache of ``path`` lives (``$ZSG_HOME/datasets`` by default)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir("datasets")
    return root / f"{Path(path).stem}.{kind}.{cache_key(path, kind)}.parquet"


def _batch(rows: list[Mapping[str, Any]]) -> pa.Table:
    cols = {name: [r[name] for r in rows] for name in INSTANCE_SCHEMA.names}
    return pa.Table.from_pydict(cols, schema=INSTANCE_SCHEMA)


def clean_stale_temps(folder: Path, max_age: float | None = None) -> list[Path]:
    """Remove cache temp files in ``folder`` untouched for ``max_age`` seconds.

    ``max_age`` defaults to :data:`STALE_TMP_SECONDS`. Only the names
    :func:`~zsg_lib.atomic.atomic_path` gives Parquet caches (``.tmp-*.parquet.*``) are
    considered. Returns the removed paths.

    >>> import os, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> old = d / ".tmp-x.parquet.abc123"; _ = old.write_bytes(b"PAR1")
    >>> os.utime(old, (0, 0))
    >>> [p.name for p in clean_stale_temps(d)], old.exists()
    (['.tmp-x.parquet.abc123'], False)
    """
    max_age = STALE_TMP_SECONDS if max_age is None else max_age
    now, removed = time.time(), []
    for tmp in folder.glob(".tmp-*.parquet.*"):
        try:
            if tmp.is_file() and now - tmp.stat().st_mtime > max_age:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:  # another process cleaned it or finished first
            continue
    return removed


def write_parquet(rows: Iterable[Mapping[str, Any]], target: Path) -> int:
    """Write schema rows to ``target`` atomically, in record batches; return the row count.

    Stale temp files of killed writers in the target's folder are removed first.
    """
    if target.parent.is_dir():
        clean_stale_temps(target.parent)
    n = 0
    with atomic_path(target) as tmp:
        writer = pq.ParquetWriter(tmp, INSTANCE_SCHEMA, compression="zstd")
        try:
            buf: list[Mapping[str, Any]] = []
            for row in rows:
                buf.append(row)
                if len(buf) >= BATCH_ROWS:
                    writer.write_table(_batch(buf))
                    n += len(buf)
                    buf = []
            if buf:
                writer.write_table(_batch(buf))
                n += len(buf)
        finally:
            writer.close()
    return n


def read_cache(path: Path) -> pa.Table:
    """Read a cache file back as an instance table.

    A truncated or corrupt file (or one with another schema) is a :class:`DataError`
    naming it and saying to delete it (the next load then rebuilds it).
    """
    try:
        schema = pq.read_schema(path)
        # read_table(schema=...) would fill missing columns with nulls: compare first.
        if not schema.equals(INSTANCE_SCHEMA, check_metadata=False):
            raise DataError(f"{path}: cache file has columns {schema.names}, not the instance "
                            "schema's; delete it and load again to rebuild it from the source")
        return pq.read_table(path, schema=INSTANCE_SCHEMA)
    except (pa.ArrowException, OSError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cache file is truncated or corrupt ({detail}); delete it "
                        "and load again to rebuild it from the source") from None


def _check_cache_dir(cache_dir: str | Path | None) -> None:
    """A DataError when ``cache_dir`` is given but is no path, or is an existing file."""
    if cache_dir is None:
        return
    folder = as_path(cache_dir, "cache_dir")
    if folder.exists() and not folder.is_dir():
        raise DataError(f"cache_dir {str(folder)!r}: is a file, expected a folder")


def _rebuild(target: Path, rows: Callable[[], Iterable[Mapping[str, Any]]],
             error: DataError) -> pa.Table:
    """Replace the unreadable cache ``target`` by a fresh conversion, with a warning."""
    warnings.warn(f"{error}; rebuilding it from the source now", DataWarning, stacklevel=3)
    try:
        target.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise DataError(f"{target}: cache file is corrupt and cannot be removed ({exc}); "
                        "delete it by hand") from None
    write_parquet(rows(), target)
    return read_cache(target)


def convert_cached(
    source: str | Path,
    rows: Callable[[], Iterable[Mapping[str, Any]]],
    *,
    kind: str,
    cache_dir: str | Path | None = None,
) -> pa.Table:
    """Return the cached table of ``source``, converting it with ``rows()`` if needed.

    ``rows`` is called only on a cache miss (or to rebuild a corrupt cache) and must yield
    dicts with the schema's columns (``metadata`` already a JSON string); it raises
    DataError on bad input, in which case nothing is written.
    """
    check_file(source)
    _check_cache_dir(cache_dir)
    target = cache_path(source, kind, cache_dir)
    if not target.exists():
        write_parquet(rows(), target)
    try:
        return read_cache(target)
    except DataError as exc:
        return _rebuild(target, rows, exc)
