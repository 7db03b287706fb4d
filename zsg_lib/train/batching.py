"""Examples into tensors: padded batches, padding-free packed rows, and the batches a pass
runs in.

* :func:`collate`: examples padded to one length (right padding; left and prompts only for
  generation).
* :func:`pack`: the examples of a training micro-batch as one padding-free row, positions
  restarting at each example; with ``share_prefixes``, a prompt prefix several examples share
  (:func:`~zsg_lib.train.prefixes.prefix_groups`) is held once and each member attends to it
  and to itself.
* :func:`group_rows` / :func:`packed_group_row`: a scoring pass's prefix group in packed rows
  (the prefix once per row); :func:`token_owners` maps a row's response tokens back to its
  members.
* :func:`length_batches`: ids longest first in batches, so padding is small.

>>> b = collate([EncodedExample([1, 2], [-100, 2], 1, 1)], pad_id=0)
>>> b.input_ids.tolist(), b.n_tokens
([[1, 2]], 2)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from .prefixes import PrefixGroup, held_once, prefix_groups
from .prompts import IGNORE_INDEX, EncodedExample


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


def length_batches(ids: Sequence[str], lengths: Mapping[str, int],
                   batch_size: int) -> Iterator[list[str]]:
    """``ids`` longest first, ``batch_size`` at a time (a padded batch then pads little).

    >>> list(length_batches(["a", "b", "c"], {"a": 1, "b": 3, "c": 2}, 2))
    [['b', 'c'], ['a']]
    """
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


def packed_group_row(examples: Sequence[EncodedExample], n_prefix: int,
                     device: str | torch.device = "cpu") -> Batch:
    """One packed row of a prefix group's members (a chunk of :func:`group_rows`): their
    shared ``n_prefix`` tokens once, then each member's own tokens, each attending to the
    prefix and to itself (:func:`pack`'s row with ``share_prefixes``).

    >>> b = packed_group_row([EncodedExample([7, 1, 2], [-100, -100, 2], 2, 1),
    ...                       EncodedExample([7, 1, 3], [-100, -100, 3], 2, 1)], n_prefix=1)
    >>> b.input_ids.tolist(), b.position_ids.tolist(), b.spans
    ([[7, 1, 2, 1, 3]], [[0, 1, 2, 1, 2]], [[(0, 1), (1, 3)], [(0, 1), (3, 5)]])
    """
    return _packed_row(examples, [PrefixGroup(n_prefix, [str(k) for k in range(len(examples))])],
                       device)


def token_owners(batch: Batch, n_examples: int) -> torch.Tensor:
    """The example each response token of a packed row (in
    :func:`~zsg_lib.train.forward.response_token_ce`'s order) belongs to: the one whose own
    span holds the token (a prefix holds none)."""
    owner = torch.full((batch.input_ids.shape[1],), -1, dtype=torch.long)
    for k, spans in enumerate(batch.spans or []):
        start, end = spans[-1]  # the example's own tokens; a first span is the prefix
        owner[start:end] = k
    keep = (batch.labels[0, 1:] != IGNORE_INDEX).cpu()
    got = owner[1:][keep]
    assert len(got) == 0 or (int(got.min()) >= 0 and int(got.max()) < n_examples)
    return got.to(batch.input_ids.device)
