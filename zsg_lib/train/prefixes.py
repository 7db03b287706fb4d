"""Prompt prefixes that several instances share, found so each is run through the model once.

A chat template's system prompt is shared by every instance; an NIv2 task's definition and
positive examples (PAPER.md §2) by every instance of the task, typically most of its prompt
(measured: 68% of the tokens of the niv2-sample profile's test set). Scoring and training hold
each shared prefix once in a packed row, the members' own tokens after it.

>>> from zsg_lib.train.prompts import EncodedExample
>>> def ex(*ids):
...     return EncodedExample(list(ids) + [9], [-100] * len(ids) + [9], len(ids), 1)
>>> enc = {"a": ex(1, 2, 3, 4, 5), "b": ex(1, 2, 3, 4, 6), "c": ex(7, 8)}
>>> [(g.n_prefix, g.ids) for g in prefix_groups(enc, ["a", "b", "c"], min_shared=2)]
[(4, ['a', 'b']), (0, ['c'])]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .prompts import EncodedExample

#: Below this many shared tokens, holding a prefix once saves less than its row's mask costs.
MIN_SHARED_PREFIX = 8
#: Scoring in groups splits a pass into more, smaller batches; it pays once the prefixes held
#: once are a good share of the tokens (bench/bench_scoring.py on 2 CPU cores: the niv2-sample
#: test set, 69% held once, 3.3x faster than one prefix for all; cpu-demo's, 11%, 0.89x,
#: no gain within this machine's noise).
MIN_GROUPED_SHARE = 0.25


@dataclass(frozen=True)
class PrefixGroup:
    """Instances whose prompts begin with the same ``n_prefix`` tokens (``0``: no prefix is
    shared; the members are scored whole)."""

    n_prefix: int
    ids: list[str]


def held_once(groups: Sequence[PrefixGroup]) -> int:
    """Tokens the groups' shared prefixes save: each is held once instead of once a member."""
    return sum((len(g.ids) - 1) * g.n_prefix for g in groups)


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share.

    >>> common_prefix_len([1, 2, 3], [1, 2, 4, 5])
    2
    """
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _own_prompt(ex: EncodedExample) -> list[int]:
    # the last prompt token stays each member's own: its output predicts the first response
    # token, and the suffix pass then starts inside the prompt
    return ex.input_ids[: max(ex.n_source - 1, 0)]


def shared_prefix_len(examples: Sequence[EncodedExample]) -> int:
    """Length of the prompt prefix all examples share (a system prompt, a template header),
    always leaving each example at least one prompt token of its own.

    >>> shared_prefix_len([EncodedExample([1, 2, 3, 4], [-100, -100, 3, 4], 2, 2),
    ...                    EncodedExample([1, 2, 5, 6], [-100, -100, -100, 6], 3, 1)])
    1
    """
    if not examples:
        return 0
    first = _own_prompt(examples[0])
    return min(common_prefix_len(first, _own_prompt(ex)) for ex in examples)


def prefix_groups(encoded: Mapping[str, EncodedExample], ids: Sequence[str],
                  min_shared: int = MIN_SHARED_PREFIX) -> list[PrefixGroup]:
    """Split ``ids`` into groups of instances that share a prompt prefix, each id in one group.

    Prompts are taken in sorted token order, where instances with a common prefix sit side by
    side; the next instance joins the current group while the tokens sharing saves
    (``(members - 1) x shared length``) do not fall and the group still shares at least
    ``min_shared`` tokens. Instances left alone are gathered into one last group on the prefix
    all of them share (a system prompt), or ``n_prefix = 0`` when that is under ``min_shared``.
    Groups come in sorted prompt order; the same input always gives the same groups.
    """
    prompt = {i: _own_prompt(encoded[i]) for i in ids}
    order = sorted(ids, key=lambda i: (prompt[i], i))
    groups: list[PrefixGroup] = []
    alone: list[str] = []

    def close(members: list[str], shared: int) -> None:
        if len(members) > 1:
            groups.append(PrefixGroup(shared, members))
        else:
            alone.extend(members)

    members: list[str] = []
    shared = 0
    for i in order:
        if members:
            joined = min(shared, common_prefix_len(prompt[members[0]], prompt[i]))
            if joined >= min_shared and joined * len(members) >= shared * (len(members) - 1):
                members.append(i)
                shared = joined
                continue
            close(members, shared)
        members, shared = [i], len(prompt[i])
    close(members, shared)
    if alone:
        groups.append(common_group(encoded, alone, min_shared))
    return groups


def common_group(encoded: Mapping[str, EncodedExample], ids: Sequence[str],
                 min_shared: int = MIN_SHARED_PREFIX) -> PrefixGroup:
    """All of ``ids`` in one group, on the prefix all of them share (``0`` when under
    ``min_shared``, or for a single instance)."""
    n = shared_prefix_len([encoded[i] for i in ids]) if len(ids) > 1 else 0
    return PrefixGroup(n if n >= min_shared else 0, list(ids))


def scoring_groups(encoded: Mapping[str, EncodedExample], ids: Sequence[str]) -> list[PrefixGroup]:
    """:func:`prefix_groups` where their prefixes hold at least :data:`MIN_GROUPED_SHARE` of
    the tokens; else one group on the prefix all instances share (a system prompt; ``0`` when
    under :data:`MIN_SHARED_PREFIX`)."""
    groups = prefix_groups(encoded, ids)
    if held_once(groups) >= MIN_GROUPED_SHARE * sum(len(encoded[i].input_ids) for i in ids):
        return groups
    return [common_group(encoded, ids)]
