"""Decoder layers compiled for a run's training steps and scoring passes (``torch.compile``).

PyTorch's *regional compilation*: each decoder layer's call is compiled, not the whole model;
the layers share one compiled graph, so compiling costs one layer's trace and kernels (a
cold start ~45 s on a 2-core CPU, a few seconds once Inductor's on-disk cache holds the
kernels; a process compiles once, later runs reuse it). Compiled, the layer's elementwise
work (norms, rotary embedding, SiLU, the LoRA side path's scale and add) runs as fused
kernels; the matrix products are the same library calls. Measured on a 2-core AVX2 CPU in
fp32: training steps 1.09-1.13x faster on the cpu-demo shapes (``bench/bench_train.py
--compile both``), scoring passes ~1.08x; chapter 3 on cpu-demo (12 runs in one kernel)
632 s against 673 s eager, its losses within 2e-5 of the eager records. In bf16 (an
AVX512-BF16 CPU, same bench, three runs on a noisy day) compiled steps ran 0.98-1.57x the
eager ones; both sum the LoRA term in fp32 (:func:`~zsg_lib.train.forward.lora_under_autocast`)
and their train losses differ by up to 1.8e-2 after 12 steps: bf16 rounds each differently.

Whether a run compiles is a property of where it executes, not of the run (it is not in the
run id: the records agree with an eager run's up to rounding). ``ZSG_COMPILE`` decides it:
``auto`` (the default) compiles on a CPU with a C++ compiler (Inductor's backend) for LoRA
and full fine-tuning in fp32/bf16; ``1`` compiles wherever asked, except on 4-bit weights;
``0`` never does. Under
``auto`` a compiler that fails leaves the layers eager (PyTorch warns); under ``1`` the error
stops the run. Dropout draws from PyTorch's own generator (``fallback_random``), so compiled
and eager runs, and a resumed run, draw the same masks. Greedy generation runs eager
(:func:`eager`): a key/value cache that grows by one token per call is no shape to compile
for.

>>> import os
>>> os.environ["ZSG_COMPILE"] = "0"
>>> from zsg_lib.train.config import TrainConfig
>>> wanted(TrainConfig(), "cpu")
False
>>> del os.environ["ZSG_COMPILE"]
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import Iterator
from typing import Any

import torch

from ..errors import TrainError
from .config import TrainConfig
from .forward import causal_lm_of

ENV = "ZSG_COMPILE"
CHOICES = ("auto", "0", "1")


def setting() -> str:
    """``ZSG_COMPILE``'s value (``auto`` when unset); :class:`TrainError` naming the variable
    for anything else than ``auto``, ``0`` or ``1``."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise TrainError(f"{ENV}={os.environ[ENV]!r}: expected one of {', '.join(CHOICES)}")
    return value


@functools.lru_cache(maxsize=1)
def cpp_compiler() -> str | None:
    """The C++ compiler Inductor would build CPU kernels with, if it is installed."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        return shutil.which(get_cpp_compiler())
    except Exception:  # noqa: BLE001 - any failure here means: no usable compiler
        return None


def wanted(cfg: TrainConfig, device: str | torch.device) -> bool:
    """Whether a run with ``cfg`` on ``device`` compiles its decoder layers (see the module
    docstring). Never on 4-bit weights: bitsandbytes' layers run eager (each product
    dequantizes its weight first, which compiling would not remove).

    >>> wanted(TrainConfig(method="qlora"), "cpu")
    False
    """
    value = setting()
    if cfg.method == "qlora" or cfg.precision == "4bit":  # resolved_precision "4bit"
        return False
    if value != "auto":
        return value == "1"
    return (torch.device(device).type == "cpu" and cfg.method in ("lora", "full")
            and cfg.resolved_precision in ("fp32", "bf16") and cpp_compiler() is not None)


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    """The decoder layers of a (peft-wrapped) causal LM: ``model.layers`` of its decoder."""
    lm = causal_lm_of(model)
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    return list(layers) if layers is not None else []


@contextlib.contextmanager
def compiled_layers(model: Any, enabled: bool) -> Iterator[bool]:
    """Compile ``model``'s decoder layers while the context is open (yields whether they were
    handed to ``torch.compile``; under ``auto`` a failing compiler still leaves them eager);
    the layers are eager again after it (the cached base model is shared by later runs and by
    the gradient features, which run eager)."""
    layers = decoder_layers(model) if enabled else []
    if not layers:
        yield False
        return
    import torch._dynamo.config as dynamo
    import torch._inductor.config as inductor

    # auto: a compiler that fails here (a broken toolchain) leaves the layers eager, with
    # PyTorch's warning; ZSG_COMPILE=1 lets the error stop the run.
    try:
        with (inductor.patch(fallback_random=True),
              dynamo.patch(suppress_errors=setting() == "auto")):
            for layer in layers:
                layer.compile(dynamic=True)
            yield True
    finally:
        for layer in layers:
            layer._compiled_call_impl = None


def eager() -> contextlib.AbstractContextManager:
    """Run compiled modules eagerly inside this context (greedy generation)."""
    return torch.compiler.set_stance("force_eager")
