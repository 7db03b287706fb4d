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

How it is fast: instead of a full ``N x M`` distance matrix, one chunked float32 BLAS pass
over the training rows screens each test instance's ``k`` best candidates
(:func:`~zsg_lib.arrange.neighbours.screen_topk`). Rounds pop from these lists, skipping
taken instances; when the best screened candidates of a test instance are within float32
error of each other, only those few are rescored exactly. A test instance whose list runs
out (or cannot prove its winner) gets a fresh, longer list over the remaining pool (another
chunked pass, shared by every test instance running low). The result equals the direct
algorithm on the exact similarities; the tests check this with hypothesis.
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
from .base import Arrangement, check_rows, ids_and_tasks, make_arrangement
from .neighbours import exact_scores, margin, screen_topk

Setting = Literal["nft", "fft", "rt", "max-min", "min-max"]
SETTINGS = ("nft", "fft", "rt", "max-min", "min-max")
DEFAULT_K = 256  # candidates kept per test instance; more only costs memory (M x k)


@dataclass(frozen=True)
class TMARounds:
    """Raw TMA selection, in selection order (row indices into the training embeddings)."""

    order: np.ndarray  # int64 training rows, D_1 then D_2 ...
    rounds: np.ndarray  # int64 round of each (0-based)
    test_index: np.ndarray  # int64 test row whose pick it was (the first in test order)
    distance: np.ndarray  # float64 d = -cos between it and that test instance
    exhausted: bool  # the training set ran out before the budget was reached
    n_rounds: int


