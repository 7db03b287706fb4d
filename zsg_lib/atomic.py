"""Atomic file writes: a reader never sees a half-written file.

Everything zsg caches or records (Parquet caches, embeddings, run records) is written to a
temporary file in the same directory and moved into place with :func:`os.replace`, which is
atomic on POSIX. An interrupted write leaves at most a stray ``.tmp-*`` file, never a
truncated file under the real name. A temporary name carries the writer's process id
(``.tmp-<name>.<pid>.<random>``), so :func:`clean_stale_temps` can tell exactly which strays
no live process is still writing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: ``.tmp-<name>.<pid>.<random>``: the writer's pid sits before the random suffix (no dots).
_TEMP_NAME = re.compile(r"^\.tmp-.+\.(\d+)\.[^.]+$")


def temp_prefix(path: str | Path) -> str:
    """The prefix of this process's temporary names for ``path`` (for mkstemp/mkdtemp).

    >>> temp_prefix("/runs/x/log.parquet") == f".tmp-log.parquet.{os.getpid()}."
    True
    """
    return f".tmp-{Path(path).name}.{os.getpid()}."


def writer_pid(name: str) -> int | None:
    """The process id in a temporary name, ``None`` when the name carries none.

    >>> writer_pid(".tmp-log.parquet.4242.k2j_x9a1"), writer_pid(".tmp-log.parquet.k2j_x9a1")
    (4242, None)
    """
    match = _TEMP_NAME.match(name)
    return int(match.group(1)) if match else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files and folders in ``folder`` whose writer is no longer alive
    (a kill during a checkpoint or table write). Names without a pid are left alone, as are
    those of live processes (a reused pid only delays the cleanup). Returns what was removed.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / ".tmp-checkpoint.pt.999999999.abc").write_bytes(b"half")
    >>> _ = (d / f".tmp-log.parquet.{os.getpid()}.abc").write_bytes(b"mine")
    >>> [p.name for p in clean_stale_temps(d)]
    ['.tmp-checkpoint.pt.999999999.abc']
    """
    removed = []
    for tmp in sorted(Path(folder).glob(".tmp-*")):
        pid = writer_pid(tmp.name)
        if pid is None or _alive(pid):
            continue
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success move it to ``path`` atomically.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "x.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "x.txt").read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path))
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the final file the mode an ordinary open() would.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        if tmp.is_dir():  # pragma: no cover - callers write files
            raise IsADirectoryError(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
