"""Test-centric Multi-turn Arrangement (PAPER.md §5, Algorithm 1), fast and exact.

Algorithm 1: in every round each test instance picks its nearest training instance among
those not taken in earlier rounds (picks are made against the pool *as it was at the start
of the round*); the round's picks are removed together, a training instance picked by two
test instances is taken once. Rounds are numbered from 0 here (round 0 is the paper's D_1),
matching turn windows ``[i, i+k)`` with ``i = 0, 5, ...``.

Conventions (fixed so that results are reproducible and testable):

* nearest = highest cosine similarity; exact ties go to the **lower training index**;
  farthest (FFT) = lowest similarity, ties also to the lower index;
* within a round, picks are listed in test-instance order; a duplicate keeps the position
  of the first test instance that picked it (``test_index`` records that instance);
* a budget counts distinct training instances; the last round is cut to fit it (its first
  picks in test order are kept); a budget larger than the training set stops when the
  training set runs out, with a warning and ``params["exhausted"] = True``.

Similarity is defined exactly in :mod:`zsg_lib.arrange.neighbours`: the float64 dot product
of the float32 unit vectors, rounded to float32 — independent of BLAS and chunking.

How it is fast: instead of a full ``N x M`` distance matrix, one chunked bfloat16 pass over
the training rows (torch) screens each test instance's ``k`` best candidates, with a proven
error bound (:func:`~zsg_lib.arrange.neighbours.screen_candidates`); about the first half of
each list is scored in float32, the rest when a round reaches it. Rounds are vectorised over
test instances: each takes its first untaken *proven* candidate; candidates within float32
error of it are rescored exactly (float64), ties to the lower index. A test instance whose
list runs out gets a fresh, longer list over the remaining pool (another pass, shared by
every test instance running low). ``k`` defaults to :func:`auto_k` (about 4x the rounds the
budget needs). The result equals the direct algorithm on the exact similarities; the tests
check this with hypothesis, small inputs and screening-scale ones.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import ArrangementError
from ..similarity import DEFAULT_CHUNK, check_embeddings, normalise_rows
from .base import (
    Arrangement,
    check_flag,
    check_int,
    check_rows,
    check_seed,
    ids_and_tasks,
    make_arrangement,
)
from .catalog import TMA_SETTINGS
from .neighbours import TrainPrep, exact_pairs, margin, rank_keys, replace_rows, screen_candidates

Setting = Literal["nft", "fft", "rt", "max-min", "min-max"]
DEFAULT_K = None  # candidates kept per test instance; None: auto_k (from the budget)


@dataclass(frozen=True)
class TMARounds:
    """Raw TMA selection, in selection order (row indices into the training embeddings)."""

    order: np.ndarray  # int64 training rows, D_1 then D_2 ...
    rounds: np.ndarray  # int64 round of each (0-based)
    test_index: np.ndarray  # int64 test row whose pick it was (the first in test order)
    distance: np.ndarray  # float64 d = -cos between it and that test instance
    exhausted: bool  # the training set ran out before the budget was reached
    n_rounds: int


def auto_k(limit: int, m: int, n: int, max_rounds: int | None = None) -> int:
    """Candidates per test instance when ``k`` is not given: about 4x the rounds needed.

    A test instance consumes roughly one candidate per round plus those taken by others
    (about 2.5x the rounds on random data); a list that runs out is refilled, which costs
    another pass over the training rows, so lists are sized to make that rare.

    >>> auto_k(30_000, 1125, 50_000)
    140
    """
    rounds = -(-limit // m)
    if max_rounds is not None:
        rounds = min(rounds, max_rounds)
    return int(max(1, min(n, 4 * rounds + 32, 4096)))


def _check_sizes(budget: object, k: object, chunk_size: object,
                 max_rounds: object = None) -> tuple[int | None, int | None, int | None, int]:
    """The size arguments of TMA as ints (ArrangementError naming the one that is not)."""
    return (check_int(budget, "budget", minimum=1, optional=True),
            check_int(max_rounds, "max_rounds", minimum=0, optional=True),
            check_int(k, "k", minimum=1, optional=True),
            check_int(chunk_size, "chunk_size", minimum=1))


def tma_rounds(
    train_emb: np.ndarray,
    test_emb: np.ndarray,
    farthest: bool = False,
    budget: int | None = None,
    max_rounds: int | None = None,
    k: int | None = DEFAULT_K,
    chunk_size: int = DEFAULT_CHUNK,
) -> TMARounds:
    """Run Algorithm 1 rounds until ``budget`` instances, ``max_rounds`` rounds or the
    training set runs out (``budget=None``: no budget). ``k``: candidates kept per test
    instance (``None``: :func:`auto_k` from the budget); it changes speed, never the result.

    >>> train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [-1.0, 0.0]])
    >>> test = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> r = tma_rounds(train, test)
    >>> r.order.tolist(), r.rounds.tolist()
    ([0, 2, 1, 3, 4], [0, 0, 1, 1, 2])
    >>> tma_rounds(train, test, farthest=True, budget=2).order.tolist()  # test 1: 0 ties 4
    [4, 0]
    >>> twice = np.array([[1.0, 0.0], [1.0, 0.0]])  # both pick the same instance: taken once
    >>> r = tma_rounds(train, twice, budget=3); r.order.tolist(), r.rounds.tolist()
    ([0, 1, 3], [0, 1, 2])
    """
    n = check_embeddings(train_emb, "train_emb").shape[0]
    m = check_embeddings(test_emb, "test_emb", dim=train_emb.shape[1]).shape[0]
    farthest = check_flag(farthest, "farthest")
    budget, max_rounds, k, chunk_size = _check_sizes(budget, k, chunk_size, max_rounds)
    limit = n if budget is None else min(budget, n)
    k = auto_k(limit, m, n, max_rounds) if k is None else int(min(k, n))
    test_n = normalise_rows(test_emb, "test_emb")
    prep = TrainPrep(train_emb, chunk_size)
    first_scored = max(16, k // 2)  # score the rest of a list only when it is reached
    c = screen_candidates(prep, test_n, k, farthest, first_scored=first_scored)
    band = np.float32(2 * margin(test_n.shape[1]))
    depth = np.full(m, k, np.int64)  # list length to ask for at the next refill
    used = np.zeros(n, bool)
    rows_m = np.arange(m)
    n_used, r = 0, 0
    out_rows, out_round, out_test = [], [], []
    while n_used < limit and (max_rounds is None or r < max_rounds):
        while True:
            # each test instance's first untaken proven candidate (float32 order)
            free = ~used[c.idx] & (np.arange(c.idx.shape[1]) < c.proven[:, None])
            first = free.argmax(axis=1)
            stale = ~free[rows_m, first]
            if not stale.any():
                break
            more = np.flatnonzero(stale & (c.scored < c.length))
            if len(more):  # score the rest of these lists first (no pass over the data)
                c.score(prep, test_n, more, c.length[more], farthest)
                continue
            # Fresh lists over the remaining pool for the rows that ran out (4x longer:
            # clustered data is consumed deep), and for rows running low (one pass over the
            # training rows serves them all).
            low = (c.scored >= c.length) & (free.sum(axis=1) < np.maximum(depth // 4, 1))
            depth[stale] = np.minimum(depth[stale] * 4, n)
            redo = np.flatnonzero(stale | low)
            fresh = screen_candidates(prep, test_n[redo], int(depth[redo].max()), farthest,
                                      exclude=used)
            c = replace_rows(c, redo, fresh)
        cand, value = c.idx, c.value
        # The exact winner: the first free proven candidate p scores exactly above every
        # unlisted row; listed untaken rows within float32 error of p (the band) may beat it
        # exactly, so bands of more than one row are decided on exact scores (ties: lower
        # index). Rows outside the band score exactly below p.
        y = cand[rows_m, first]
        vfirst = value[rows_m, first]
        inband = ~used[cand] & (value >= (vfirst - band)[:, None])
        multi = np.flatnonzero(inband.sum(axis=1) > 1)
        if len(multi):
            jr, jc = np.nonzero(inband[multi])
            jr = multi[jr]
            ids = cand[jr, jc]
            sims = exact_pairs(prep, ids, test_n, jr)
            keys = rank_keys(-sims if farthest else sims, ids)
            o = np.lexsort((keys, jr))
            starts = np.flatnonzero(np.r_[True, jr[o][1:] != jr[o][:-1]])
            y[jr[o][starts]] = ids[o][starts]
        _, first_pos = np.unique(y, return_index=True)
        keep = np.sort(first_pos)[: limit - n_used]  # duplicates: first test instance; budget
        out_rows.append(y[keep])
        out_round.append(np.full(len(keep), r, np.int64))
        out_test.append(keep)
        used[y[keep]] = True  # removed only after the whole round
        n_used += len(keep)
        r += 1
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    order, tix = cat(out_rows, np.int64), cat(out_test, np.int64)
    dist = -exact_pairs(prep, order, test_n, tix).astype(np.float64)  # d = -cos, exact
    return TMARounds(order=order, rounds=cat(out_round, np.int64), test_index=tix,
                     distance=dist, exhausted=budget is not None and budget > n, n_rounds=r)


WithinRound = Literal["shuffle", "train-index", "test-order"]
WITHIN_ROUND: tuple[str, ...] = ("shuffle", "train-index", "test-order")


def within_round_order(rounds: np.ndarray, rows: np.ndarray, how: WithinRound,
                       rng: np.random.Generator) -> np.ndarray:
    """Positions that keep the sequence's rounds in place and order the picks inside each
    round: ``shuffle`` (seeded), ``train-index`` (by training row, the authors' choice) or
    ``test-order`` (as the test instances picked them: with a test table grouped by task, a
    round becomes a run of task blocks).

    >>> within_round_order(np.array([0, 0, 0, 1, 1]), np.array([7, 2, 5, 9, 1]),
    ...                    "train-index", np.random.default_rng(0)).tolist()
    [1, 2, 0, 4, 3]
    """
    if how not in WITHIN_ROUND:
        raise ArrangementError(f"within_round must be one of {WITHIN_ROUND}; got {how!r}")
    block = np.concatenate([[0], np.cumsum(rounds[1:] != rounds[:-1])]) if len(rounds) else rounds
    if how == "test-order":
        inner = np.arange(len(rows))
    elif how == "train-index":
        inner = rows
    else:
        inner = rng.permutation(len(rows))
    return np.lexsort((inner, block))


def _reverse_rounds(sel: TMARounds) -> np.ndarray:
    """Positions of ``sel`` with rounds in reverse order (order within a round kept)."""
    return np.argsort(-sel.rounds, kind="stable")


def tma(
    train: pa.Table | pd.DataFrame,
    train_emb: np.ndarray,
    test_emb: np.ndarray,
    setting: Setting = "nft",
    budget: int | None = None,
    seed: int = 0,
    k: int | None = DEFAULT_K,
    chunk_size: int = DEFAULT_CHUNK,
    within_round: WithinRound = "shuffle",
) -> Arrangement:
    """TMA training order under a selection budget (``None``: the whole training set).

    Settings: ``nft`` rounds of nearest picks in round order; ``fft`` rounds of farthest
    picks; ``rt`` the nft selection shuffled (``seed``); ``max-min`` the first
    ``ceil(budget/2)`` from farthest rounds in round order, then ``budget // 2`` from nearest
    rounds in reverse round order (training moves from far to near); ``min-max`` nearest
    rounds first, then the farthest half in reverse (ending far). The two halves are selected
    independently from the whole training set; an instance in both keeps its first position,
    so the result can be shorter than the budget (``params["duplicates_dropped"]``).
    Picks inside a round are ordered by ``within_round`` (see :func:`within_round_order`;
    seeded by ``seed``). Works without task labels. Table extras: ``test_index``, ``half`` (``near``/``far``);
    ``score`` is the distance ``-cos`` to the test instance that picked it.

    >>> from zsg_lib.schema import instances_from_records
    >>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    >>> train = instances_from_records([{"id": f"x{i}", "messages": msgs} for i in range(6)])
    >>> rng = np.random.default_rng(0)
    >>> train_emb, test_emb = rng.normal(size=(6, 4)), rng.normal(size=(2, 4))
    >>> a = tma(train, train_emb, test_emb, "nft", budget=4)
    >>> len(a.ids), a.table["round"].tolist()
    (4, [0, 0, 1, 2])
    >>> tma(train, train_emb, test_emb, "min-max", budget=4).table["half"].tolist()
    ['near', 'near', 'far', 'far']
    """
    ids, tasks = ids_and_tasks(train)
    check_rows(train_emb, len(ids), "train_emb")
    budget, _, k, chunk_size = _check_sizes(budget, k, chunk_size)
    seed = check_seed(seed)
    if setting not in TMA_SETTINGS:
        raise ArrangementError(f"TMA setting must be one of {TMA_SETTINGS}; got {setting!r}")
    n = len(ids)
    params = {"setting": setting, "budget": budget, "seed": seed, "k": k,
              "within_round": within_round}
    if budget is not None and budget > n:
        warnings.warn(f"TMA budget {budget} exceeds the training set ({n}); selection stops "
                      f"when it runs out", stacklevel=2)
    want = n if budget is None else budget
    kw = {"k": k, "chunk_size": chunk_size}
    if setting in ("nft", "fft", "rt"):
        sel = tma_rounds(train_emb, test_emb, setting == "fft", want, **kw)
        parts = [(sel, np.arange(len(sel.order)), "far" if setting == "fft" else "near")]
    else:
        first, second = (want + 1) // 2, want // 2
        far_first = setting == "max-min"
        a = tma_rounds(train_emb, test_emb, far_first, first, **kw)
        parts = [(a, np.arange(len(a.order)), "far" if far_first else "near")]
        if second:
            b = tma_rounds(train_emb, test_emb, not far_first, second, **kw)
            parts.append((b, _reverse_rounds(b), "near" if far_first else "far"))
    rows, rounds, tix, dist, half = [], [], [], [], []
    rng = np.random.default_rng(seed)
    for sel, pos, tag in parts:
        pos = pos[within_round_order(sel.rounds[pos], sel.order[pos], within_round, rng)]
        rows.append(sel.order[pos])
        rounds.append(sel.rounds[pos])
        tix.append(sel.test_index[pos])
        dist.append(sel.distance[pos])
        half.append(np.full(len(pos), tag, dtype=object))
    rows, rounds, tix, dist, half = map(np.concatenate, (rows, rounds, tix, dist, half))
    _, first_pos = np.unique(rows, return_index=True)
    keep = np.sort(first_pos)  # duplicates keep their first position
    params["duplicates_dropped"] = int(len(rows) - len(keep))
    rows, rounds, tix, dist, half = (x[keep] for x in (rows, rounds, tix, dist, half))
    if setting == "rt":
        shuffle = np.random.default_rng(seed).permutation(len(rows))
        rows, rounds, tix, dist, half = (x[shuffle] for x in (rows, rounds, tix, dist, half))
    params["selected"] = int(len(rows))
    params["exhausted"] = bool(budget is not None and budget > n)
    return make_arrangement(f"tma-{setting}", ids, tasks, rows, params, score=dist,
                            rounds=rounds, extra={"test_index": tix, "half": half})


def tma_window(
    train: pa.Table | pd.DataFrame,
    train_emb: np.ndarray,
    test_emb: np.ndarray,
    start: int,
    size: int = 5,
    farthest: bool = False,
    k: int | None = DEFAULT_K,
    chunk_size: int = DEFAULT_CHUNK,
    within_round: WithinRound = "shuffle",
    seed: int = 0,
) -> Arrangement:
    """The instances of TMA rounds ``[start, start + size)`` in round order (turn windows,
    PAPER.md §5; nearest picks unless ``farthest``; picks inside a round ordered by
    ``within_round``, seeded by ``seed``). No budget: the rounds are those of
    Algorithm 1 on the whole training set. If the training set runs out first the window is
    shorter (possibly empty) and ``params["rounds_available"]`` says how many rounds exist.

    >>> from zsg_lib.schema import instances_from_records
    >>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    >>> train = instances_from_records([{"id": f"x{i}", "messages": msgs} for i in range(6)])
    >>> rng = np.random.default_rng(0)
    >>> train_emb, test_emb = rng.normal(size=(6, 4)), rng.normal(size=(2, 4))
    >>> tma_window(train, train_emb, test_emb, start=1, size=2).table["round"].tolist()
    [1, 2, 2]
    """
    ids, tasks = ids_and_tasks(train)
    check_rows(train_emb, len(ids), "train_emb")
    start = check_int(start, "start (the window's first round)", minimum=0)
    size = check_int(size, "size (rounds in the window)", minimum=1)
    farthest = check_flag(farthest, "farthest")
    sel = tma_rounds(train_emb, test_emb, farthest, None, start + size, k, chunk_size)
    pos = np.flatnonzero(sel.rounds >= start)
    pos = pos[within_round_order(sel.rounds[pos], sel.order[pos], within_round,
                                 np.random.default_rng(seed))]
    params = {"start": start, "size": size, "farthest": farthest, "k": k,
              "rounds_available": sel.n_rounds, "within_round": within_round, "seed": seed}
    return make_arrangement("tma-window", ids, tasks, sel.order[pos], params,
                            score=sel.distance[pos], rounds=sel.rounds[pos],
                            extra={"test_index": sel.test_index[pos]})
