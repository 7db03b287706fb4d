"""4-bit base weights (QLoRA): where bitsandbytes can hold them, how they are set up, and the
one test for "is this a 4-bit layer".

Whether a device can run 4-bit is asked of the installed bitsandbytes, not of
``torch.cuda.is_available()``: since 0.46 bitsandbytes quantizes and multiplies NF4 on x86
CPUs too (C++ kernels from 0.49, the version ``zsg[qlora]`` asks for). :func:`check_4bit`
quantizes, dequantizes and multiplies a small matrix on the device once per process; a
missing or older bitsandbytes, or a device or type it cannot run, is a
:class:`~zsg_lib.errors.TrainError` that says what to install or change.

The weights are NF4 with double quantization (the QLoRA paper's setting,
:func:`quantization_config`). The 4-bit products compute in fp32: under a run's bf16 autocast
they run in bf16 like every other layer's (autocast casts the dequantized weight), without
autocast they stay exact. The layers left unquantized (embeddings, norms, the LM head) are
loaded in fp32, which is what peft's k-bit preparation casts them to anyway.

Stages that treat layers specially ask :func:`is_4bit_layer`: folding LoRA into the base
weight for scoring skips 4-bit layers (there is no fp32 weight to fold into), and compiled
layers are not used for 4-bit runs (:func:`zsg_lib.train.compiled.wanted`).

>>> import torch
>>> is_4bit_layer(torch.nn.Linear(2, 2))
False
>>> quantization_config().bnb_4bit_quant_type, quantization_config().bnb_4bit_use_double_quant
('nf4', True)
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

import torch

from ..errors import TrainError

#: The bitsandbytes that quantizes 4-bit on CPUs with compiled kernels (and on CUDA).
MIN_BITSANDBYTES = "0.49"
#: The extra of this package that installs it.
EXTRA = "qlora"
QUANT_TYPE = "nf4"
INSTALL = f"pip install 'zsg[{EXTRA}]'"


def bitsandbytes_version() -> str | None:
    """The installed bitsandbytes' version, or ``None``."""
    try:
        return metadata.version("bitsandbytes")
    except metadata.PackageNotFoundError:
        return None


def check_4bit(device: str | torch.device, quant_type: str = QUANT_TYPE) -> None:
    """Raise :class:`TrainError` unless the installed bitsandbytes runs ``quant_type`` 4-bit
    weights on ``device`` (see the module docstring).

    >>> check_4bit("cpu")  # zsg[qlora] installs a bitsandbytes that does
    """
    found = bitsandbytes_version()
    if found is None:
        raise TrainError(f"precision '4bit' needs bitsandbytes >= {MIN_BITSANDBYTES}, which is "
                         f"not installed: {INSTALL}")
    from packaging.version import Version

    if Version(found) < Version(MIN_BITSANDBYTES):
        raise TrainError(f"precision '4bit': bitsandbytes {found} is older than "
                         f"{MIN_BITSANDBYTES}, the first to quantize 4-bit weights on CPUs as "
                         f"well as GPUs: pip install -U 'zsg[{EXTRA}]'")
    failure = _probe(str(torch.device(device)), quant_type, found)
    if failure is not None:
        raise TrainError(f"precision '4bit': bitsandbytes {found} cannot run {quant_type} "
                         f"weights on device {str(device)!r} ({failure}); run on a device it "
                         "supports (its docs list them), upgrade bitsandbytes, or use "
                         "precision 'fp32' or 'bf16' with method 'lora'")


@functools.lru_cache(maxsize=8)
def _probe(device: str, quant_type: str, version: str) -> str | None:
    """``None`` when a small matrix quantizes, dequantizes and multiplies on ``device``; else
    what failed (``version`` keys the memo: an upgrade in a live kernel asks again)."""
    try:
        import bitsandbytes as bnb
        import bitsandbytes.functional as bf

        weight = torch.linspace(-1.0, 1.0, 4 * 64, device=device).reshape(4, 64)
        packed, state = bf.quantize_4bit(weight, quant_type=quant_type, compress_statistics=True)
        back = bf.dequantize_4bit(packed, state)
        product = bnb.matmul_4bit(torch.ones(1, 64, device=device), packed.t(), state)
        # a 4-bit grid's step is at most ~0.3 of the block's largest value
        if not (back - weight).abs().max() < 0.3 or product.shape != (1, 4):
            return "its round trip does not return the matrix"
    except Exception as exc:  # noqa: BLE001 - any failure means: not supported here
        return f"{type(exc).__name__}: {exc}"
    return None


def quantization_config() -> Any:
    """transformers' ``BitsAndBytesConfig`` for the base weights: NF4, double quantization,
    fp32 products (see the module docstring)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=QUANT_TYPE, bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )


def is_4bit_layer(module: Any) -> bool:
    """Whether ``module`` (or the base layer under a peft adapter) holds 4-bit weights."""
    base = module.get_base_layer() if hasattr(module, "get_base_layer") else module
    # by name: asking needs no bitsandbytes import
    return type(getattr(base, "weight", None)).__name__ == "Params4bit"


def is_4bit_model(model: Any) -> bool:
    """Whether any layer of ``model`` holds 4-bit weights."""
    return any(is_4bit_layer(m) for m in model.modules())


def one_layout(model: Any) -> Any:
    """``model`` with its 4-bit weights kept in bitsandbytes' one layout.

    On a CPU with AVX512-BF16, bitsandbytes repacks a layer's weight into another layout
    the first time it runs without gradients (a scoring pass) and then multiplies it with an
    inference-only kernel: the training steps after it would see other products, and no
    gradient through the layer. Runs here score and train the same model in turns, so the
    repacking is switched off.
    """
    for module in model.modules():
        if is_4bit_layer(module) and hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    return model


def describe(model: Any, precision: str) -> dict[str, Any]:
    """What a run record says about its base weights: ``precision``, and for 4-bit weights
    the quantization (type, double quantization, block size, compute dtype), how many layers
    hold them and the bitsandbytes that ran them.

    >>> from zsg_lib.train.models import tiny_model
    >>> describe(tiny_model()[0], "fp32")
    {'weights': 'fp32'}
    """
    out: dict[str, Any] = {"weights": precision}
    layers = [m for m in model.modules() if is_4bit_layer(m) and not hasattr(m, "base_layer")]
    if precision != "4bit" or not layers:
        return out
    state = layers[0].weight.quant_state
    unquantized = {str(p.dtype).removeprefix("torch.") for p in model.parameters()
                   if type(p).__name__ != "Params4bit"}
    return {**out, "quant_type": state.quant_type, "double_quant": bool(state.nested),
            "blocksize": int(state.blocksize),
            "compute_dtype": str(layers[0].compute_dtype).removeprefix("torch."),
            "layers_4bit": len(layers), "unquantized_dtypes": sorted(unquantized),
            "bitsandbytes": bitsandbytes_version()}
