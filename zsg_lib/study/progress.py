"""What the book build says while it trains: one line per run as it starts and ends, an ETA;
a line as other long work (gradient features) starts and ends.

Jupyter Book swallows what the kernels print, so the kernels write *events* instead, one JSON
line each, appended to the file named by ``$ZSG_PROGRESS_FILE``; :func:`zsg_lib.site.build.build_site`
sets it for the kernels it starts (one file for the whole book) and a :class:`Tailer` thread
turns new events into terminal lines through a :class:`Board`, which knows how many runs and
steps the book plans (:func:`zsg_lib.study.chapter_runs.planned_runs`,
:func:`~zsg_lib.study.chapter_runs.planned_steps`) and how long trained runs took.

Outside a build (JupyterLab, papermill) the variable is unset and the events do nothing: there
``run_many`` draws its own live bar.

Each event names its chapter from ``$ZSG_CHAPTER``: the site extension sets it as Sphinx reads
each document, before myst-nb starts that notebook's kernel (:mod:`zsg_lib.site.extension`); a
papermill batch sets it per notebook.

>>> b = Board(planned=3, planned_steps=36, clock=lambda: 100.0)
>>> b.line({"event": "run_started", "label": "nft-seed0", "steps": 12, "chapter": "03_similarity"})
'zsg: [03_similarity] nft seed 0: run 1/3 started (12 steps)'
>>> b.line({"event": "run_finished", "label": "nft-seed0", "steps": 12, "seconds": 30.0,
...         "reused": False, "run_id": "a1", "chapter": "03_similarity"})
'zsg: [03_similarity] nft seed 0: run 1/3 trained in 30 s (12 steps); book ETA 60 s (2 runs left)'
>>> b.line({"event": "run_finished", "label": "fft-seed0", "steps": 12, "seconds": 0.1,
...         "reused": True, "run_id": "b2", "chapter": "03_similarity"})
'zsg: [03_similarity] fft seed 0: run 2/3 cached (read back); book ETA 30 s (1 run left)'
>>> b.line({"event": "work_finished", "label": "gradient features (train) seed 0",
...         "detail": "720 instances", "seconds": 55.0, "chapter": "07_instance_level"})
'zsg: [07_instance_level] gradient features (train) seed 0: computed in 55 s (720 instances)'
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PROGRESS_ENV = "ZSG_PROGRESS_FILE"
CHAPTER_ENV = "ZSG_CHAPTER"  # set by whoever starts a chapter's kernel (site extension, batch)
SITE_ENV = "ZSG_SITE_BUILD"  # "1" in the kernels the site build starts (site extension, build)
ETA_RECENT_RUNS = 5  # the ETA takes the median pace of this many latest trained runs

# --------------------------------------------------------------------------- kernel side

_started: dict[str, float] = {}


def _emit(event: dict[str, Any]) -> None:
    """Append one event line, stamped with its chapter, process and time; never let progress
    reporting break a run."""
    target = os.environ.get(PROGRESS_ENV)
    if not target:
        return
    event = {**event, "chapter": os.environ.get(CHAPTER_ENV), "pid": os.getpid(),
             "time": time.time()}
    line = (json.dumps(event, default=str) + "\n").encode()
    try:
        # One write() of an O_APPEND file: lines from several kernels never interleave.
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        pass


def site_mode() -> bool:
    """True while the Jupyter Book build executes chapters (``ZSG_SITE_BUILD=1``)."""
    return os.environ.get(SITE_ENV, "") == "1"


def _elapsed(label: str) -> float | None:
    """Seconds since ``label`` started in this process (``None`` if it did not start here)."""
    began = _started.pop(label, None)
    return time.monotonic() - began if began is not None else None


def run_started(label: str, steps: int, profile: str | None = None,
                run_id: str | None = None, ready: bool = False) -> None:
    """A training run (``label`` like ``nft-seed0``) is about to train, or (``ready``) to be
    read back from its finished record."""
    _started[label] = time.monotonic()
    _emit({"event": "run_started", "label": label, "steps": steps, "profile": profile,
           "run_id": run_id, "ready": bool(ready)})


def run_finished(label: str, steps: int, reused: bool, run_id: str | None = None,
                 profile: str | None = None) -> None:
    """The run ended: trained now (``reused=False``) or an earlier record read back."""
    seconds = _elapsed(label)
    _emit({"event": "run_finished", "label": label, "steps": steps, "profile": profile,
           "reused": bool(reused), "run_id": run_id, "seconds": seconds})


def work_started(label: str, detail: str) -> None:
    """Long work other than training begins (``label`` like ``gradient features (train)
    seed 0``, ``detail`` like ``720 instances``): without a line a build would look hung."""
    _started[label] = time.monotonic()
    _emit({"event": "work_started", "label": label, "detail": detail})


def work_finished(label: str, detail: str) -> None:
    """The work begun by :func:`work_started` with this ``label`` ended."""
    seconds = _elapsed(label)
    _emit({"event": "work_finished", "label": label, "detail": detail, "seconds": seconds})


# --------------------------------------------------------------------------- build side


def split_label(label: str) -> tuple[str, int | None]:
    """``"tma-window3-seed1"`` -> ``("tma-window3", 1)``; a label without a seed keeps it all.

    >>> split_label("nft-seed0"), split_label("custom")
    (('nft', 0), ('custom', None))
    """
    m = re.fullmatch(r"(.+)-seed(\d+)", label)
    return (m.group(1), int(m.group(2))) if m else (label, None)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min``, ``1 h 05 min``.

    >>> duration(42.4), duration(185), duration(3900)
    ('42 s', '3 min', '1 h 05 min')
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class Board:
    """The build's state of play: runs and steps done, the pace of trained runs; formats
    lines. The ETA is the steps left times the median seconds per step of the latest trained
    runs (without a planned step count: the runs left times their median seconds).

    ``planned`` and ``planned_steps`` are the whole book's distinct runs and their training
    steps (``None``: unknown). A run read back whose id was already counted in this build (two
    chapters share it) does not advance the count.
    """

    def __init__(self, planned: int | None = None, planned_steps: int | None = None,
                 clock: Callable[[], float] = time.monotonic, scope: str = "book") -> None:
        self.planned = planned
        self.scope = scope  # what the ETA is of: the "book", a "batch"
        self.planned_steps = planned_steps
        self.done: set[str] = set()
        self.done_steps = 0
        self.trained_seconds: list[float] = []
        self.trained_pace: list[float] = []  # seconds per step
        self.in_flight: dict[str, str] = {}  # label -> chapter, started and not finished
        self.clock = clock
        self.lock = threading.Lock()

    def _count(self, next_run: bool) -> str:
        i = len(self.done) + (1 if next_run else 0)
        if self.planned is None:
            return f"run {i}"
        return f"run {i}/{self.planned}" if i <= self.planned else f"run {i} ({self.planned} planned)"

    def _eta(self) -> str:
        if self.planned is None or not self.trained_seconds:
            return ""
        left = max(self.planned - len(self.done), 0)
        # the latest runs: a book's first runs (chapter 1's from step 0, with generation) take
        # twice a branched run, and most of what is left is like the runs just trained. Per
        # step, as a warm-up of 8 steps and a comparison of 40 alternate in the latest runs.
        if self.planned_steps is not None and self.trained_pace:
            pace = statistics.median(self.trained_pace[-ETA_RECENT_RUNS:])
            seconds = pace * max(self.planned_steps - self.done_steps, 0) if left else 0.0
        else:
            seconds = statistics.median(self.trained_seconds[-ETA_RECENT_RUNS:]) * left
        return (f"; {self.scope} ETA {duration(seconds)} "
                f"({left} run{'s' if left != 1 else ''} left)")

    def line(self, event: dict[str, Any]) -> str | None:
        """The terminal line of one event (``None`` for an event of another kind)."""
        with self.lock:
            chapter = event.get("chapter") or event.get("profile") or "?"
            label = str(event.get("label"))
            if event.get("event") in ("work_started", "work_finished"):
                if event["event"] == "work_started":
                    return f"zsg: [{chapter}] {label}: computing ({event.get('detail')})"
                took = duration(float(event.get("seconds") or 0.0))
                return f"zsg: [{chapter}] {label}: computed in {took} ({event.get('detail')})"
            name, seed = split_label(label)
            head = f"zsg: [{chapter}] {name}" + (f" seed {seed}" if seed is not None else "")
            if event.get("event") == "run_started":
                if event.get("ready") or event.get("run_id") in self.done:
                    return None  # read back at once: its finished line says so
                self.in_flight[label] = chapter
                return f"{head}: {self._count(True)} started ({event.get('steps')} steps)"
            if event.get("event") != "run_finished":
                return None
            self.in_flight.pop(label, None)
            run_id = event.get("run_id") or f"{chapter}/{label}"
            if run_id in self.done:
                return f"{head}: shared with an earlier run of this build (read back)"
            self.done.add(run_id)
            steps = int(event.get("steps") or 0)
            self.done_steps += steps
            if event.get("reused"):
                return f"{head}: {self._count(False)} cached (read back){self._eta()}"
            seconds = float(event.get("seconds") or 0.0)
            self.trained_seconds.append(seconds)
            if steps:
                self.trained_pace.append(seconds / steps)
            return (f"{head}: {self._count(False)} trained in {duration(seconds)} "
                    f"({event.get('steps')} steps){self._eta()}")

    def unfinished(self) -> list[str]:
        """Lines naming the runs that started and never finished (a chapter failed)."""
        with self.lock:
            return [f"zsg: run {split_label(label)[0]} seed {split_label(label)[1]} in "
                    f"{chapter} started and did not finish"
                    for label, chapter in self.in_flight.items()]


class Tailer:
    """Follow an events file in a background thread, handing each new line's text to ``echo``.

    Use as a context manager; leaving it reads what is left, so no event is lost.

    >>> import tempfile; f = Path(tempfile.mkdtemp()) / "events.jsonl"
    >>> seen = []
    >>> with Tailer(f, Board(planned=1), seen.append, interval=0.01):
    ...     with _Env(PROGRESS_ENV, str(f)):
    ...         run_started("nft-seed0", 4)
    >>> seen
    ['zsg: [?] nft seed 0: run 1/1 started (4 steps)']
    """

    def __init__(self, path: str | os.PathLike, board: Board, echo: Callable[[str], None],
                 interval: float = 0.5) -> None:
        self.path, self.board, self.echo, self.interval = Path(path), board, echo, interval
        self._offset, self._partial = 0, b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="zsg-progress", daemon=True)

    def __enter__(self) -> Tailer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()  # whatever arrived after the last poll

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        """Read complete new lines and echo their formatted text."""
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for raw in lines:
            try:
                event = json.loads(raw)
            except ValueError:
                continue  # a damaged line says nothing useful; skip it
            text = self.board.line(event) if isinstance(event, dict) else None
            if text:
                self.echo(text)


@contextlib.contextmanager
def reporting(events: str | os.PathLike, board: Board,
              echo: Callable[[str], None]) -> Iterator[Board]:
    """Kernels started inside the block (papermill's, in this process's environment) write
    their events to ``events``, emptied first; each becomes a line through ``echo``. What
    ``zsg batch`` does; on leaving with an error, the runs that never finished are named.

    >>> import tempfile; f = Path(tempfile.mkdtemp()) / "events.jsonl"
    >>> with reporting(f, Board(planned=2), print):
    ...     run_started("rt-seed1", 6)
    zsg: [?] rt seed 1: run 1/2 started (6 steps)
    """
    path = Path(events).resolve()  # a kernel runs in its notebook's folder, not here
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    saved = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = str(path)
    try:
        with Tailer(path, board, echo):
            yield board
    except BaseException:
        for line in board.unfinished():
            echo(line)
        raise
    finally:
        if saved is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = saved
        path.unlink(missing_ok=True)


class _Env:
    """Set one environment variable for a ``with`` block (doctests, tests)."""

    def __init__(self, key: str, value: str) -> None:
        self.key, self.value, self.saved = key, value, None

    def __enter__(self) -> None:
        self.saved = os.environ.get(self.key)
        os.environ[self.key] = self.value

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            os.environ.pop(self.key, None)
        else:
            os.environ[self.key] = self.saved
