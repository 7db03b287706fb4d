"""Where sweep members run: worker slots pinned to GPUs, and the executor that runs them
(a local process pool, or submitit: its local executor, or SLURM).

>>> plan_slots(2, visible=[])
[None, None]
>>> plan_slots(3, visible=["0", "1"])
['0', '1', '0']
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import ParamsError

SCHEDULERS = ("local", "submitit-local", "slurm")


@contextlib.contextmanager
def pinned(device: str | None) -> Iterator[None]:
    """``CUDA_VISIBLE_DEVICES=device`` for this block (and the kernel it starts)."""
    if device is None:
        yield
        return
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved


def visible_devices() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (empty: none).

    An explicit ``CUDA_VISIBLE_DEVICES`` is the list; otherwise torch counts the devices.
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


def plan_slots(jobs: int, devices: Sequence[str] | None = None,
               visible: Sequence[str] | None = None) -> list[str | None]:
    """One entry per worker: the device it is pinned to, or ``None`` (no GPU: not pinned).

    ``devices`` (``--devices``) are used as given, one worker each; without them the workers
    share the ``visible`` GPUs round-robin (default :func:`visible_devices`).

    >>> plan_slots(2, visible=["0", "1", "2"]), plan_slots(3, visible=["4", "5"])
    (['0', '1'], ['4', '5', '4'])
    >>> plan_slots(2, visible=[]), plan_slots(1, devices=["3"])
    ([None, None], ['3'])
    >>> plan_slots(3, devices=["0", "1"])
    Traceback (most recent call last):
    ...
    zsg_lib.errors.ParamsError: --jobs 3 with --devices 0,1: more jobs than devices (one job per device)
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ParamsError(f"--jobs {jobs}: needs a whole number of workers, 1 or more")
    if devices is not None:
        devices = [str(d).strip() for d in devices if str(d).strip()]
        if not devices:
            raise ParamsError("--devices: no device given (e.g. --devices 0,1)")
        if len(set(devices)) != len(devices):
            raise ParamsError(f"--devices {','.join(devices)}: a device is named twice")
        if jobs > len(devices):
            raise ParamsError(f"--jobs {jobs} with --devices {','.join(devices)}: more jobs "
                              "than devices (one job per device)")
        return list(devices[:jobs])
    visible = list(visible_devices() if visible is None else visible)
    if not visible:
        return [None] * jobs
    return [visible[i % len(visible)] for i in range(jobs)]


def make_executor(scheduler: str, out_dir: Path, jobs: int,
                  gpus_per_member: int = 1, timeout_min: int = 24 * 60) -> Any:
    """The executor that runs members: a process pool here, or submitit's.

    Anything missing (an unknown name, submitit not installed, no ``sbatch``) is a
    :class:`ParamsError` naming ``--scheduler``, raised before any member starts.
    """
    if scheduler not in SCHEDULERS:
        raise ParamsError(f"--scheduler {scheduler!r}: use one of {', '.join(SCHEDULERS)}")
    if scheduler == "local":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: a fresh interpreter per worker, not a fork of a parent holding threads
        return ProcessPoolExecutor(max_workers=jobs,
                                   mp_context=multiprocessing.get_context("spawn"))
    # Left alone, importing submitit runs logging.config.dictConfig, which closes every
    # logging handler this process has (notebook, pytest); its warnings still reach stderr.
    os.environ.setdefault("SUBMITIT_LOG_LEVEL", "NOCONFIG")
    try:
        import submitit
    except ImportError:
        raise ParamsError(f"--scheduler {scheduler}: needs submitit, which is not installed "
                          "(pip install 'zsg[cluster]')") from None
    folder = out_dir / ".submitit"
    if scheduler == "submitit-local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=timeout_min)
        return executor
    if shutil.which("sbatch") is None:
        raise ParamsError("--scheduler slurm: no Slurm here (sbatch is not on PATH)")
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(timeout_min=timeout_min, gpus_per_node=gpus_per_member,
                               tasks_per_node=1, nodes=1, name=f"zsg-{out_dir.name}")
    return executor
