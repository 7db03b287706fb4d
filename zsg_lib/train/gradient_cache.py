"""Gradient features of a run's adapter state, computed as the run computes and cached on
disk: :func:`features_for`, the run-level entry point to
:func:`~zsg_lib.train.gradients.gradient_features`.

It loads and wraps the model like a run (``cfg.resolved_precision``, ``cfg.bf16_autocast``),
loads a run's trainable state, encodes a table with the run's settings, and caches the
features under ``cache_dir("gradients")``, keyed by everything they depend on (the model's
identity, the adapter's bytes, every instance's tokens, ``dim``, ``seed``, the LoRA scaling,
the precision, the encoding settings), so a different state is never served a stale file.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from ..atomic import atomic_path
from ..errors import TrainError
from ..paths import cache_dir
from .config import ConfigError, TrainConfig
from .gradients import _check_dim, _check_ids, gradient_features, lora_weights
from .hardware import resolve
from .loop import _load_trainable, _unwrap, _wrap
from .models import load_model, model_identity
from .prompts import EncodedExample, encode_many

CACHE_VERSION = 2  # bump when what a cached feature means changes (2: bf16 LoRA in fp32)


def _tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes: any changed weight changes it."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _tokens_digest(ids: Sequence[str], encoded: Mapping[str, EncodedExample]) -> str:
    h = hashlib.sha256()
    for i in ids:
        ex = encoded[i]
        h.update(json.dumps([i, ex.n_source, ex.input_ids]).encode())
    return h.hexdigest()


def _checked_state(model: Any, state: Mapping[str, torch.Tensor]) -> None:
    if "trainable" in state and isinstance(state["trainable"], Mapping):
        raise TrainError("state: got a whole final state; pass its 'trainable' entry")
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    unknown = sorted(set(state) - set(params))
    missing = sorted(set(params) - set(state))
    if unknown or missing:
        which = f"unknown {unknown[0]!r}" if unknown else f"missing {missing[0]!r}"
        raise TrainError(f"state: its names do not match this config's LoRA adapters ({which}; "
                         f"{len(unknown)} unknown, {len(missing)} missing): is it from a run "
                         "of this model, lora_r and target_modules?")
    bad = [n for n in state if tuple(state[n].shape) != tuple(params[n].shape)]
    if bad:
        raise TrainError(f"state: {bad[0]!r} has shape {tuple(state[bad[0]].shape)}, the "
                         f"adapter's is {tuple(params[bad[0]].shape)}")


def features_for(cfg: TrainConfig, table: pa.Table,
                 state: Mapping[str, torch.Tensor] | None = None, dim: int = 32768,
                 seed: int = 0, cache: bool = True, progress: bool = False,
                 batch_size: int = 16,
                 on_compute: Callable[[int], None] | None = None) -> np.ndarray:
    """Gradient features of a table's instances at a run's adapter state (cached on disk).

    ``cfg``: the run's config (model, precision, LoRA settings, template, lengths, system
    prompt, autocast); ``table``: columns ``id`` and ``messages`` (rows in that order);
    ``state``: trainable weights, e.g. ``states.load_final_state(run_dir)["trainable"]`` of a
    warm-up, or ``None`` for the fresh adapter of ``cfg.seed``. Features are computed under the
    run's precision (``cfg.resolved_precision``, ``cfg.bf16_autocast``). The cache file under
    ``cache_dir("gradients")`` is keyed by the model's identity, the adapter's tensors (bytes),
    the token ids of every instance, ``dim``, ``seed``, the LoRA scaling, the precision and
    the encoding settings, so a different state is never served a stale file.
    ``on_compute(n)`` is called just before ``n`` instances are computed (not on a cache hit).

    >>> import pyarrow as pa
    >>> cfg = TrainConfig(model="tiny", lora_r=2, bf16_autocast=False)
    >>> conv = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    >>> t = pa.table({"id": ["a"], "messages": [conv]})
    >>> features_for(cfg, t, dim=16, cache=False).shape
    (1, 16)
    >>> features_for(TrainConfig(model="tiny", method="full"), t, dim=16)
    Traceback (most recent call last):
    ...
    zsg_lib.train.config.ConfigError: TrainConfig.method: gradient features need LoRA adapters (method 'lora' or 'qlora'), got 'full'
    """
    _check_dim(dim)
    cfg = resolve(cfg)  # the run's bf16 "auto", decided as train_run decides it
    if cfg.method == "full":
        raise ConfigError("method", "gradient features need LoRA adapters (method 'lora' or "
                                    "'qlora'), got 'full'")
    for col in ("id", "messages"):
        if col not in table.column_names:
            raise TrainError(f"table: missing column {col!r} (see zsg_lib.schema)")
    ids = [str(i) for i in table.column("id").to_pylist()]
    base, tokenizer = load_model(cfg.model, cfg.resolved_precision, cfg.device)
    model = _wrap(base, cfg)
    try:
        if state is not None:
            _checked_state(model, state)
            _load_trainable(model, state)
        layers = lora_weights(model)
        _check_dim(dim, sum(layer.weight.numel() for layer in layers.values()))
        encoded, _ = encode_many(tokenizer, ids, table.column("messages").to_pylist(),
                                 max_source_len=cfg.max_source_len,
                                 max_target_len=cfg.max_target_len, template=cfg.template,
                                 system_prompt=cfg.system_prompt)
        _check_ids(encoded, ids)
        path = None
        if cache:
            path = cache_dir("gradients") / f"{_cache_key(cfg, model, ids, encoded, dim, seed)}.npy"
            hit = _read_cached(path, (len(ids), dim))
            if hit is not None:
                return hit
        if on_compute is not None:
            on_compute(len(ids))
        feats = gradient_features(model, tokenizer, encoded, ids, dim, seed, batch_size,
                                  cfg.bf16_autocast, progress)
        if path is not None:
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.save(f, feats)
        return feats
    finally:
        _unwrap(model, cfg)


def _cache_key(cfg: TrainConfig, model: Any, ids: Sequence[str],
               encoded: Mapping[str, EncodedExample], dim: int, seed: int) -> str:
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    device = next(model.parameters()).device.type
    parts = {
        "version": CACHE_VERSION, "torch": torch.__version__, "device": device,
        "model": model_identity(cfg.model), "precision": cfg.resolved_precision,
        "bf16_autocast": cfg.bf16_autocast, "method": cfg.method, "lora_r": cfg.lora_r,
        "lora_alpha": cfg.resolved_alpha,  # the adapter's scaling is not in its tensors
        "encoding": [cfg.template, cfg.system_prompt, cfg.max_source_len, cfg.max_target_len],
        "state": _tensor_digest(trainable), "tokens": _tokens_digest(ids, encoded),
        "dim": dim, "seed": seed,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _read_cached(path: Any, shape: tuple[int, int]) -> np.ndarray | None:
    if not path.exists():
        return None
    try:
        feats = np.load(path)
    except (OSError, ValueError) as exc:
        warnings.warn(f"recomputing unreadable gradient-feature cache {path}: {exc}",
                      stacklevel=3)
        return None
    return feats if feats.shape == shape and feats.dtype == np.float32 else None
