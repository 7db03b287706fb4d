"""Per-instance losses on response tokens, and greedy generation, done fast.

The loss the study tracks is the teacher-forced mean cross-entropy over the response tokens of
each test instance (PAPER.md §1). These make it cheap here:

* **Response-only logits**: the decoder runs over the whole sequence, but the LM head (a
  49k-vocabulary projection for SmolLM2, most of a small model's cost) is applied only at the
  positions whose next token is a response token.
* **Length-sorted batches**: instances are batched by length, so padding is small; rows come
  back in the caller's order.
* **Shared prefixes run once**: prompts that begin alike (SmolLM2's chat template adds a
  ~20-token system prompt to each; an NIv2 task's definition and examples open every instance
  of the task) are grouped (:func:`~zsg_lib.train.prefixes.scoring_groups`); a group is scored
  in packed rows (:func:`group_rows`) that hold its prefix once and then each member's own
  tokens, each attending to the prefix and to itself: the training step's row
  (:func:`pack` with ``share_prefixes``), so no padding and no key/value cache copied per
  member (niv2-sample: ~12% faster than a prefix pass with its cache copied into padded
  batches of suffixes).
* **Adapters folded in while scoring**: LoRA's side path (two rank-r products and an add in
  every adapted layer, measured ~25% of the linear layers' time in a CPU scoring pass) is
  folded into a temporary copy of each fp32 base weight for the pass (:func:`merged_lora`);
  the base weights are put back untouched.

Training uses the same :func:`response_token_losses`, so train and test losses are the same
quantity.

>>> import torch
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

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .prefixes import PrefixGroup, held_once, prefix_groups, scoring_groups
from .prompts import IGNORE_INDEX, EncodedExample
from .quantized import is_4bit_layer


@dataclass
class Batch:
    """Padded tensors for a list of examples (right padding unless built for generation)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    # Packed batches (see pack): one row of concatenated examples whose positions restart at
    # each example; attention then stays inside each example (transformers' packed format).
    position_ids: torch.Tensor | None = None
    # A packed row with shared prefixes: which tokens each token may attend to (bool, row x
    # row), and each example's spans of the row (its group's prefix, then its own tokens).
    visible: torch.Tensor | None = None
    spans: list[list[tuple[int, int]]] | None = None

    @property
    def n_tokens(self) -> int:
        """Real (non-pad) tokens in the batch."""
        return int(self.attention_mask.sum())


