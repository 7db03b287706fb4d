"""Where each optimizer step's instances come from: the one interface the loop asks.

:class:`~zsg_lib.train.loop.Loop` asks a :class:`BatchSource` for step ``s``'s instance ids,
giving it what it may use then and nothing else: the step, the batch size, the score rows
of every scored step before ``s`` (the run's own test scores, the branch point's first) and
the log rows of the steps before ``s`` (the ids each one fed). A fixed order
(:class:`FixedOrder`, every arrangement that orders before training) ignores all but the
step; an order that follows the model (``zsg_lib.arrange.online``) reads the scores. Either
way the loop has one path, and since the scores and the log are what a checkpoint holds, a
source that reads only them is rebuilt exactly by a resumed run.

A source answers ``(ids, reasons)``: ``reasons`` is one plain row per id saying why it was
picked (empty for a fixed order), which the loop keeps and the run record writes
(:func:`zsg_lib.train.records.write_picks`). ``len(source)``: the instances it plans to
feed (a fixed order's length, an online source's budget), from which a run's step count
comes (:meth:`~zsg_lib.train.config.TrainConfig.steps_over`).

>>> fixed = FixedOrder(["a", "b", "c"], per_step=2, first=0)
>>> [fixed.batch(s, 2, [], [])[0] for s in (1, 2, 3)], len(fixed)
([['a', 'b'], ['c'], ['a', 'b']], 3)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

#: A step's picks: the ids, and one reason row per id (empty for a fixed order).
Picked = tuple[list[str], list[dict[str, Any]]]


@runtime_checkable
class BatchSource(Protocol):
    """What the loop asks for each step's instances (see the module's text)."""

    def __len__(self) -> int: ...

    def batch(self, step: int, size: int, scores: Sequence[Mapping[str, Any]],
              fed: Sequence[Mapping[str, Any]]) -> Picked: ...


@runtime_checkable
class OnlineSource(BatchSource, Protocol):
    """A source whose order is known only while training: the ids it may pick from
    (``candidates``: checked against the training set and encoded before the run) and what
    identifies it in place of an order (``identity()``: plain data hashed into the run id:
    its name, parameters, pool and embeddings' digests, the query ids)."""

    def candidates(self) -> list[str]: ...

    def identity(self) -> dict[str, Any]: ...


def step_chunks(order: Sequence[str], step_size: int, max_steps: int) -> list[list[str]]:
    """The ids each optimizer step consumes: consecutive chunks of ``order``, wrapping around.

    >>> step_chunks(["a", "b", "c"], 2, 3)
    [['a', 'b'], ['c'], ['a', 'b']]
    """
    per_pass = _one_pass(order, step_size)
    return [per_pass[s % len(per_pass)] for s in range(max_steps)]


def _one_pass(order: Sequence[str], step_size: int) -> list[list[str]]:
    return [list(order[i : i + step_size]) for i in range(0, len(order), step_size)]


class FixedOrder:
    """A training order fixed before the run: step ``first + k`` feeds the ``k``-th chunk of
    ``order``, wrapping around (:func:`step_chunks`), whatever the scores say."""

    def __init__(self, order: Sequence[str], per_step: int, first: int) -> None:
        self.order, self.first = list(order), first
        self.chunks = _one_pass(self.order, per_step)

    def __len__(self) -> int:
        return len(self.order)

    def batch(self, step: int, size: int, scores: Sequence[Mapping[str, Any]],
              fed: Sequence[Mapping[str, Any]]) -> Picked:
        return list(self.chunks[(step - self.first - 1) % len(self.chunks)]), []
