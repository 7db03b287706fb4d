"""Training: one config, the ordered loop, per-instance scoring, run records.

===================  =========================================================================
module               job
===================  =========================================================================
``config``           :class:`TrainConfig`, the one training configuration (no torch)
``models``           load the base model and tokenizer (embedded GGUF, HF id/path, tiny)
``prompts``          encode a conversation: prompt tokens masked, response labelled
``batching``         padded batches, packed rows (a shared prefix held once), length-sorted ids
``forward``          response-token cross-entropy, attention and precision of every pass
``inference``        how scoring and generation run the model; LoRA adapters folded for them
``scoring``          batched per-instance response loss
``generation``       greedy generation from each prompt
``rewards``          reward-model scores of generated responses
``metrics``          Exact-Match, ROUGE-1/L of a generation
``gradients``        LESS-style gradient features: per-instance LoRA gradients, CountSketched
``gradient_cache``   :func:`features_for`: a run's gradient features, cached on disk
``loop``             the ordered optimizer loop of one run, checkpoints, resume
``run``              :func:`train_run`: check inputs, identify the run, reuse or train it
``records``          the run-record format: written and read here only (:func:`load_runs`)
``distributed``      several processes: each its slice of every global batch
===================  =========================================================================

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
    "lr_factor": "loop", "step_chunks": "loop",
    "train_run": "run",
    "features_for": "gradient_cache", "gradient_features": "gradients",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
