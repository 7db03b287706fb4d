"""Batch runs of the book's chapters with papermill: one chapter, or a whole sweep.

A chapter is a percent-format ``.py`` notebook (``book/03_similarity.py``); papermill cannot
read that format, so it receives ``jupytext.read(path)`` and writes an executed ``.ipynb``
that keeps the ``parameters`` tag and the injected values. A chapter receives ``profile`` and
``overrides`` (see :func:`zsg_lib.profiles.sweeps.load_sweep`) in its ``parameters`` cell.

A sweep records every run in ``status.json`` in its output folder, rewritten atomically after
each run, so an interrupted or failing sweep never loses the other runs' records:

* a run that raises is recorded as ``failed`` with the error, its executed notebook kept as
  ``<name>.failed.ipynb``, and the sweep goes on;
* a rerun skips every run whose notebook ``<name>.ipynb`` is marked complete (metadata
  ``zsg.complete``) for the same chapter, profile and overrides (status ``skipped``).

While a batch runs, its kernels' run events (:mod:`zsg_lib.study.progress`) come back as the
same terminal lines ``zsg book`` prints: one a run as it starts and ends, with the batch's ETA
(:func:`reporting`), and a sweep says which member starts and how it ended.

Members run one after another, or ``jobs`` at a time (:func:`run_specs`): in worker processes
on this machine, each pinned to its own GPU through ``CUDA_VISIBLE_DEVICES`` when there are
GPUs (:func:`plan_slots`), or handed to submitit (``submitit-local``, ``slurm``). Each member's
notebook and ``status.json`` entry are written by the process that ran it; entries are
updated under a file lock (:func:`update_status`), so no worker loses another's.

>>> spec = {"name": "a", "chapter": "03_similarity", "profile": "tiny", "overrides": {"seeds": [0]}}
>>> run_signature(spec) == run_signature(dict(reversed(spec.items())))
True
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import atomic_path, atomic_write_text
from ..errors import ParamsError
from ..paths import REPO_ROOT, zsg_home
from ..profiles.chapters import CHAPTERS
from ..profiles.params import (
    Profile,
    check_chapter,
    check_runnable,
    default_profile,
    load_profile,
)
from ..profiles.sweeps import sweep_members
from ..study import progress as events
from ..study.progress import CHAPTER_ENV
from .workers import make_executor, pinned, plan_slots

STATUS_FILE = "status.json"
STATUS_LOCK = ".status.lock"
COLUMNS = ["name", "chapter", "profile", "overrides", "status", "error", "notebook", "seconds",
           "finished"]


class RunFailed(RuntimeError):
    """A chapter raised while executing; the executed notebook shows where."""

    def __init__(self, message: str, notebook: Path | None = None) -> None:
        super().__init__(message)
        self.notebook = notebook


def book_dir() -> Path:
    """The folder of the book's chapters (``book/`` of this checkout)."""
    return REPO_ROOT / "book"


def resolve_chapter(chapter: str | os.PathLike, where: Path | None = None) -> Path:
    """A chapter's file from a path or a name in ``book/`` (``03_similarity``).

    >>> resolve_chapter("nope", Path("/tmp"))
    Traceback (most recent call last):
    ...
    zsg_lib.errors.ParamsError: chapter: 'nope' is neither a notebook file nor a chapter in /tmp
    """
    where = where or book_dir()
    path = Path(chapter)
    candidates = [path] if path.suffix in {".py", ".ipynb"} else [
        where / f"{path.name}.py", where / f"{path.name}.ipynb"]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise ParamsError(
        f"chapter: {str(chapter)!r} is neither a notebook file nor a chapter in {where}")


def check_run(chapter: str | os.PathLike, profile: str | None,
              overrides: Mapping[str, Any] | None) -> None:
    """Fail before any work when the profile, its overrides or the chapter cannot run.

    A book chapter is checked against the profile (e.g. a chapter that needs task labels);
    another notebook only gets its profile and overrides validated.
    """
    prof = load_profile(profile or default_profile(), dict(overrides or {}))
    if Path(chapter).stem in CHAPTERS:
        check_runnable(prof)
        check_chapter(prof, Path(chapter).stem)


