"""Read run records into tidy pandas tables, for any set of runs.

:func:`load_runs` takes a runs root (every finished run under it), one run folder, or a list
of either, and returns :class:`RunTables`:

* ``params``: one row per run; the config flattened (``config.learning_rate``, ...), the data
  identity (``data.n_test``, ...), ``run_id``, ``name``, ``path``;
* ``log``: one row per run x optimizer step (``instance_ids`` a list per row);
* ``scores``: one row per run x scored step x test instance (loss, n_tokens, task, metrics).

Every table carries ``run_id``, so joins with ``params`` pick up any parameter. Unfinished runs
(no ``DONE``) are skipped unless ``include_unfinished=True`` (their tables are then empty).

>>> import tempfile
>>> load_runs(tempfile.mkdtemp()).params.empty
True
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import runs
from .errors import TrainError


@dataclass
class RunTables:
    """Tidy tables over a set of runs (see the module docstring)."""

    params: pd.DataFrame
    log: pd.DataFrame
    scores: pd.DataFrame

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
        if (path / runs.PARAMS).exists():
            dirs.append(path)
        else:
            dirs.extend(sorted(p.parent for p in path.glob(f"*/{runs.PARAMS}")))
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
    """Load the records of every (finished) run found; see the module docstring."""
    param_rows, logs, scores = [], [], []
    for d in _run_dirs(root_or_paths):
        done = runs.is_done(d)
        if not done and not include_unfinished:
            continue
        params = json.loads((d / runs.PARAMS).read_text())
        if params.get("format_version") != runs.FORMAT_VERSION:
            raise TrainError(f"{d}: run-record format {params.get('format_version')!r}, "
                             f"this zsg reads {runs.FORMAT_VERSION}")
        row: dict[str, object] = {}
        for key in ("run_id", "name", "max_steps", "steps_per_pass"):
            row[key] = params.get(key)
        _flatten("config", params.get("config", {}), row)
        _flatten("data", params.get("data", {}), row)
        _flatten("versions", params.get("versions", {}), row)
        row["done"], row["path"] = done, str(d)
        param_rows.append(row)
        if done:
            for name, bucket in ((runs.LOG, logs), (runs.SCORES, scores)):
                frame = pd.read_parquet(d / name)
                frame.insert(0, "run_id", params["run_id"])
                bucket.append(frame)
    return RunTables(
        params=pd.DataFrame(param_rows),
        log=pd.concat(logs, ignore_index=True) if logs else pd.DataFrame(),
        scores=pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(),
    )