def collate(examples: Sequence[EncodedExample], pad_id: int, left: bool = False,
            source_only: bool = False, device: str | torch.device = "cpu") -> Batch:
    """Pad examples to one length. ``source_only`` keeps prompts (for generation).

    >>> ex = EncodedExample([1, 2, 3], [-100, 2, 3], 1, 2)
    >>> b = collate([ex, EncodedExample([4], [-100], 1, 0)], pad_id=0)
    >>> b.input_ids.tolist(), b.labels.tolist()
    ([[1, 2, 3], [4, 0, 0]], [[-100, 2, 3], [-100, -100, -100]])
    """
    seqs = [ex.source_ids if source_only else ex.input_ids for ex in examples]
    labs = [[IGNORE_INDEX] * len(s) if source_only else ex.labels
            for s, ex in zip(seqs, examples)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
    for row, (s, lab) in enumerate(zip(seqs, labs)):
        span = slice(width - len(s), width) if left else slice(0, len(s))
        ids[row, span] = torch.tensor(s, dtype=torch.long)
        mask[row, span] = 1
        labels[row, span] = torch.tensor(lab, dtype=torch.long)
    return Batch(ids.to(device), mask.to(device), labels.to(device))


#: Longest packed row: attention over a row costs its length squared, so long examples are
#: padded as before (and the row stays within fast_attention's eager range).
PACK_MAX_TOKENS = 256


def pack(examples: Sequence[EncodedExample], device: str | torch.device = "cpu",
         max_tokens: int = PACK_MAX_TOKENS, share_prefixes: bool = False) -> Batch | None:
    """The examples as one padding-free row: tokens concatenated, positions restarting at
    each example, so each attends to itself only (transformers' packed-sequence format: no
    attention mask, ``position_ids`` with resets). ``None`` when there is only one example,
    the row would pass ``max_tokens``, or an example would be scored across the seam (its
    first token is a response token).

    Training on short instances wastes ~20% of a padded batch on padding (cpu-demo, batch 4);
    the packed row has none. Losses equal the padded batch's up to rounding.

    ``share_prefixes``: examples whose prompts open alike (:func:`prefix_groups`: a system
    prompt, a task's definition) hold their common prefix once in the row; each attends to it
    and to itself (``visible``), at its own positions, so loss and gradients are those of the
    whole examples (the prefix's gradient sums over its members) on fewer tokens.

    >>> b = pack([EncodedExample([1, 2, 3], [-100, 2, 3], 1, 2), EncodedExample([4, 5], [-100, 5], 1, 1)])
    >>> b.input_ids.tolist(), b.position_ids.tolist(), b.labels.tolist()
    ([[1, 2, 3, 4, 5]], [[0, 1, 2, 0, 1]], [[-100, 2, 3, -100, 5]])
    """
    if len(examples) < 2 or any(ex.labels[0] != IGNORE_INDEX for ex in examples):
        return None
    groups = (prefix_groups({str(k): ex for k, ex in enumerate(examples)},
                            [str(k) for k in range(len(examples))]) if share_prefixes else [])
    saved = held_once(groups)
    if sum(len(ex.input_ids) for ex in examples) - saved > max_tokens:
        return None
    if not saved:  # the examples in their order, each whole
        groups = [PrefixGroup(0, [str(k) for k in range(len(examples))])]
    return _packed_row(examples, groups, device)


def _row(values: list[int], device: str | torch.device) -> torch.Tensor:
    return torch.tensor([values], dtype=torch.long, device=device)


def _packed_row(examples: Sequence[EncodedExample], groups: Sequence[PrefixGroup],
                device: str | torch.device) -> Batch:
    """:func:`pack`'s row, group after group, each group's prefix held once (see there); with
    no prefix held once, transformers' own packed format (no mask, no spans)."""
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    segment: list[int] = []  # each token's segment: a prefix, or one example's own tokens
    sees: list[int] = []     # the prefix segment a token may also attend to (-1: none)
    spans: list[list[tuple[int, int]]] = [[] for _ in examples]

    def put(tokens: list[int], labs: list[int], first_pos: int, seg: int, prefix: int) -> None:
        ids.extend(tokens)
        labels.extend(labs)
        positions.extend(range(first_pos, first_pos + len(tokens)))
        segment.extend([seg] * len(tokens))
        sees.extend([prefix] * len(tokens))

    seg = 0
    for g in groups:
        prefix, p = -1, g.n_prefix
        if p:
            prefix_span = (len(ids), len(ids) + p)
            put(examples[int(g.ids[0])].input_ids[:p], [IGNORE_INDEX] * p, 0, seg, -1)
            prefix, seg = seg, seg + 1
        for k in map(int, g.ids):
            ex = examples[k]
            spans[k] = [prefix_span] if p else []
            spans[k].append((len(ids), len(ids) + len(ex.input_ids) - p))
            put(ex.input_ids[p:], ex.labels[p:], p, seg, prefix)
            seg += 1
    batch = Batch(_row(ids, device), torch.ones(1, len(ids), dtype=torch.long, device=device),
                  _row(labels, device), _row(positions, device))
    if any(g.n_prefix for g in groups):
        own, pre = torch.tensor(segment), torch.tensor(sees)
        visible = ((own[None, :] == own[:, None]) | (own[None, :] == pre[:, None])).tril()
        batch.visible, batch.spans = visible.to(device), spans
    return batch


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


def _foldable(layer: Any) -> list[str]:
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
                names = _foldable(layer)
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


def _length_batches(ids: Sequence[str], lengths: Mapping[str, int],
                    batch_size: int) -> Iterator[list[str]]:
    ordered = sorted(ids, key=lambda i: -lengths[i])
    for start in range(0, len(ordered), batch_size):
        yield ordered[start : start + batch_size]


def _row_budget(n_prefix: int) -> int:
    """Most tokens of one packed scoring row of a group: a longer group is split into rows that
    each hold the prefix again, and attention costs a row's length squared, so rows grow with
    the prefix (a repeat then costs at most ~1/8 of a row). The niv2-sample test set's groups
    (prefixes of 73-163 tokens, 10 members) fit one row each; a chat template's ~20-token
    system prompt shared by all gets rows of :data:`PACK_MAX_TOKENS`."""
    return max(PACK_MAX_TOKENS, 8 * n_prefix)


def group_rows(group: PrefixGroup, encoded: Mapping[str, EncodedExample]) -> list[list[str]]:
    """A group's members, longest own part first, in packed rows of at most
    :func:`_row_budget` tokens (the group's prefix once per row, then each member's own).

    >>> enc = {i: EncodedExample([1] * 100 + [2] * n, [-100] * 100 + [2] * n, 100, n)
    ...        for i, n in [("a", 300), ("b", 200), ("c", 400)]}
    >>> group_rows(PrefixGroup(100, ["a", "b", "c"]), enc)
    [['c', 'a'], ['b']]
    """
    budget = _row_budget(group.n_prefix)
    own = {i: len(encoded[i].input_ids) - group.n_prefix for i in group.ids}
    rows: list[list[str]] = []
    used = budget  # start a row at the first member
    for i in sorted(group.ids, key=lambda i: -own[i]):
        if used + own[i] > budget:
            rows.append([])
            used = group.n_prefix
        rows[-1].append(i)
        used += own[i]
    return rows


def _owners(batch: Batch, n_examples: int) -> torch.Tensor:
    """The example each response token of a packed row (in :func:`_head_ce`'s order) belongs
    to: the one whose own span holds the token (a prefix holds none)."""
    owner = torch.full((batch.input_ids.shape[1],), -1, dtype=torch.long)
    for k, spans in enumerate(batch.spans or []):
        start, end = spans[-1]  # the example's own tokens; a first span is the prefix
        owner[start:end] = k
    keep = (batch.labels[0, 1:] != IGNORE_INDEX).cpu()
    got = owner[1:][keep]
    assert len(got) == 0 or (int(got.min()) >= 0 and int(got.max()) < n_examples)
    return got.to(batch.input_ids.device)


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
    packed = [(chunk, _packed_row([encoded[i] for i in chunk],
                                  [PrefixGroup(g.n_prefix, [str(k) for k in range(len(chunk))])],
                                  device))
              for g in groups if g.n_prefix for chunk in group_rows(g, encoded)]
    longest = max([lengths[i] for i in whole] + [b.input_ids.shape[1] for _, b in packed],
                  default=0)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast_context(bf16_autocast, device), \
                lora_under_autocast(model, bf16_autocast, device), \
                fast_attention(model, device, longest), merged_lora(model):
            for chunk in _length_batches(whole, lengths, batch_size):
                ce, row_of = response_token_ce(
                    model, collate([encoded[i] for i in chunk], pad_id, device=device))
                _record(rows, encoded, chunk, ce, row_of)
            for chunk, batch in packed:
                ce, _ = response_token_ce(model, batch)
                _record(rows, encoded, chunk, ce, _owners(batch, len(chunk)))
    finally:
        model.train(was_training)
    return [rows[i] for i in ids]


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
    was_training = model.training
    model.eval()
    try:
        longest = max(lengths.values(), default=0) + max_new_tokens
        with torch.inference_mode(), autocast_context(bf16_autocast, device), \
                lora_under_autocast(model, bf16_autocast, device), \
                fast_attention(model, device, longest), merged_lora(model):
            for chunk in _length_batches(ids, lengths, batch_size):
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
    finally:
        model.train(was_training)
    return out


def reward_scores(path: str, conversations: Mapping[str, Sequence[Mapping[str, str]]],
                  predictions: Mapping[str, str], device: str | torch.device = "cpu",
                  batch_size: int = 8) -> dict[str, float]:
    """Score each (prompt, predicted response) with a sequence-classification reward model.

    The reward model's own chat template formats the conversation when it has one.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    rm = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).to(device).eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    rm.config.pad_token_id = tok.pad_token_id
    texts: dict[str, str] = {}
    for i, pred in predictions.items():
        msgs = [dict(m) for m in conversations[i][:-1]] + [{"role": "assistant", "content": pred}]
        if getattr(tok, "chat_template", None):
            texts[i] = tok.apply_chat_template(msgs, tokenize=False)
        else:
            texts[i] = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in msgs)
    keys = list(texts)
    scores: dict[str, float] = {}
    with torch.inference_mode():
        for start in range(0, len(keys), batch_size):
            chunk = keys[start : start + batch_size]
            enc = tok([texts[k] for k in chunk], return_tensors="pt", padding=True,
                      truncation=True, max_length=2048).to(device)
            logits = rm(**enc).logits[:, 0].float().tolist()
            scores.update(zip(chunk, logits))
    return scores