@contextlib.contextmanager
def _kernel_env(chapter: str | None = None) -> Iterator[None]:
    """The kernel runs in the chapter's folder; pin ZSG_HOME so caches stay where we are."""
    saved = {k: os.environ.get(k) for k in ("ZSG_HOME", "ZSG_SITE_BUILD", CHAPTER_ENV)}
    os.environ["ZSG_HOME"] = str(zsg_home())
    os.environ.pop("ZSG_SITE_BUILD", None)  # batch notebooks render charts self-contained
    if chapter:
        os.environ[CHAPTER_ENV] = chapter  # progress events name their chapter
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_chapter(
    chapter: str | os.PathLike,
    parameters: Mapping[str, Any] | None = None,
    out_dir: str | os.PathLike = "runs/batch",
    name: str | None = None,
    progress: bool = True,
) -> Path:
    """Execute one chapter with ``parameters``; return the executed notebook's path.

    The notebook is written as ``out_dir/<name>.ipynb`` only when every cell succeeded, and
    marked complete in its metadata. If a cell raises, the partial notebook is kept as
    ``<name>.failed.ipynb`` and :class:`RunFailed` says which cell and why.
    """
    import jupytext
    import nbformat
    import papermill as pm

    path = resolve_chapter(chapter)
    parameters = dict(parameters or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or path.stem
    final, failed = out_dir / f"{name}.ipynb", out_dir / f"{name}.failed.ipynb"
    nb = jupytext.read(path)
    # papermill writes as it goes; the result gets its real name only once it is complete.
    running = out_dir / f".{name}.running.ipynb"
    start = time.monotonic()
    with _kernel_env(name):  # a sweep member's lines carry its name
        try:
            pm.execute_notebook(
                nb, str(running), parameters=parameters, kernel_name="python3", language="python",
                cwd=str(path.parent), progress_bar=progress,
            )
        except pm.PapermillExecutionError as exc:
            os.replace(running, failed)
            raise RunFailed(
                f"{path.name}: cell {exc.exec_count} raised {exc.ename}: {exc.evalue} "
                f"(executed notebook: {failed})", failed,
            ) from None
    done = nbformat.read(str(running), as_version=4)
    done.metadata["zsg"] = {
        "complete": True, "chapter": path.stem, "parameters": parameters,
        "seconds": round(time.monotonic() - start, 1),
    }
    with atomic_path(final) as tmp:
        nbformat.write(done, str(tmp))
    running.unlink(missing_ok=True)
    failed.unlink(missing_ok=True)
    return final


def planned_work(specs: Sequence[Mapping[str, Any]],
                 profiles: Mapping[str, Profile] | None = None) -> tuple[int | None, int | None]:
    """The runs and training steps the chapters of ``specs`` ask for, summed over members
    (:func:`zsg_lib.study.chapter_runs.chapters_work`; a run two members share counts twice:
    the ETA errs long); ``(None, None)`` when a profile cannot be read here (the lines go on).
    ``profiles``: the members' profiles by name, as the sweep loaded them (the others are
    loaded here)."""
    from ..study.chapter_runs import chapters_work

    runs = steps = 0
    try:
        for spec in specs:
            profile = (profiles or {}).get(spec.get("name")) or load_profile(
                spec.get("profile") or default_profile(), spec.get("overrides") or {},
                check_paths=False)
            r, n = chapters_work(profile, [Path(str(spec["chapter"])).stem])
            runs, steps = runs + r, steps + n
    except Exception:  # noqa: BLE001 - the counts only feed the ETA
        return None, None
    return (runs, steps) if runs else (None, None)


@contextlib.contextmanager
def reporting(specs: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike,
              log: Callable[[str], None] = print,
              profiles: Mapping[str, Profile] | None = None) -> Iterator[None]:
    """The kernels of the members run inside the block report each run as ``zsg book``
    does (one line as it starts and ends, the batch's ETA) through ``log``; the events go
    through a file in ``out_dir``, so workers in other processes report too."""
    board = events.Board(*planned_work(specs, profiles), scope="batch")
    with events.reporting(Path(out_dir) / f".progress-{os.getpid()}.jsonl", board, log):
        yield


def run_signature(spec: Mapping[str, Any]) -> str:
    """What makes two runs the same: chapter, profile and overrides (order-free)."""
    return json.dumps({"chapter": Path(str(spec.get("chapter"))).stem,
                       "profile": spec.get("profile"), "overrides": spec.get("overrides") or {}},
                      sort_keys=True, default=str)


def is_complete(notebook: Path, spec: Mapping[str, Any]) -> bool:
    """True if ``notebook`` is a finished run of exactly ``spec``."""
    if not notebook.is_file():
        return False
    try:
        meta = json.loads(notebook.read_text(encoding="utf-8"))["metadata"].get("zsg", {})
    except (ValueError, KeyError):
        return False
    params = meta.get("parameters", {})
    done = {"chapter": meta.get("chapter"), "profile": params.get("profile"),
            "overrides": params.get("overrides")}
    return bool(meta.get("complete")) and run_signature(done) == run_signature(spec)


def read_status(out_dir: str | os.PathLike) -> dict[str, dict]:
    """The records of a sweep folder, by run name (empty if none yet)."""
    path = Path(out_dir) / STATUS_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8")).get("runs", {})


@contextlib.contextmanager
def _status_lock(out_dir: Path) -> Iterator[None]:
    """Hold the sweep folder's lock: one read-modify-write of ``status.json`` at a time."""
    with (out_dir / STATUS_LOCK).open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def update_status(out_dir: str | os.PathLike, name: str, record: Mapping[str, Any],
                  merge: bool = False) -> dict:
    """Set run ``name``'s entry of ``status.json`` (``merge``: over its old one); return it.

    Read, change and atomic rewrite happen under a lock, so processes updating one folder at
    once keep each other's entries (and other sweeps' entries in the folder).
    """
    out_dir = Path(out_dir)
    with _status_lock(out_dir):
        records = read_status(out_dir)
        records[name] = {**(records.get(name, {}) if merge else {}), **record}
        atomic_write_text(out_dir / STATUS_FILE,
                          json.dumps({"runs": records}, indent=1, default=str))
    return records[name]


def _base_record(spec: Mapping[str, Any], out_dir: Path) -> dict[str, Any]:
    return {"name": spec["name"], "chapter": spec["chapter"], "profile": spec.get("profile"),
            "overrides": json.dumps(spec.get("overrides") or {}, sort_keys=True),
            "notebook": str(out_dir / f"{spec['name']}.ipynb"), "error": ""}


def run_member(spec: Mapping[str, Any], chapter: str | os.PathLike, out_dir: str | os.PathLike,
               device: str | None = None, progress: bool = False) -> dict:
    """Run one sweep member where this is called (a worker) and record it; return the record.

    A member already complete is not run again (``skipped``), even if it was handed out twice.
    ``device``: the GPU it sees (``CUDA_VISIBLE_DEVICES``); ``None`` leaves the variable alone.
    """
    out_dir = Path(out_dir)
    name, rec = spec["name"], _base_record(spec, out_dir)
    if is_complete(out_dir / f"{name}.ipynb", spec):
        return update_status(out_dir, name, {**rec, "status": "skipped",
                                             "error": "complete from an earlier run"}, merge=True)
    where = {"device": device, "host": os.uname().nodename, "pid": os.getpid()}
    update_status(out_dir, name, {**rec, **where, "status": "running", "started": _now()})
    start = time.monotonic()
    params = {"overrides": dict(spec.get("overrides") or {})}
    if spec.get("profile"):
        params["profile"] = spec["profile"]
    try:
        with pinned(device):
            run_chapter(chapter, params, out_dir, name=name, progress=progress)
        status, error = "ok", ""
    except RunFailed as exc:
        status, error, rec["notebook"] = "failed", str(exc), str(exc.notebook)
    except Exception as exc:  # noqa: BLE001 - any other failure is recorded, the sweep goes on
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    return update_status(out_dir, name, {**rec, **where, "status": status, "error": error,
                                         "seconds": round(time.monotonic() - start, 1),
                                         "finished": _now()})


def _dispatch(executor: Any, members: list[tuple[int, Mapping[str, Any], Path]], out_dir: Path,
              slots: list[str | None], progress: bool, on_done: Callable[[int, dict], None],
              on_start: Callable[[int, Mapping[str, Any], str | None], None] | None = None,
              poll_s: float = 0.5) -> None:
    """Keep one member in flight per slot; ``on_start(i, spec, device)`` as each is handed
    out, ``on_done(i, record)`` as each ends.

    Works with any executor whose ``submit`` returns something with ``done()`` and
    ``result()`` (concurrent.futures, submitit). A slot's device goes with the member.
    """
    queue = list(members)
    free = list(range(len(slots)))
    flying: dict[Any, tuple[int, Mapping[str, Any], int]] = {}
    while queue or flying:
        while queue and free:
            i, spec, path = queue.pop(0)
            slot = free.pop(0)
            if on_start is not None:
                on_start(i, spec, slots[slot])
            job = executor.submit(run_member, dict(spec), str(path), str(out_dir),
                                  slots[slot], progress)
            flying[job] = (i, spec, slot)
        finished = [j for j in flying if j.done()]
        if not finished:
            time.sleep(poll_s)
            continue
        for job in finished:
            i, spec, slot = flying.pop(job)
            free.append(slot)
            try:
                record = job.result()
            except Exception as exc:  # noqa: BLE001 - the worker itself died: record it here
                record = update_status(out_dir, spec["name"], {
                    **_base_record(spec, out_dir), "status": "failed",
                    "error": f"worker failed: {type(exc).__name__}: {exc}",
                    "finished": _now()}, merge=True)
            on_done(i, record)


def run_specs(
    specs: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    chapters: Path | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
    jobs: int = 1,
    devices: Sequence[str] | None = None,
    scheduler: str = "local",
    profiles: Mapping[str, Profile] | None = None,
) -> pd.DataFrame:
    """Run each spec ``{name, chapter, profile, overrides}``; return one status row per spec.
    ``profiles``: the specs' loaded profiles by name, where the caller has them (a sweep).

    Every chapter, ``jobs``, ``devices`` and ``scheduler`` are checked before the first run,
    so bad input fails before any work. ``jobs=1`` with the local scheduler runs members here,
    one after another; otherwise ``jobs`` at a time (see :func:`plan_slots`,
    :func:`make_executor`).
    """
    out_dir = Path(out_dir)
    slots = plan_slots(jobs, devices)
    paths = {s["name"]: resolve_chapter(s["chapter"], chapters) for s in specs}
    inline = jobs == 1 and scheduler == "local"
    executor = None if inline else make_executor(scheduler, out_dir, jobs)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(specs)

    def done(i: int, rec: Mapping[str, Any]) -> None:
        error = f" - {rec['error']}" if rec.get("error") else ""
        log(f"[{i}/{n}] {rec['name']}: {rec['status']} ({rec.get('seconds') or 0:.0f} s)"
            f"{'' if rec.get('device') is None else ' on device ' + str(rec['device'])}{error}")

    todo = []
    for i, spec in enumerate(specs, 1):
        notebook = out_dir / f"{spec['name']}.ipynb"
        if is_complete(notebook, spec):  # resumed: never run a finished member again
            update_status(out_dir, spec["name"], {**_base_record(spec, out_dir),
                          "status": "skipped", "error": "complete from an earlier run"},
                          merge=True)
            log(f"[{i}/{n}] {spec['name']}: skipped (complete)")
        else:
            todo.append((i, spec, paths[spec["name"]]))
    def started(i: int, spec: Mapping[str, Any], device: str | None) -> None:
        log(f"[{i}/{n}] {spec['name']}: running ({spec['chapter']}"
            f"{'' if device is None else ', device ' + str(device)})")

    with reporting([spec for _, spec, _ in todo], out_dir, log, profiles):
        if inline:
            for i, spec, path in todo:
                started(i, spec, None)
                # one member at a time is pinned only when asked (--devices): it may use all
                done(i, run_member(spec, path, out_dir, slots[0] if devices else None,
                                   progress))
        elif todo:
            pinned = [s for s in slots if s is not None]
            log(f"running {len(todo)} of {n} in {len(slots)} workers ({scheduler}"
                + (f", devices {','.join(pinned)})" if pinned else ")"))
            try:
                _dispatch(executor, todo, out_dir, slots, progress, done, started)
            finally:
                if hasattr(executor, "shutdown"):
                    executor.shutdown()
    records = read_status(out_dir)
    rows = [records[s["name"]] for s in specs]
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def run_sweep(
    sweep_path: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
    jobs: int = 1,
    devices: Sequence[str] | None = None,
    scheduler: str = "local",
) -> pd.DataFrame:
    """Expand a sweep file (:func:`zsg_lib.profiles.sweeps.sweep_members`) and run it, resuming.

    ``out_dir`` defaults to ``runs/sweeps/<sweep file stem>``; ``jobs``, ``devices``,
    ``scheduler``: see :func:`run_specs`.
    """
    plan_slots(jobs, devices)  # bad flags fail before the sweep is even expanded
    members = sweep_members(sweep_path)  # validates every run before any work
    specs = [spec for spec, _ in members]
    return run_specs(specs, Path(out_dir) if out_dir else default_sweep_dir(sweep_path),
                     log=log, jobs=jobs, devices=devices, scheduler=scheduler,
                     profiles={spec["name"]: prof for spec, prof in members})


def default_sweep_dir(sweep_path: str | os.PathLike) -> Path:
    """``runs/sweeps/<sweep file stem>``.

    >>> default_sweep_dir("params/sweeps/similarity-seeds.yaml").as_posix()
    'runs/sweeps/similarity-seeds'
    """
    return Path("runs") / "sweeps" / Path(sweep_path).stem


def summary_line(table: pd.DataFrame) -> str:
    """``3 ok, 1 failed, 2 skipped``.

    >>> summary_line(pd.DataFrame({"status": ["ok", "failed", "ok"]}))
    '2 ok, 1 failed, 0 skipped'
    """
    counts = table["status"].value_counts()
    return ", ".join(f"{int(counts.get(s, 0))} {s}" for s in ("ok", "failed", "skipped"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
