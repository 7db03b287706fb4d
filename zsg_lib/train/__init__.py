"""Training: one config, the ordered loop, per-instance scoring, run records.

Each module's job is listed once, in ``ARCHITECTURE.md`` at the repository root (*Training*).

The names below are imported on first use, so ``from zsg_lib.train.config import
TrainConfig`` (a profile, the book's glue) and reading run records do not import torch.

>>> from zsg_lib.train import TrainConfig
>>> TrainConfig(batch_size=2).instances_per_step
2
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "config", "ConfigError": "config",
    "RunRecord": "records", "RunTables": "records", "load_runs": "records",
    "lr_factor": "loop", "step_chunks": "batches", "FixedOrder": "batches",
    "train_run": "run", "run_probes": "probes",
    "features_for": "gradient_cache", "gradient_features": "gradients",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
