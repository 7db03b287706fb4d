"""Per-instance losses on response tokens (:func:`score_examples`), done fast.

The loss the study tracks is the teacher-forced mean cross-entropy over the response tokens of
each test instance (PAPER.md §1). These make it cheap here:

* **Response-only logits**: the LM head runs only where the next token is a response token
  (:func:`~zsg_lib.train.forward.response_token_ce`, which training uses too, so train and
  test losses are the same quantity).
* **Length-sorted batches**: instances are batched by length
  (:func:`~zsg_lib.train.batching.length_batches`), so padding is small; rows come back in
  the caller's order.
* **Shared prefixes run once**: prompts that begin alike (SmolLM2's chat template adds a
  ~20-token system prompt to each; an NIv2 task's definition and examples open every instance
  of the task) are grouped (:func:`~zsg_lib.train.prefixes.scoring_groups`); a group is scored
  in packed rows (:func:`~zsg_lib.train.batching.group_rows`) that hold its prefix once and
  then each member's own tokens, each attending to the prefix and to itself: the training
  step's row (:func:`~zsg_lib.train.batching.pack` with ``share_prefixes``), so no padding
  and no key/value cache copied per member (niv2-sample: ~12% faster than a prefix pass with
  its cache copied into padded batches of suffixes).
* **Adapters folded in while scoring** (:func:`~zsg_lib.train.inference.merged_lora`): the
  LoRA side path folded into temporary copies of the base weights, put back untouched.

>>> from zsg_lib.train.models import tiny_model
>>> from zsg_lib.train.prompts import encode_instance
>>> model, tok = tiny_model()
>>> conv = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
>>> ex = encode_instance(tok, conv)
>>> rows = score_examples(model, {"a": ex}, ["a"], pad_id=tok.pad_token_id)
>>> rows[0]["id"], rows[0]["n_tokens"], rows[0]["loss"] > 0
('a', 2, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .batching import collate, group_rows, length_batches, packed_group_row, token_owners
from .forward import response_token_ce, shares_prefixes
from .inference import inference_pass
from .prefixes import PrefixGroup, scoring_groups
from .prompts import EncodedExample


def per_row_losses(ce: torch.Tensor, rows: torch.Tensor, n_rows: int) -> dict[str, list]:
    """Per row: summed cross-entropy, token count, and the loss of its first and of its last
    response token (``nan`` for a row without tokens).

    >>> out = per_row_losses(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0, 0, 2]), 3)
    >>> out["sum"], out["n"], out["first"][0], out["last"][0], out["last"][2]
    ([3.0, 0.0, 4.0], [2, 0, 1], 1.0, 2.0, 4.0)
    """
    counts = torch.bincount(rows, minlength=n_rows)
    sums = torch.zeros(n_rows, dtype=torch.float32, device=ce.device).index_add(0, rows, ce)
    first = torch.full((n_rows,), math.nan, dtype=torch.float32, device=ce.device)
    last = first.clone()
    if len(ce):
        ends = torch.cumsum(counts, 0) - 1  # row-major order: a row's tokens are contiguous
        has = counts > 0
        first[has] = ce[(ends - counts + 1)[has]]
        last[has] = ce[ends[has]]
    return {"sum": sums.tolist(), "n": counts.tolist(), "first": first.tolist(),
            "last": last.tolist()}


def _record(rows: dict[str, dict[str, Any]], encoded: Mapping[str, EncodedExample],
            chunk: Sequence[str], ce: torch.Tensor, row_of: torch.Tensor) -> None:
    """Write each instance's mean, first-token and end-token losses into ``rows``."""
    got = per_row_losses(ce, row_of, len(chunk))
    for k, i in enumerate(chunk):
        rows[i].update(loss=got["sum"][k] / got["n"][k], n_tokens=int(got["n"][k]),
                       first_loss=got["first"][k])
        if encoded[i].ends_with_eos:  # else truncation cut the end token off
            rows[i]["end_loss"] = got["last"][k]


def score_examples(model: Any, encoded: Mapping[str, EncodedExample], ids: Sequence[str],
                   pad_id: int, batch_size: int = 16, bf16_autocast: bool = False,
                   device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """Mean response-token cross-entropy of each instance, one row per id, in ``ids`` order.

    Beside the mean (``loss``, the paper's measure), each row holds the loss of the first
    response token (``first_loss``) and of the end-of-response token (``end_loss``; ``nan``
    when truncation cut it off), so a fall in loss can be split into format and content.
    Instances with no response tokens get ``loss = nan`` and ``n_tokens = 0`` (reported, never
    divided by zero). ``batch_size``: instances per padded batch of whole instances; a group
    that shares a prefix is scored in its own packed rows (:func:`group_rows`).
    """
    rows: dict[str, dict[str, Any]] = {
        i: {"id": i, "loss": math.nan, "n_tokens": 0, "first_loss": math.nan,
            "end_loss": math.nan} for i in ids
    }
    live = [i for i in ids if encoded[i].n_target > 0]
    lengths = {i: len(encoded[i].input_ids) for i in live}
    # Prompt prefixes shared by several instances (a system prompt; a task's definition and
    # examples) are held once in a packed row of the group, which needs a custom attention mask.
    groups = (scoring_groups(encoded, live) if shares_prefixes(model)
              else [PrefixGroup(0, live)])
    whole = [i for g in groups if not g.n_prefix for i in g.ids]
    packed = [(chunk, packed_group_row([encoded[i] for i in chunk], g.n_prefix, device))
              for g in groups if g.n_prefix for chunk in group_rows(g, encoded)]
    longest = max([lengths[i] for i in whole] + [b.input_ids.shape[1] for _, b in packed],
                  default=0)
    with inference_pass(model, bf16_autocast, device, longest):
        for chunk in length_batches(whole, lengths, batch_size):
            ce, row_of = response_token_ce(
                model, collate([encoded[i] for i in chunk], pad_id, device=device))
            _record(rows, encoded, chunk, ce, row_of)
        for chunk, batch in packed:
            ce, _ = response_token_ce(model, batch)
            _record(rows, encoded, chunk, ce, token_owners(batch, len(chunk)))
    return [rows[i] for i in ids]
