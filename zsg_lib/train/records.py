"""Run records: the one module that writes and reads them (ids, layout, tables; the states it
names are :mod:`zsg_lib.train.states`).

A run lives in ``<runs_root>/<run_id>/`` (the resume and branch states, ``checkpoint.pt`` and
``final-state.pt``, are written and read by :mod:`zsg_lib.train.states`)::

    params.json       config, data identity (under a query split, ``data.query``: the query
                      instance ids), model identity, library versions, run id
    order.parquet     the arrangement: position, id, task
    log.parquet       one row per optimizer step: instance ids, train loss, lr, tokens, seconds
    scores.parquet    one row per scored step x test instance: loss (mean over response
                      tokens), first_loss, end_loss, n_tokens, task, metrics
    picks.parquet     online runs only (an order that follows the model): one row per fed
                      instance, why it was picked (the query instance it serves, that
                      instance's loss ratio at the scoring point, the cosine distance)
    adapters/step-N/  saved adapters (every ``save_every`` steps)
    checkpoint.pt     the state to resume from (trainable params, optimizer, scheduler, RNG,
                      step, records so far); removed once the run is DONE. States hold
                      tensors and plain data only and are read back with PyTorch's
                      ``weights_only`` loader: reading a run folder never runs its code
    final-state.pt    the state at the last step, kept when other runs branch from this one
                      (``keep_final_state``: a shared warm-up)
    DONE              written last: a run is finished iff this file exists
    .lock             the file lock of the process training the run (:func:`run_lock`)

The run id hashes the config, the model, the test set and the ordered training instances (ids
and content), so the same experiment asked for twice, from any chapter, is one run; an online
run, whose order is known only while it trains, hashes what decides its picks instead (its
source's name, parameters, pool, embeddings and query ids). Its ``order.parquet`` is written
when it finishes, from the steps' log. Every file
is written atomically (:mod:`zsg_lib.atomic`); a write that fails (disk full) and a record
that cannot be read back (truncated) are a :class:`~zsg_lib.errors.TrainError` naming the run
folder and what to do.

Writing is :func:`write_params`, :func:`write_table` (``order``), :func:`write_log`,
:func:`write_scores`, :func:`mark_done`; reading is :func:`read_record` (one run) and
:func:`load_runs` (any set of runs, as tidy tables).

>>> run_id_of({"a": 1}, {"test": "x"}) == run_id_of({"a": 1}, {"test": "x"})
True
>>> len(run_id_of({"a": 1}, {"test": "x"}))
16
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_path, atomic_write_text, clean_stale_temps, temp_prefix
from ..data.split import EVALUATION, QUERY, TEST_PART
from ..errors import TrainError
from .config import TrainConfig

FORMAT_VERSION = 3  # 2: scores carry first_loss and end_loss; 3: bf16 LoRA sums in fp32
PARAMS, ORDER, LOG, SCORES, CHECKPOINT, FINAL, DONE = (
    "params.json", "order.parquet", "log.parquet", "scores.parquet", "checkpoint.pt",
    "final-state.pt", "DONE",
)
PICKS = "picks.parquet"  # online runs only
LOCK = ".lock"  # held by the process training the run (see run_lock)
RETRAIN = "delete the folder to retrain the run"


# --------------------------------------------------------------------------- faults


@contextlib.contextmanager
def writing(run_dir: Path, name: str) -> Iterator[None]:
    """An OSError while writing ``name`` (disk full, permissions) as a TrainError naming the
    run folder; the atomic write leaves the previous file, or none, under the real name."""
    try:
        yield
    except OSError as exc:
        raise TrainError(f"{run_dir}: could not write {name} ({exc}); free space or fix the "
                         "folder, then run again (an unfinished run resumes from its last "
                         f"checkpoint), or {RETRAIN}") from exc


def unreadable(run_dir: Path, name: str, exc: BaseException) -> TrainError:
    return TrainError(f"{run_dir}: {name} is unreadable ({type(exc).__name__}: {exc}); the "
                      f"record is damaged (truncated?): {RETRAIN}")


def _read_json(run_dir: Path, name: str) -> Any:
    try:
        return json.loads((run_dir / name).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise unreadable(run_dir, name, exc) from exc


def _read_parquet(run_dir: Path, name: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(run_dir / name)
    except (OSError, pa.ArrowException) as exc:
        raise unreadable(run_dir, name, exc) from exc


def check_tables(run_dir: Path) -> None:
    """Raise :class:`TrainError` when a finished run's log or score table is damaged (reads
    the Parquet footers only, so a truncated file is caught before any analysis)."""
    for name in (LOG, SCORES):
        try:
            pq.read_metadata(run_dir / name)
        except (OSError, pa.ArrowException) as exc:
            raise unreadable(run_dir, name, exc) from exc


@contextlib.contextmanager
def run_lock(run_dir: Path, timeout: float = -1) -> Iterator[None]:
    """Hold the run folder's lock: a second process starting the same run waits here until
    the first is done, then finds it finished. A file lock (``filelock``, which the Hugging
    Face libraries already depend on) is released by the OS if its holder is killed."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(run_dir / LOCK))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=timeout)
    except Timeout as exc:  # only with a timeout >= 0
        raise TrainError(f"{run_dir}: another process is training this run") from exc
    except OSError as exc:  # a runs root that cannot be written: nothing was started
        raise TrainError(
            f"{run_dir}: cannot create the run folder or its lock ({exc}); make "
            f"{run_dir.parent} writable, or point the runs root (runs_root=, or $ZSG_HOME "
            "for the book) at a folder you can write") from None
    try:
        yield
    finally:
        lock.release()


