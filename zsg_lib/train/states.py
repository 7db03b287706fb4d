"""Resume and branch states of a run: ``checkpoint.pt`` (resume) and ``final-state.pt`` (the
state other runs branch from), written atomically and read back as data only.

A state holds tensors and plain data (trainable parameters, optimizer, scheduler, RNG, step,
records so far). Reading uses PyTorch's ``weights_only`` unpickler, which builds tensors,
dicts, lists, tuples and plain scalars and refuses anything else: reading a run folder never
runs its code. Where the states live and the rest of a run's record:
:mod:`zsg_lib.train.records`.

>>> import tempfile
>>> load_checkpoint(Path(tempfile.mkdtemp())) is None
True
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from ..errors import TrainError
from .records import CHECKPOINT, FINAL, RETRAIN, unreadable, writing


def _save_state(run_dir: Path, name: str, state: Mapping[str, Any]) -> None:
    """``torch.save`` atomically (a kill mid-write leaves the previous file). Its writer
    reports a full disk or a file-size limit as a RuntimeError ("enforce fail …", "file write
    failed"): that is a write fault like any OSError, named with the run folder."""
    import torch  # lazy: reading records needs no torch

    with writing(run_dir, name), atomic_path(run_dir / name) as tmp:
        try:
            torch.save(dict(state), tmp)
        except RuntimeError as exc:
            raise OSError(f"the writer stopped: {exc}") from exc


def save_checkpoint(run_dir: Path, state: Mapping[str, Any]) -> None:
    """The resume state, atomically (a kill mid-write leaves the previous one)."""
    _save_state(run_dir, CHECKPOINT, state)


def _load_state(run_dir: Path, name: str) -> dict[str, Any]:
    """A saved state read as data only: PyTorch's ``weights_only`` unpickler builds tensors,
    dicts, lists, tuples and plain scalars and refuses anything else, so a crafted file runs
    no code. A refused or damaged file is a TrainError naming the run folder."""
    import pickle

    import torch

    try:
        with warnings.catch_warnings():  # a foreign file's pickle protocol, said below
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(run_dir / name, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = re.search(r"GLOBAL\s+([\w.]+)", str(exc))
        if refused is None:  # not a refused object: a damaged or foreign stream
            detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
            raise TrainError(
                f"{run_dir}: {name} is not a training state zsg can read "
                f"({detail.group(1).strip() if detail else 'not a PyTorch state file'}); it is "
                f"damaged or was not written by zsg, and none of it was run: {RETRAIN}"
            ) from None
        raise TrainError(
            f"{run_dir}: {name} asks to build {refused.group(1)}, not tensors and plain "
            "data, so zsg refused it without running any of it (a run folder is data; this "
            f"one was not written by zsg, or was altered): {RETRAIN}") from None
    except (OSError, EOFError, RuntimeError) as exc:
        raise unreadable(run_dir, name, exc) from exc
    if not isinstance(state, dict) or "step" not in state:
        raise TrainError(f"{run_dir}: {name} is not a zsg training state (no step): {RETRAIN}")
    return state


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The last saved resume state, or ``None``; TrainError naming the run folder when the
    file is damaged (a truncated ``checkpoint.pt`` is never half-resumed) or holds anything
    but tensors and plain data (see :func:`_load_state`)."""
    if not (run_dir / CHECKPOINT).exists():
        return None
    return _load_state(run_dir, CHECKPOINT)


def save_final_state(run_dir: Path, state: Mapping[str, Any]) -> None:
    """The state at the run's last step, atomically, for runs that branch from it."""
    _save_state(run_dir, FINAL, state)


def load_final_state(run_dir: Path) -> dict[str, Any]:
    """The final state a finished run kept, read as data only; TrainError naming the folder
    if it kept none or the file is damaged or holds anything but tensors and plain data."""
    if not (run_dir / FINAL).exists():
        raise TrainError(f"{run_dir}: the run kept no final state to branch from (train it "
                         "with keep_final_state=True)")
    return _load_state(run_dir, FINAL)
