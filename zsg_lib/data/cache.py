"""The columnar cache: a source file converted once to Parquet, read back in seconds.

A cache file is keyed by the source file's resolved path, size and modification time (and the
converter's name and version), so editing the source invalidates it. It is written batch by
batch to a temporary file and moved into place only when the whole conversion succeeded: a
bad record half-way through a file leaves no cache behind.

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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path
from ..errors import DataError
from ..paths import cache_dir as default_cache_dir
from ..schema import INSTANCE_SCHEMA

#: Bump when a converter's output changes, so old caches are not reused.
CACHE_VERSION = 1
BATCH_ROWS = 50_000


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


def write_parquet(rows: Iterable[Mapping[str, Any]], target: Path) -> int:
    """Write schema rows to ``target`` atomically, in record batches; return the row count."""
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
    """Read a cache file back as an instance table."""
    return pq.read_table(path, schema=INSTANCE_SCHEMA)


def convert_cached(
    source: str | Path,
    rows: Callable[[], Iterable[Mapping[str, Any]]],
    *,
    kind: str,
    cache_dir: str | Path | None = None,
) -> pa.Table:
    """Return the cached table of ``source``, converting it with ``rows()`` if needed.

    ``rows`` is called only on a cache miss and must yield dicts with the schema's columns
    (``metadata`` already a JSON string); it raises DataError on bad input, in which case
    nothing is written.
    """
    if not Path(source).is_file():
        raise DataError(f"{source}: no such file")
    target = cache_path(source, kind, cache_dir)
    if not target.exists():
        write_parquet(rows(), target)
    return read_cache(target)