def clean_run_folder(run_dir: Path) -> list[Path]:
    """Remove what killed writers left in the run folder (``.tmp-*`` temp files and adapter
    folders; see :func:`zsg_lib.atomic.clean_stale_temps`)."""
    removed = clean_stale_temps(run_dir)
    if (run_dir / "adapters").is_dir():
        removed += clean_stale_temps(run_dir / "adapters")
    return removed


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def run_id_of(config: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """16 hex digits identifying (format version, config, data identity)."""
    return _digest({"format": FORMAT_VERSION, "config": config, "data": data})[:16]


def table_digest(ids: Sequence[str], messages: Sequence[Any], tasks: Sequence[Any]) -> str:
    """Hash of instances in the given order (ids, tasks and conversation text)."""
    h = hashlib.sha256()
    for i, m, t in zip(ids, messages, tasks, strict=True):
        h.update(json.dumps([i, t, m], sort_keys=True).encode())
        h.update(b"\x00")
    return h.hexdigest()


def with_query(data_id: Mapping[str, Any], query_ids: Sequence[str] | None,
               test_ids: Iterable[str]) -> dict[str, Any]:
    """The data identity with the query instances of a query split (issue #29): their ids,
    sorted, under ``"query"``; unchanged without a split (``None``), so run ids stay what
    they were. TrainError when a query id is not a test instance, or none is given.

    >>> with_query({"n_test": 3}, ["b", "a"], ["a", "b", "c"])
    {'n_test': 3, 'query': ['a', 'b']}
    >>> with_query({"n_test": 3}, None, ["a", "b", "c"])
    {'n_test': 3}
    """
    out = dict(data_id)
    if query_ids is None:
        return out
    query, known = sorted(map(str, query_ids)), set(test_ids)
    if not query:
        raise TrainError("query_ids: empty; a query split needs at least one query instance "
                         "(None: no split)")
    if len(set(query)) != len(query):
        raise TrainError("query_ids: an id appears twice")
    missing = [i for i in query if i not in known]
    if missing:
        raise TrainError(f"query_ids: {len(missing)} id(s) not in the test set, e.g. "
                         f"{missing[:5]}")
    out["query"] = query
    return out


def label_test_parts(scores: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    """``scores`` with :data:`~zsg_lib.data.split.TEST_PART`: each row's test instance a
    ``"query"`` or an ``"evaluation"`` instance by the query ids the run's order read
    (``data.query`` in params.json); every row ``"query"`` without them. A run whose order
    read no test instance (a shuffle, a warm-up) records none, and is shared by studies with
    different splits: a study labels its scores by its own split
    (:func:`zsg_lib.study.experiment.instance_parts`).

    >>> s = pd.DataFrame({"id": ["a", "b"]})
    >>> label_test_parts(s, {"data": {"query": ["a"]}})["test_part"].tolist()
    ['query', 'evaluation']
    >>> label_test_parts(s, {"data": {}})["test_part"].tolist()
    ['query', 'query']
    """
    query = params.get("data", {}).get("query")
    part = (QUERY if query is None else
            scores["id"].isin(query).map({True: QUERY, False: EVALUATION}))
    return scores.assign(**{TEST_PART: part})


def library_versions() -> dict[str, str]:
    """Versions of the libraries a run's numbers depend on."""
    out = {"python": platform.python_version()}
    for pkg in ("zsg", "torch", "transformers", "peft", "accelerate", "tokenizers", "rouge-score"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def check_compatible(run_dir: Path, run_id: str) -> dict[str, Any] | None:
    """Read an existing run's params; raise if another format or another run wrote them."""
    path = run_dir / PARAMS
    if not path.exists():
        return None
    params = _read_json(run_dir, PARAMS)
    version = params.get("format_version")
    if version != FORMAT_VERSION:
        raise TrainError(
            f"{run_dir}: written by run-record format {version!r}, this zsg writes "
            f"{FORMAT_VERSION}; delete the folder or use another runs_root"
        )
    if params.get("run_id") != run_id:
        raise TrainError(f"{path}: belongs to run {params.get('run_id')!r}, not {run_id!r}")
    return params


def write_params(run_dir: Path, params: Mapping[str, Any]) -> None:
    """params.json, pretty-printed."""
    with writing(run_dir, PARAMS):
        atomic_write_text(run_dir / PARAMS,
                          json.dumps(params, indent=2, sort_keys=True, default=str))


def write_table(path: Path, rows: Sequence[Mapping[str, Any]] | pa.Table,
                schema: pa.Schema | None = None) -> None:
    """A Parquet file from rows (or a table), atomically."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows), schema=schema)
    with writing(path.parent, path.name), atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def save_adapter(run_dir: Path, model: Any, step: int) -> Path:
    """``adapters/step-N`` via ``save_pretrained``, written to a temp folder then renamed."""
    final = run_dir / "adapters" / f"step-{step}"
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with writing(run_dir, f"adapters/{final.name}"):
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=temp_prefix(final)))
        model.save_pretrained(tmp)
        os.replace(tmp, final)
    return final


def mark_done(run_dir: Path, summary: Mapping[str, Any]) -> None:
    """Write DONE (last) and drop the resume checkpoint, which a finished run never needs."""
    with writing(run_dir, DONE):
        atomic_write_text(run_dir / DONE, json.dumps(dict(summary), indent=2, default=str))
    (run_dir / CHECKPOINT).unlink(missing_ok=True)


def is_done(run_dir: Path) -> bool:
    """True when the run in ``run_dir`` finished."""
    return (run_dir / DONE).exists()


# --------------------------------------------------------------------------- the tables

LOG_SCHEMA = pa.schema([
    ("step", pa.int64()), ("instance_ids", pa.list_(pa.string())),
    ("n_instances", pa.int64()), ("train_loss", pa.float64()), ("lr", pa.float64()),
    ("tokens", pa.int64()), ("response_tokens", pa.int64()), ("seconds", pa.float64()),
])
SCORES_SCHEMA = pa.schema([
    ("step", pa.int64()), ("id", pa.string()), ("task", pa.string()),
    ("loss", pa.float64()), ("n_tokens", pa.int64()),
    ("first_loss", pa.float64()), ("end_loss", pa.float64()),
    ("prediction", pa.string()), ("exact_match", pa.float64()),
    ("rouge1", pa.float64()), ("rougeL", pa.float64()), ("reward", pa.float64()),
    # scored only for step-resolved scoring (TrainConfig.dense_scoring): comparisons between
    # arms leave these rows out, so every arm is averaged over the same steps
    ("step_resolved", pa.bool_()),
])


PICKS_SCHEMA = pa.schema([
    ("step", pa.int64()), ("position", pa.int64()), ("id", pa.string()), ("task", pa.string()),
    # the scoring point whose scores decided the stretch, and the query instance served
    ("scored_at", pa.int64()), ("query_id", pa.string()), ("query_task", pa.string()),
    ("query_rank", pa.int64()),  # 0: the query instance that lagged most at scored_at
    ("query_loss", pa.float64()), ("query_branch_loss", pa.float64()),
    ("loss_ratio", pa.float64()),  # query_loss / query_branch_loss
    ("distance", pa.float64()),  # cosine distance 1 - cos between the pick and the query
])


def without_step_resolved(scores: pd.DataFrame) -> pd.DataFrame:
    """``scores`` less the rows scored only for step-resolved scoring (records written before
    that column existed have none), so arms are compared over the same steps.

    >>> s = pd.DataFrame({"step": [8, 9, 16], "step_resolved": [False, True, False]})
    >>> without_step_resolved(s)["step"].tolist()
    [8, 16]
    """
    if "step_resolved" not in scores:
        return scores
    return scores[scores["step_resolved"].ne(True)]


def write_log(run_dir: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """log.parquet: one row per optimizer step (:data:`LOG_SCHEMA`)."""
    write_table(run_dir / LOG, rows, LOG_SCHEMA)


def write_scores(run_dir: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """scores.parquet: one row per scored step x test instance (:data:`SCORES_SCHEMA`)."""
    write_table(run_dir / SCORES, rows, SCORES_SCHEMA)


def write_picks(run_dir: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """picks.parquet: why an online run fed each instance (:data:`PICKS_SCHEMA`)."""
    write_table(run_dir / PICKS, [{f.name: r.get(f.name) for f in PICKS_SCHEMA} for r in rows],
                PICKS_SCHEMA)


def read_picks(run_dir: Path) -> pd.DataFrame:
    """An online run's picks (:data:`PICKS_SCHEMA`); an empty table for a fixed order."""
    if not (run_dir / PICKS).exists():
        return PICKS_SCHEMA.empty_table().to_pandas()
    return _read_parquet(run_dir, PICKS)


@dataclass
class RunRecord:
    """A finished run: its folder, id and parameters; its tables are read on first use."""

    path: Path
    run_id: str
    params: dict[str, Any]
    reused: bool = False  # True when an earlier finished run was returned
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> TrainConfig:
        """The training configuration the run was made with."""
        return TrainConfig.from_dict(self.params["config"])

    @functools.cached_property
    def log(self) -> pd.DataFrame:
        """One row per optimizer step."""
        return _read_parquet(self.path, LOG)

    @functools.cached_property
    def scores(self) -> pd.DataFrame:
        """One row per scored step x test instance, with its ``test_part``
        (:func:`label_test_parts`)."""
        return label_test_parts(_read_parquet(self.path, SCORES), self.params)

    @functools.cached_property
    def picks(self) -> pd.DataFrame:
        """An online run's picks with their reasons (empty for a fixed order)."""
        return read_picks(self.path)


def read_record(run_dir: Path, reused: bool = False) -> RunRecord:
    """The finished run in ``run_dir``; TrainError naming the folder when its record is
    damaged (unreadable params or DONE, truncated tables)."""
    params = _read_json(run_dir, PARAMS)
    summary = _read_json(run_dir, DONE)
    check_tables(run_dir)
    return RunRecord(path=run_dir, run_id=params["run_id"], params=params, reused=reused,
                     summary=summary)


# --------------------------------------------------------------------------- many runs


@dataclass
class RunTables:
    """Tidy tables over a set of runs (see :func:`load_runs`)."""

    params: pd.DataFrame
    log: pd.DataFrame
    scores: pd.DataFrame
    #: Finished runs left out because their record is damaged: (folder, reason).
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def loss_curves(self, by: Iterable[str] = ()) -> pd.DataFrame:
        """Mean test loss per run x step (x ``by`` columns of ``scores``, e.g. ``task``)."""
        keys = ["run_id", "step", *by]
        return self.scores.groupby(keys, as_index=False)["loss"].mean()


def _run_dirs(root_or_paths: str | Path | Iterable[str | Path]) -> list[Path]:
    items = [root_or_paths] if isinstance(root_or_paths, (str, Path)) else list(root_or_paths)
    dirs: list[Path] = []
    for item in items:
        path = Path(item)
        if not path.exists():
            raise TrainError(f"no run record at {path}")
        if (path / PARAMS).exists():
            dirs.append(path)
        else:
            dirs.extend(sorted(p.parent for p in path.glob(f"*/{PARAMS}")))
    return list(dict.fromkeys(dirs))


def _flatten(prefix: str, value: object, out: dict[str, object]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value)  # lists stay one cell (hashable, groupable)
    else:
        out[prefix] = value


def load_runs(root_or_paths: str | Path | Iterable[str | Path],
              include_unfinished: bool = False) -> RunTables:
    """Tidy tables of every (finished) run found under a runs root, in one run folder, or in
    a list of either:

    * ``params``: one row per run; the config flattened (``config.learning_rate``, ...), the
      data identity (``data.n_test``, ...), ``run_id``, ``name``, ``path``;
    * ``log``: one row per run x optimizer step (``instance_ids`` a list per row);
    * ``scores``: one row per run x scored step x test instance (loss, n_tokens, task, ...,
      and ``test_part``: ``"query"`` or ``"evaluation"`` by the run's query split,
      :func:`label_test_parts`).

    Every table carries ``run_id``, so joins with ``params`` pick up any parameter. Unfinished
    runs (no ``DONE``) are skipped unless ``include_unfinished`` (their tables are then empty).
    A run whose record is damaged (unreadable params, truncated tables) does not fail the
    whole root: it is left out, listed in ``skipped`` and named in a warning.

    >>> import tempfile
    >>> load_runs(tempfile.mkdtemp()).params.empty
    True
    """
    param_rows, logs, scores = [], [], []
    skipped: list[tuple[Path, str]] = []
    for d in _run_dirs(root_or_paths):
        done = is_done(d)
        if not done and not include_unfinished:
            continue
        try:
            row, tables = _read_run(d, done)
        except _Damaged as exc:
            skipped.append((d, str(exc.__cause__)))
            continue
        param_rows.append(row)
        for frame, bucket in zip(tables, (logs, scores)):
            bucket.append(frame)
    if skipped:
        listed = "; ".join(f"{d}: {why}" for d, why in skipped)
        warnings.warn(f"load_runs skipped {len(skipped)} damaged run(s) (RunTables.skipped): "
                      f"{listed}", stacklevel=2)
    return RunTables(
        params=pd.DataFrame(param_rows),
        log=pd.concat(logs, ignore_index=True) if logs else pd.DataFrame(),
        scores=pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(),
        skipped=skipped,
    )


class _Damaged(Exception):
    """A run whose record cannot be read (the TrainError is its ``__cause__``)."""


def _read_run(d: Path, done: bool) -> tuple[dict[str, object], list[pd.DataFrame]]:
    """One run's params row and, when finished, its log and score tables. A damaged record
    raises :class:`_Damaged`; a record of another format version is a TrainError (the user
    must act: it is not damage)."""
    try:
        params = _read_json(d, PARAMS)
    except TrainError as exc:
        raise _Damaged() from exc
    if params.get("format_version") != FORMAT_VERSION:
        raise TrainError(f"{d}: run-record format {params.get('format_version')!r}, "
                         f"this zsg reads {FORMAT_VERSION}")
    row: dict[str, object] = {}
    for key in ("run_id", "name", "max_steps", "steps_per_pass"):
        row[key] = params.get(key)
    _flatten("config", params.get("config", {}), row)
    _flatten("data", params.get("data", {}), row)
    _flatten("versions", params.get("versions", {}), row)
    row["done"], row["path"] = done, str(d)
    tables = []
    if done:
        try:
            tables = [_read_parquet(d, name) for name in (LOG, SCORES)]
        except TrainError as exc:
            raise _Damaged() from exc
        tables[1] = label_test_parts(tables[1], params)
        for frame in tables:
            frame.insert(0, "run_id", params["run_id"])
    return row, tables
