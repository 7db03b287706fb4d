"""The forward pass the training loop, the scoring passes and gradient features share: the
cross-entropy of each response token, and the attention and precision it runs under.

* **Response-only logits** (:func:`response_token_ce`): the decoder runs over the whole
  sequence, but the LM head (a 49k-vocabulary projection for SmolLM2, most of a small model's
  cost) is applied only at the positions whose next token is a response token. Training and
  scoring both take their loss from here, so train and test losses are the same quantity.
* **Attention**: a packed row with shared prefixes passes its own 4D mask
  (:func:`shares_prefixes` says whether the model takes one); short sequences on CPU run
  eager attention (:func:`fast_attention`).
* **Precision**: bf16 autocast where asked (:func:`autocast_context`), with each LoRA layer's
  sum kept in fp32 (:func:`lora_under_autocast`).

>>> from zsg_lib.train.batching import collate
>>> from zsg_lib.train.models import tiny_model
>>> from zsg_lib.train.prompts import encode_instance
>>> model, tok = tiny_model()
>>> conv = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
>>> sums, counts = response_token_losses(model, collate([encode_instance(tok, conv)], 0))
>>> counts.tolist(), bool(sums[0] > 0)
([2], True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from .batching import Batch
from .prompts import IGNORE_INDEX


def causal_lm_of(model: Any) -> Any:
    """The ``*ForCausalLM`` inside a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _response_only_ok(lm: Any) -> bool:
    """Response-only logits are exact unless the model post-processes its logits."""
    cfg = getattr(lm, "config", None)
    special = any(getattr(cfg, k, None) for k in ("final_logit_softcapping", "logit_scale"))
    return not special and lm.get_output_embeddings() is not None and hasattr(lm, "get_decoder")


def shares_prefixes(model: Any) -> bool:
    """Whether :func:`response_token_ce` can take a packed row with shared prefixes for this
    model: its attention takes a custom 4D mask (eager or SDPA)."""
    lm = causal_lm_of(model)
    impl = getattr(getattr(lm, "config", None), "_attn_implementation", None)
    return impl in ("eager", "sdpa") and _response_only_ok(lm)


def _attention_bias(lm: Any, visible: torch.Tensor) -> torch.Tensor:
    """``visible`` as the 4D mask the model's attention takes: boolean for SDPA, additive
    (0 or the float minimum) for eager attention."""
    if lm.config._attn_implementation == "sdpa":
        return visible[None, None]
    bias = torch.zeros(visible.shape, dtype=torch.float32, device=visible.device)
    return bias.masked_fill(~visible, torch.finfo(torch.float32).min)[None, None]


def response_token_ce(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of every response token of the batch (float32, row-major order) and the
    row each belongs to. The LM head runs at response positions only; equivalent to the
    model's own shifted loss."""
    lm = causal_lm_of(model)
    # packed: no mask, positions with resets (transformers then keeps attention per example);
    # with shared prefixes, the row's own attention mask
    inputs = ({"attention_mask": batch.attention_mask} if batch.position_ids is None
              else {"position_ids": batch.position_ids})
    if batch.visible is not None:
        inputs["attention_mask"] = _attention_bias(lm, batch.visible)
    if _response_only_ok(lm):
        hidden = lm.get_decoder()(input_ids=batch.input_ids, use_cache=False,
                                  **inputs).last_hidden_state
        return _head_ce(lm, hidden, batch.labels)
    # softcapped models (logits post-processed): full logits, still exact
    labels = batch.labels[:, 1:]
    mask = labels != IGNORE_INDEX
    logits = lm(input_ids=batch.input_ids, use_cache=False, **inputs).logits[:, :-1][mask]
    return (F.cross_entropy(logits.float(), labels[mask], reduction="none"),
            mask.nonzero(as_tuple=True)[0])


def _head_ce(lm: Any, hidden: torch.Tensor,
             labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The LM head at the positions whose next token is a response token only: the
    cross-entropy of each such token (float32, row-major order) and the row it belongs to."""
    labels = labels[:, 1:]
    keep = labels != IGNORE_INDEX
    logits = lm.get_output_embeddings()(hidden[:, :-1][keep])
    return (F.cross_entropy(logits.float(), labels[keep], reduction="none"),
            keep.nonzero(as_tuple=True)[0])


def response_token_losses(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy and token count over response tokens, per example (float32)."""
    ce, rows = response_token_ce(model, batch)
    n = batch.input_ids.shape[0]
    sums = torch.zeros(n, dtype=torch.float32, device=ce.device).index_add(0, rows, ce)
    return sums, torch.bincount(rows, minlength=n)


@contextlib.contextmanager
def fast_attention(model: Any, device: str | torch.device, longest: int) -> Iterator[None]:
    """Eager attention on CPU while sequences are short (<= 256 tokens), restored after.

    SDPA's CPU kernels have a fixed cost per call that dominates on short sequences (measured
    ~15% of a SmolLM2 LoRA step on ~60-token instances); eager attention is exact as well.
    """
    lm = causal_lm_of(model)
    before = getattr(getattr(lm, "config", None), "_attn_implementation", None)
    switch = torch.device(device).type == "cpu" and longest <= 256 and before == "sdpa"
    if switch:
        lm.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            lm.set_attn_implementation(before)


@contextlib.contextmanager
def lora_under_autocast(model: Any, enabled: bool,
                        device: str | torch.device) -> Iterator[None]:
    """How the LoRA layers run under bf16 autocast (a no-op without it).

    - Each base projection's bf16 output is widened to fp32 before peft adds the adapter's
      term, so the sum, and the residual stream after it, stay fp32. In bf16 the sum would
      round the term away: early in training it is ~1e-3 of the output, under half a bf16
      step of a value that is itself a bf16 number (measured on cpu-demo's shapes: 8 eager
      bf16 steps ended at train loss 1.72 against fp32's 1.57; widened, at 1.58).
    - Autocast, not peft, casts the layers' inputs (peft's cast to the fp32 adapter dtype is
      undone by autocast at the next matmul: with no dropout the products are bit-identical,
      measured ~10% of a CPU LoRA step saved).

    >>> import torch
    >>> from peft import LoraConfig, get_peft_model
    >>> from zsg_lib.train.models import tiny_model
    >>> model = get_peft_model(tiny_model()[0], LoraConfig(r=2, target_modules=["q_proj"]))
    >>> with lora_under_autocast(model, True, "cpu"), torch.autocast("cpu", torch.bfloat16):
    ...     model.base_model.model.model.layers[0].self_attn.q_proj(torch.ones(1, 32)).dtype
    torch.float32
    """
    from peft.helpers import disable_input_dtype_casting
    from peft.tuners.lora.layer import LoraLayer

    active = _autocast_applies(enabled, device)
    # Nested uses (a training run's scoring passes) add nothing: a compiled layer would
    # recompile for every change to its hooks.
    bases = [layer.get_base_layer() for layer in (model.modules() if active else ())
             if isinstance(layer, LoraLayer)]
    hooks = [base.register_forward_hook(_widened) for base in bases
             if _widened not in base._forward_hooks.values()]
    try:
        with disable_input_dtype_casting(model, active=active):
            yield
    finally:
        for hook in hooks:
            hook.remove()


def _widened(_module: Any, _args: Any, output: torch.Tensor) -> torch.Tensor:
    return output.float()


def _autocast_applies(enabled: bool, device: str | torch.device) -> bool:
    return enabled and torch.device(device).type in ("cpu", "cuda")


def autocast_context(enabled: bool, device: str | torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU (AMX) or CUDA when ``enabled``; a no-op otherwise."""
    if not _autocast_applies(enabled, device):
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
