"""Run records on disk: ids, layout, checkpoints.

A run lives in ``<runs_root>/<run_id>/``::

    params.json       config, data identity, model identity, library versions, run id
    order.parquet     the arrangement: position, id, task
    log.parquet       one row per optimizer step: instance ids, train loss, lr, tokens, seconds
    scores.parquet    one row per scored step x test instance: loss, n_tokens, task, metrics
    adapters/step-N/  saved adapters (every ``save_every`` steps)
    checkpoint.pt     the state to resume from (trainable params, optimizer, scheduler, RNG,
                      step, records so far); removed once the run is DONE
    DONE              written last: a run is finished iff this file exists

The run id hashes the config, the model, the test set and the ordered training instances (ids
and content), so the same experiment asked for twice, from any chapter, is one run. Every file
is written atomically (:mod:`zsg_lib.atomic`).

>>> run_id_of({"a": 1}, {"test": "x"}) == run_id_of({"a": 1}, {"test": "x"})
True
>>> len(run_id_of({"a": 1}, {"test": "x"}))
16
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .atomic import atomic_path, atomic_write_text
from .errors import TrainError

FORMAT_VERSION = 1
PARAMS, ORDER, LOG, SCORES, CHECKPOINT, DONE = (
    "params.json", "order.parquet", "log.parquet", "scores.parquet", "checkpoint.pt", "DONE",
)


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
    try:
        params = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TrainError(f"{path}: unreadable run record ({exc}); delete the folder") from exc
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
    atomic_write_text(run_dir / PARAMS, json.dumps(params, indent=2, sort_keys=True, default=str))


def write_table(path: Path, rows: Sequence[Mapping[str, Any]] | pa.Table,
                schema: pa.Schema | None = None) -> None:
    """A Parquet file from rows (or a table), atomically."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows), schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def save_checkpoint(run_dir: Path, state: Mapping[str, Any]) -> None:
    """The resume state, atomically (a kill mid-write leaves the previous one)."""
    with atomic_path(run_dir / CHECKPOINT) as tmp:
        torch.save(dict(state), tmp)


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The last saved resume state, or ``None``."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def save_adapter(run_dir: Path, model: Any, step: int) -> Path:
    """``adapters/step-N`` via ``save_pretrained``, written to a temp folder then renamed."""
    final = run_dir / "adapters" / f"step-{step}"
    if final.exists():
        return final
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    os.replace(tmp, final)
    return final


def mark_done(run_dir: Path, summary: Mapping[str, Any]) -> None:
    """Write DONE (last) and drop the resume checkpoint, which a finished run never needs."""
    atomic_write_text(run_dir / DONE, json.dumps(dict(summary), indent=2, default=str))
    (run_dir / CHECKPOINT).unlink(missing_ok=True)


def is_done(run_dir: Path) -> bool:
    """True when the run in ``run_dir`` finished."""
    return (run_dir / DONE).exists()