def tma_rounds(
    train_emb: np.ndarray,
    test_emb: np.ndarray,
    farthest: bool = False,
    budget: int | None = None,
    max_rounds: int | None = None,
    k: int = DEFAULT_K,
    chunk_size: int = DEFAULT_CHUNK,
) -> TMARounds:
    """Run Algorithm 1 rounds until ``budget`` instances, ``max_rounds`` rounds or the
    training set runs out (``budget=None``: no budget).

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
    if budget is not None and budget < 1:
        raise ArrangementError(f"budget must be >= 1 (or None), got {budget}")
    if max_rounds is not None and max_rounds < 0:
        raise ArrangementError(f"max_rounds must be >= 0 (or None), got {max_rounds}")
    limit = n if budget is None else min(budget, n)
    test_n = normalise_rows(test_emb, "test_emb")
    band = np.float32(2 * margin(test_n.shape[1]))
    sc = screen_topk(train_emb, test_n, min(k, n), farthest, chunk_size=chunk_size)
    cands, scores, floor = sc.idx, sc.score, sc.floor
    ptr = np.zeros(m, np.int64)
    depth = np.full(m, min(k, n), np.int64)  # list length to ask for at the next refill
    used = np.zeros(n, bool)
    n_used, r = 0, 0
    out_rows: list[int] = []
    out_round: list[int] = []
    out_test: list[int] = []

    def undecidable(j: int) -> bool:
        """Advance j's pointer past taken rows; True if its list cannot prove the winner."""
        c, p = cands[j], ptr[j]
        while p < len(c) and used[c[p]]:
            p += 1
        ptr[j] = p
        return p == len(c) or scores[j][p] - band < floor[j]

    while n_used < limit and (max_rounds is None or r < max_rounds):
        stale = [j for j in range(m) if undecidable(j)]
        while stale:
            # Fresh lists over the remaining pool. A pass over the training rows costs about
            # the same for one test row or many, so rows running low are refilled too, and a
            # row that ran out gets a 4x longer list (clustered data is consumed deep).
            left = np.array([len(c) for c in cands]) - ptr
            redo = np.union1d(stale, np.flatnonzero(left < np.maximum(depth // 4, 1)))
            depth[stale] = np.minimum(depth[stale] * 4, n)
            fresh = screen_topk(train_emb, test_n[redo], int(min(depth[redo].max(), n - n_used)),
                                farthest, exclude=used, chunk_size=chunk_size)
            for t, j in enumerate(redo):
                cut = depth[j]
                if cut < len(fresh.idx[t]):  # shortened list: its floor rises to the cut
                    fl = np.nextafter(fresh.score[t][cut - 1], np.float32(np.inf))
                    floor[j] = max(fresh.floor[t], fl)
                else:
                    floor[j] = fresh.floor[t]
                cands[j], scores[j], ptr[j] = fresh.idx[t][:cut], fresh.score[t][:cut], 0
            stale = [j for j in stale if undecidable(j)]  # huge tie bands need longer lists
        taken: set[int] = set()
        room = limit - n_used
        for j in range(m):
            c, v, p = cands[j], scores[j], ptr[j]
            q = p + 1
            while q < len(c) and v[q] >= v[p] - band:  # the exact winner is in this band
                q += 1
            group = c[p:q][~used[c[p:q]]]
            if len(group) == 1:
                y = int(group[0])
            else:  # near-equal screened scores: decide on exact ones, ties to lower index
                exact = exact_scores(train_emb, group, test_n[j], farthest)
                y = int(group[np.lexsort((group, -exact))[0]])
            if y not in taken and len(taken) < room:
                taken.add(y)
                out_rows.append(y)
                out_round.append(r)
                out_test.append(j)
        used[list(taken)] = True  # removed only after the whole round
        n_used += len(taken)
        r += 1
    order = np.asarray(out_rows, np.int64)
    tix = np.asarray(out_test, np.int64)
    dist = np.empty(len(order))
    for j in np.unique(tix):  # d = -cos, exact, for the table
        at = np.flatnonzero(tix == j)
        dist[at] = -exact_scores(train_emb, order[at], test_n[j]).astype(np.float64)
    return TMARounds(order=order, rounds=np.asarray(out_round, np.int64), test_index=tix,
                     distance=dist, exhausted=budget is not None and budget > n, n_rounds=r)


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
    k: int = DEFAULT_K,
    chunk_size: int = DEFAULT_CHUNK,
) -> Arrangement:
    """TMA training order under a selection budget (``None``: the whole training set).

    Settings: ``nft`` rounds of nearest picks in round order; ``fft`` rounds of farthest
    picks; ``rt`` the nft selection shuffled (``seed``); ``max-min`` the first
    ``ceil(budget/2)`` from farthest rounds in round order, then ``budget // 2`` from nearest
    rounds in reverse round order (training moves from far to near); ``min-max`` nearest
    rounds first, then the farthest half in reverse (ending far). The two halves are selected
    independently from the whole training set; an instance in both keeps its first position,
    so the result can be shorter than the budget (``params["duplicates_dropped"]``).
    Works without task labels. Table extras: ``test_index``, ``half`` (``near``/``far``);
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
    if setting not in SETTINGS:
        raise ArrangementError(f"TMA setting must be one of {SETTINGS}; got {setting!r}")
    n = len(ids)
    params = {"setting": setting, "budget": budget, "seed": seed, "k": k}
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
    for sel, pos, tag in parts:
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
    k: int = DEFAULT_K,
    chunk_size: int = DEFAULT_CHUNK,
) -> Arrangement:
    """The instances of TMA rounds ``[start, start + size)`` in round order (turn windows,
    PAPER.md §5; nearest picks unless ``farthest``). No budget: the rounds are those of
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
    if start < 0 or size < 1:
        raise ArrangementError(f"window needs start >= 0 and size >= 1; got {start}, {size}")
    sel = tma_rounds(train_emb, test_emb, farthest, None, start + size, k, chunk_size)
    pos = np.flatnonzero(sel.rounds >= start)
    params = {"start": start, "size": size, "farthest": farthest, "k": k,
              "rounds_available": sel.n_rounds}
    return make_arrangement("tma-window", ids, tasks, sel.order[pos], params,
                            score=sel.distance[pos], rounds=sel.rounds[pos],
                            extra={"test_index": sel.test_index[pos]})
