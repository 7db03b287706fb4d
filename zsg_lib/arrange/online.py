"""An online test-centric arrangement (issue #29, part 2): the order follows the model.

TMA (:mod:`zsg_lib.arrange.multiturn`) fixes its whole order before training, from
embeddings. The mechanism the paper proposes says more: the data that helps next is the data
nearest to what the model still gets wrong. :class:`OnlinePicker` uses that while the run
trains. It is a batch source (:mod:`zsg_lib.train.batches`): at each *scoring point* ``p``
(every scored step of the run that is not scored only for step-resolved scoring; the branch
point's scores start it) it picks the *stretch* of batches up to the next scoring point:

1. **Which query instances lag.** Each query instance's loss at ``p`` relative to its loss at
   the run's first scored step (the branch point): ``ratio = loss_p / loss_0``. The share
   ``lagging`` of them with the highest ratio (ties: the higher loss at ``p``, then query
   order) are served. *Why relative*: a test task's loss level is mostly its own (an open
   translation carries more entropy than a count), so the highest *absolute* loss would serve
   the same intrinsically hard instances stretch after stretch whatever training does; the
   ratio asks which instances training has not yet moved, which is what "what the model
   still gets wrong" means for an order. At the branch point every ratio is 1, so the first
   stretch serves the highest absolute losses.
2. **Their nearest unused pool instances.** In turn (most lagging first, then round and
   round), each served query instance takes its nearest pool instance not fed before ``p``
   and not taken earlier in the stretch, by cosine similarity of the TMA view's embeddings
   (as ``tma-nft``; ties to the lower pool index; similarity = float64 dot product of float32
   unit vectors, rounded to float32). Step ``s`` of the stretch feeds the stretch's picks
   ``[(s - p - 1) * size, (s - p) * size)``; the run stops at ``budget`` instances.

The stretch is a pure function of the score rows up to ``p`` and the ids fed up to ``p`` —
what the loop's checkpoint holds — so a killed run rebuilds it and resumes to the same
records; nothing but a cache is kept in memory. Every pick comes with its reason (the query
instance, its rank, its losses and ratio, the cosine distance ``1 - cos``), which the run
record keeps (:data:`zsg_lib.train.records.PICKS_SCHEMA`). Deterministic: no randomness is
drawn (``seed`` is recorded for the catalog's interface).

:func:`online` is the catalog's view of it (``arrange("online-nft", ...)``): the picks the
source makes when no query instance's loss ever moves (every ratio 1 and every loss equal,
so each stretch serves the first query instances in order), a *preview* of the rule without a
model. A run's real order is in its record.

>>> from zsg_lib.schema import instances_from_records
>>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
>>> pool = instances_from_records([{"id": f"p{i}", "messages": msgs} for i in range(6)])
>>> pool_emb = np.array([[1, 0], [.9, .1], [0, 1], [.1, .9], [-1, 0], [.7, .7]])
>>> picker = OnlinePicker(pool, pool_emb, np.array([[1.0, 0.0], [0.0, 1.0]]), ["a", "b"],
...                       budget=4, lagging=0.5)
>>> scores = [{"step": 0, "id": "a", "task": "A", "loss": 2.0, "n_tokens": 3},
...           {"step": 0, "id": "b", "task": "B", "loss": 1.0, "n_tokens": 3}]
>>> picker.batch(1, 2, scores, [])[0]  # at the branch point: the higher loss, "a", lags
['p0', 'p1']
>>> scores += [{"step": 1, "id": "a", "task": "A", "loss": 1.0, "n_tokens": 3},
...            {"step": 1, "id": "b", "task": "B", "loss": 0.9, "n_tokens": 3}]
>>> ids, why = picker.batch(2, 2, scores, [{"step": 1, "instance_ids": ["p0", "p1"]}])
>>> ids, why[0]["query_id"], round(why[0]["loss_ratio"], 2)  # "b" moved least: 0.9 / 1.0
(['p2', 'p3'], 'b', 0.9)
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import ArrangementError
from ..similarity import check_embeddings, normalise_rows
from .base import Arrangement, check_int, check_rows, check_seed, ids_and_tasks, make_arrangement

#: The share of query instances a stretch serves when none is given: a quarter keeps each
#: stretch on what lags most while spreading it over several query instances (one alone
#: would spend a stretch on one neighbourhood, locked in by one noisy loss ratio).
DEFAULT_LAGGING = 0.25


def _check_share(value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0 < float(value) <= 1):
        raise ArrangementError(f"lagging: expected a share in (0, 1] of the query instances "
                               f"a stretch serves, got {type(value).__name__} {value!r}")
    return float(value)


def embeddings_digest(*arrays: np.ndarray) -> str:
    """A digest of embedding arrays (shape, dtype and bytes): what an online run's identity
    holds in place of the vectors.

    >>> embeddings_digest(np.zeros((2, 3))) == embeddings_digest(np.zeros((2, 3)))
    True
    """
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class OnlinePicker:
    """The online test-centric batch source (see the module's text).

    ``train``: the pool (ids and tasks), ``train_emb`` its embeddings; ``query_emb`` the
    query instances' embeddings, ``query_ids`` their ids as the run's score rows name them;
    ``budget``: the instances the run feeds (at most the pool); ``lagging``: the share of
    query instances each stretch serves.
    """

    name = "online-nft"

    def __init__(self, train: pa.Table | pd.DataFrame, train_emb: np.ndarray,
                 query_emb: np.ndarray, query_ids: Sequence[str], budget: int,
                 lagging: float = DEFAULT_LAGGING, seed: int = 0) -> None:
        self.ids, self.tasks = ids_and_tasks(train)
        check_rows(train_emb, len(self.ids), "train_emb")
        check_embeddings(query_emb, "query_emb", dim=train_emb.shape[1])
        self.query_ids = [str(q) for q in query_ids]
        if len(self.query_ids) != query_emb.shape[0]:
            raise ArrangementError(f"query_ids: {len(self.query_ids)} ids for "
                                   f"{query_emb.shape[0]} query embeddings")
        if len(set(self.query_ids)) != len(self.query_ids):
            raise ArrangementError("query_ids: an id appears twice")
        self.budget = check_int(budget, "budget", minimum=1)
        if self.budget > len(self.ids):
            raise ArrangementError(f"budget: {self.budget} instances asked, but the pool "
                                   f"holds {len(self.ids)}")
        self.lagging, self.seed = _check_share(lagging), check_seed(seed)
        self.train_emb, self.query_emb = train_emb, query_emb
        self.unit = normalise_rows(train_emb, "train_emb").astype(np.float64)
        self.query_unit = normalise_rows(query_emb, "query_emb").astype(np.float64)
        self.row_of = {i: k for k, i in enumerate(self.ids)}
        self.row_of_query = {q: k for k, q in enumerate(self.query_ids)}
        self._ranked: dict[int, np.ndarray] = {}  # query row -> pool rows, nearest first
        self._sims: dict[int, np.ndarray] = {}
        self._stretch: tuple[Any, list[dict[str, Any]], Any] | None = None  # a cache only

    # --- what the run identifies it by
    def __len__(self) -> int:
        return self.budget

    def candidates(self) -> list[str]:
        """The ids it may feed: the pool."""
        return list(self.ids)

    def identity(self) -> dict[str, Any]:
        """What decides its picks besides the pool's content and the scores: hashed into the
        run id in place of an order."""
        return {"arrangement": self.name, "budget": self.budget, "lagging": self.lagging,
                "seed": self.seed, "query_ids": list(self.query_ids),
                "embeddings": embeddings_digest(self.train_emb, self.query_emb)}

    # --- the batch source
    def batch(self, step: int, size: int, scores: Sequence[Mapping[str, Any]],
              fed: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
        """Step ``step``'s picks and their reasons, from the scores and the log before it."""
        points = sorted({int(r["step"]) for r in scores if r["step"] < step
                         and not r.get("step_resolved")})
        if not points:
            raise ArrangementError(f"online: step {step} has no scored step before it (the "
                                   "branch point's scores start the picks)")
        p = points[-1]
        used = [i for row in fed if int(row["step"]) <= p for i in row["instance_ids"]]
        end = min((step - p) * size, self.budget - len(used))  # the budget cuts the last
        start = min((step - p - 1) * size, end)
        picks = self._picks(p, points[0], scores, used, end)
        return [r["id"] for r in picks[start:end]], [dict(r) for r in picks[start:end]]

    def _picks(self, p: int, first: int, scores: Sequence[Mapping[str, Any]],
               used: list[str], upto: int) -> list[dict[str, Any]]:
        """The stretch from scoring point ``p``, at least ``upto`` picks long. Rebuilt from
        its inputs (the scores at ``first`` and ``p``, the ids fed up to ``p``) whenever the
        cache holds another stretch's."""
        key = (p, first, tuple((r["id"], r["step"], r["loss"]) for r in scores
                               if r["step"] in (p, first) and r["id"] in self.row_of_query),
               tuple(used))
        if self._stretch is None or self._stretch[0] != key:
            self._stretch = (key, [], self._start(p, first, scores, used))
        _, picks, state = self._stretch
        served, pointer, taken, base = state
        while len(picks) < upto:
            k = len(picks) % len(served)
            q, rank, loss, loss0, ratio, task = served[k]
            order = self._order(q)
            j = pointer[k]
            while j < len(order) and order[j] in taken:
                j += 1
            if j == len(order):
                raise ArrangementError(f"online: the pool ran out at {len(taken)} instances "
                                       "(budget larger than the pool?)")
            row = int(order[j])
            pointer[k] = j + 1
            taken.add(row)
            picks.append({"position": base + len(picks), "id": self.ids[row],
                          "task": self.tasks[row], "scored_at": p,
                          "query_id": self.query_ids[q], "query_task": task,
                          "query_rank": rank, "query_loss": loss, "query_branch_loss": loss0,
                          "loss_ratio": ratio, "distance": 1.0 - float(self._sims[q][row])})
        return picks

    def _start(self, p: int, first: int, scores: Sequence[Mapping[str, Any]],
               used: list[str]) -> tuple[list[tuple], list[int], set[int], int]:
        """The served query instances at ``p`` (most lagging first, with their losses) and
        the pool rows already fed."""
        now, then, task = {}, {}, {}
        for r in scores:
            if r["id"] in self.row_of_query and r.get("n_tokens", 1) > 0:
                if r["step"] == p:
                    now[r["id"]], task[r["id"]] = float(r["loss"]), r.get("task")
                if r["step"] == first:
                    then[r["id"]] = float(r["loss"])
        rows = []
        for q, qid in enumerate(self.query_ids):
            if qid in now and qid in then and math.isfinite(now[qid]):
                ratio = now[qid] / max(then[qid], 1e-9)
                rows.append((-ratio, -now[qid], q, qid, ratio))
        if not rows:
            raise ArrangementError(f"online: the scores at step {p} name none of the "
                                   f"{len(self.query_ids)} query instances")
        rows.sort()
        n = max(1, math.ceil(self.lagging * len(rows)))
        served = [(q, rank, now[qid], then[qid], ratio, task[qid])
                  for rank, (_, _, q, qid, ratio) in enumerate(rows[:n])]
        taken = {self.row_of[i] for i in used if i in self.row_of}
        return served, [0] * len(served), taken, len(used)

    def _order(self, q: int) -> np.ndarray:
        """Pool rows by similarity to query row ``q``, nearest first (ties: lower row)."""
        if q not in self._ranked:
            sims = (self.unit @ self.query_unit[q]).astype(np.float32)
            self._sims[q] = sims
            self._ranked[q] = np.lexsort((np.arange(len(sims)), -sims))
        return self._ranked[q]

    # --- without a model
    def preview(self, size: int = 1, stretch: int | None = None) -> list[dict[str, Any]]:
        """The picks when no loss ever moves (every query instance's loss 1.0 at every
        scoring point), ``size`` instances a step, a scoring point every ``stretch`` steps
        (``None``: one stretch for the whole budget)."""
        size = check_int(size, "size", minimum=1)
        stretch = check_int(stretch, "stretch", minimum=1, optional=True)
        steps = -(-self.budget // size)
        stretch = stretch or steps
        scores: list[dict[str, Any]] = []
        fed: list[dict[str, Any]] = []
        out: list[dict[str, Any]] = []
        for step in range(1, steps + 1):
            if (step - 1) % stretch == 0:
                scores += [{"step": step - 1, "id": q, "task": None, "loss": 1.0,
                            "n_tokens": 1} for q in self.query_ids]
            ids, why = self.batch(step, size, scores, fed)
            fed.append({"step": step, "instance_ids": ids})
            out += [{"step": step, **r} for r in why]
        return out


def online(
    train: pa.Table | pd.DataFrame,
    train_emb: np.ndarray,
    test_emb: np.ndarray,
    budget: int | None = None,
    seed: int = 0,
    lagging: float = DEFAULT_LAGGING,
    size: int = 1,
    stretch: int | None = None,
) -> Arrangement:
    """The online arrangement's preview (see the module's text): what
    :class:`OnlinePicker` feeds, ``size`` a step and a scoring point every ``stretch`` steps,
    when no loss moves. ``budget``: ``None`` takes the whole pool. Table extras:
    ``test_index`` (the query instance served), ``score`` its cosine distance ``1 - cos``,
    ``round`` the stretch.

    >>> from zsg_lib.schema import instances_from_records
    >>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    >>> train = instances_from_records([{"id": f"x{i}", "messages": msgs} for i in range(6)])
    >>> rng = np.random.default_rng(0)
    >>> a = online(train, rng.normal(size=(6, 4)), rng.normal(size=(4, 4)), budget=4)
    >>> len(a.ids), a.table["test_index"].tolist()  # a quarter of 4 query instances: one
    (4, [0, 0, 0, 0])
    """
    ids, _ = ids_and_tasks(train)
    check_embeddings(test_emb, "test_emb")
    budget = check_int(budget, "budget", minimum=1, optional=True)
    budget = len(ids) if budget is None else min(budget, len(ids))
    query_ids = [f"query-{q}" for q in range(test_emb.shape[0])]
    picker = OnlinePicker(train, train_emb, test_emb, query_ids, budget, lagging, seed)
    picks = picker.preview(size, stretch)
    rows = np.array([picker.row_of[r["id"]] for r in picks], np.int64)
    first_step = np.array([r["scored_at"] for r in picks])
    rounds = np.unique(first_step, return_inverse=True)[1] if len(picks) else first_step
    params = {"budget": budget, "seed": picker.seed, "lagging": picker.lagging, "size": size,
              "stretch": stretch, "preview": True}
    return make_arrangement("online-nft", picker.ids, picker.tasks, rows, params,
                            score=np.array([r["distance"] for r in picks]), rounds=rounds,
                            extra={"test_index": np.array([query_ids.index(r["query_id"])
                                                           for r in picks], np.int64)})
