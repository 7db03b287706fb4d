"""What the device computes fast: bf16 is native on CUDA GPUs and on CPUs with AVX512-BF16
or AMX; elsewhere (e.g. an AVX2-only CPU) PyTorch emulates bf16 matmuls, measured ~150x
slower than fp32 on a 2-core AVX2 EPYC. :func:`resolve` decides ``bf16_autocast="auto"``
from that, before a run is identified, so a run's id says which precision it trained in.

>>> from zsg_lib.train.config import TrainConfig
>>> resolve(TrainConfig(bf16_autocast=False, device="cpu")).bf16_autocast
False
"""

from __future__ import annotations

import functools
import warnings

import torch

from .config import TrainConfig


def default_device(device: str | None = None) -> str:
    """``device``, or (``None``) CUDA where available, else the CPU: the one rule for where a
    model runs when the config leaves it open.

    >>> default_device("cpu")
    'cpu'
    """
    if device is not None:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=8)
def native_bf16(device: str) -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware (not emulated).

    >>> isinstance(native_bf16("cpu"), bool)
    True
    """
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        cpu = torch.cpu
        return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                    or getattr(cpu, "_is_amx_tile_supported", lambda: False)())
    return False


def resolve(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``bf16_autocast="auto"`` decided for its device; warns (once per process
    and setting) where an explicit bf16 setting meets a device that only emulates bf16."""
    device = default_device(cfg.device)
    native = native_bf16(device)
    resolved = cfg.with_native_bf16(native)
    if not native and torch.device(device).type == "cpu":
        explicit = [f"{k}: {v}" for k, v in (("precision", cfg.precision),
                                             ("bf16_autocast", cfg.bf16_autocast))
                    if v in ("bf16", True)]
        if explicit:
            _warn_emulated(", ".join(explicit))
    return resolved


@functools.lru_cache(maxsize=None)
def _warn_emulated(settings: str) -> None:
    warnings.warn(f"{settings} on a CPU without native bf16 (no AVX512-BF16 or AMX): PyTorch "
                  "emulates bf16 matmuls here, about 100x slower than fp32; set "
                  "bf16_autocast: auto and precision: null to let zsg choose", stacklevel=3)
