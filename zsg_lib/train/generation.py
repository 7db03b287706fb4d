"""Greedy generation from each instance's prompt (:func:`generate_greedy`), for the
Exact-Match and ROUGE metrics and the reward model: left-padded, length-sorted batches run
as every inference pass runs (:func:`~zsg_lib.train.inference.inference_pass`: the run's
precision, adapters folded)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .batching import collate, length_batches
from .inference import inference_pass
from .prompts import EncodedExample


def generate_greedy(model: Any, tokenizer: Any, encoded: Mapping[str, EncodedExample],
                    ids: Sequence[str], max_new_tokens: int, batch_size: int = 16,
                    bf16_autocast: bool = False,
                    device: str | torch.device = "cpu") -> dict[str, str]:
    """Greedy continuations of each instance's prompt (left-padded batches), decoded text.

    >>> from zsg_lib.train.models import tiny_model
    >>> from zsg_lib.train.prompts import encode_instance
    >>> model, tok = tiny_model()
    >>> conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    >>> out = generate_greedy(model, tok, {"a": encode_instance(tok, conv)}, ["a"], 3)
    >>> isinstance(out["a"], str)
    True
    """
    lengths = {i: encoded[i].n_source for i in ids}
    out: dict[str, str] = {}
    longest = max(lengths.values(), default=0) + max_new_tokens
    with inference_pass(model, bf16_autocast, device, longest):
        for chunk in length_batches(ids, lengths, batch_size):
            batch = collate([encoded[i] for i in chunk], tokenizer.pad_token_id,
                            left=True, source_only=True, device=device)
            gen = model.generate(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                temperature=None, top_p=None, top_k=None,
            )
            new = gen[:, batch.input_ids.shape[1] :]
            for i, seq in zip(chunk, new.tolist()):
                out[i] = tokenizer.decode(seq, skip_special_tokens=True).strip()
    return out
