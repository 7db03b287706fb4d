"""How an inference pass (scoring, generation) runs the model, and the one place LoRA
adapters are folded into their base weights for it.

* :func:`inference_pass`: eval mode (restored after), no autograd, the run's precision
  (:func:`~zsg_lib.train.forward.autocast_context`,
  :func:`~zsg_lib.train.forward.lora_under_autocast`), eager attention for short sequences
  (:func:`~zsg_lib.train.forward.fast_attention`) and the adapters folded.
* **Adapters folded in**: LoRA's side path (two rank-r products and an add in every adapted
  layer, measured ~25% of the linear layers' time in a CPU scoring pass) is folded into a
  temporary copy of each fp32 base weight for the pass (:func:`merged_lora`); the base
  weights are put back untouched. :func:`foldable` decides which layers fold: only where the
  folded weight computes what the side path does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from .forward import autocast_context, fast_attention, lora_under_autocast
from .quantized import is_4bit_layer


def foldable(layer: Any) -> list[str]:
    """The active adapters of a peft LoRA ``Linear`` that can be folded into its weight:
    plain LoRA (no DoRA or other variant, no bias) on an fp32 base weight, outside autocast
    (a bf16 weight, or autocast's bf16 copy of the folded one, would round the small update
    away). A 4-bit base layer has no fp32 weight to fold into: its adapters run unfolded."""
    if is_4bit_layer(layer):
        return []
    try:
        from peft.tuners.lora.layer import Linear as LoraLinear
    except ImportError:  # pragma: no cover - peft is a dependency
        return []
    if not isinstance(layer, LoraLinear) or layer.merged or layer.disable_adapters:
        return []
    weight = layer.get_base_layer().weight
    if weight.dtype != torch.float32 or torch.is_autocast_enabled(weight.device.type):
        return []
    names = [a for a in layer.active_adapters if a in layer.lora_A]
    if any(a in layer.lora_variant or layer.lora_bias.get(a) for a in names):
        return []
    return names


@contextlib.contextmanager
def merged_lora(model: Any) -> Iterator[int]:
    """Inside the block, each foldable LoRA layer computes ``x @ (W + s B A)^T`` in one
    product instead of ``x @ W^T + s (x @ A^T) @ B^T``; yields how many layers were folded.

    For inference only (the folded weight carries no gradient to the adapters). Each base
    weight is swapped for a new tensor and the original put back on leaving, even on error,
    so the shared base model is bit for bit what it was (peft's own merge/unmerge would
    subtract the update again and drift by rounding).

    >>> from zsg_lib.train.models import tiny_model
    >>> with merged_lora(tiny_model()[0]) as n:  # no adapters: nothing to fold
    ...     n
    0
    """
    folded: list[tuple[Any, torch.Tensor, list[str]]] = []
    try:
        with torch.no_grad():
            for layer in model.modules():
                names = foldable(layer)
                if not names:
                    continue
                base = layer.get_base_layer()
                original = base.weight.data
                weight = original.clone()
                for name in names:
                    weight += layer.get_delta_weight(name)
                folded.append((layer, original, layer.merged_adapters))
                base.weight.data = weight
                layer.merged_adapters = [*layer.merged_adapters, *names]  # forward: base only
        yield len(folded)
    finally:
        for layer, original, merged in folded:
            layer.get_base_layer().weight.data = original
            layer.merged_adapters = merged


@contextlib.contextmanager
def inference_pass(model: Any, bf16_autocast: bool, device: str | torch.device,
                   longest: int) -> Iterator[int]:
    """The context every inference pass runs in (see the module docstring); ``longest``: the
    longest sequence the pass will run (it picks the attention); yields how many layers were
    folded.

    >>> from zsg_lib.train.models import tiny_model
    >>> model = tiny_model()[0].train()
    >>> with inference_pass(model, False, "cpu", 8) as n:
    ...     model.training, torch.is_inference_mode_enabled(), n
    (False, True, 0)
    >>> model.training
    True
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast_context(bf16_autocast, device), \
                lora_under_autocast(model, bf16_autocast, device), \
                fast_attention(model, device, longest), merged_lora(model) as n:
            yield n
    finally:
        model.train(was_training)
