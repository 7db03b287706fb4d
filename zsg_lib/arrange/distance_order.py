"""NFT / FFT / RT: order by distance to the test set (PAPER.md §3), fine or coarse (§4)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import ArrangementError
from ..similarity import (
    DEFAULT_CHUNK,
    check_embeddings,
    check_weight,
    distance_stats,
    normalise_rows,
    ot_cost,
)
from .base import (
    Arrangement,
    check_int,
    check_rows,
    check_seed,
    ids_and_tasks,
    make_arrangement,
    require_tasks,
)

Order = Literal["nft", "fft", "rt"]
Measure = Literal["wsd", "ad", "md", "ot"]


def _scores(train_emb, test_emb, measure: Measure, w_avg, chunk_size) -> tuple[np.ndarray, dict]:
    """One score per row of ``train_emb`` (lower = nearer to the test set)."""
    if measure == "ot":
        oc = ot_cost(train_emb, test_emb)
        return oc.per_train, {"ot_total": oc.total}
    if measure not in ("wsd", "ad", "md"):
        raise ArrangementError(f"measure must be one of wsd, ad, md, ot; got {measure!r}")
    st = distance_stats(train_emb, test_emb, w_avg=w_avg, chunk_size=chunk_size)
    return getattr(st, measure), {"w_avg": st.w_avg, "w_min": st.w_min}


def _rank(scores: np.ndarray, order: Order, rng: np.random.Generator) -> np.ndarray:
    """Indices: ascending (nft), descending (fft) or shuffled (rt); ties keep lower index."""
    if order == "nft":
        return np.argsort(scores, kind="stable")
    if order == "fft":
        return np.argsort(-scores, kind="stable")
    if order == "rt":
        return rng.permutation(len(scores))
    raise ArrangementError(f"order must be 'nft', 'fft' or 'rt'; got {order!r}")


def by_similarity(
    train: pa.Table | pd.DataFrame,
    train_emb: np.ndarray,
    test_emb: np.ndarray,
    order: Order = "nft",
    granularity: Literal["fine", "coarse"] = "fine",
    seed: int = 0,
    w_avg: float | None = None,
    measure: Measure = "wsd",
    chunk_size: int = DEFAULT_CHUNK,
) -> Arrangement:
    """Training order by distance to the test set.

    ``order``: ``nft`` nearest first (score ascending), ``fft`` farthest first, ``rt``
    random (seeded; scores still recorded). ``measure``: ``wsd`` (default, PAPER.md §3),
    ``ad``, ``md`` or ``ot`` (per-instance optimal-transport cost, dense; small sets).
    Ties keep training-table order.

    ``granularity="fine"`` orders instances and works without task labels.
    ``granularity="coarse"`` (needs tasks): a task's embedding is the mean of its instances'
    unit embeddings; tasks are ordered by the score of that mean (WSD's default ``w_avg``
    computed over tasks), and a task's instances stay together, shuffled with ``seed``.

    >>> from zsg_lib.schema import instances_from_records
    >>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    >>> train = instances_from_records(
    ...     [{"id": f"x{i}", "task": "ab"[i % 2], "messages": msgs} for i in range(4)])
    >>> train_emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [-1.0, 0.2]])
    >>> test_emb = np.array([[1.0, 0.0]])
    >>> by_similarity(train, train_emb, test_emb, "nft").ids
    ['x0', 'x2', 'x1', 'x3']
    >>> by_similarity(train, train_emb, test_emb, "fft").ids
    ['x3', 'x1', 'x2', 'x0']
    >>> [t for t in by_similarity(train, train_emb, test_emb, "nft", "coarse").table["task"]]
    ['a', 'a', 'b', 'b']
    """
    ids, tasks = ids_and_tasks(train)
    check_rows(train_emb, len(ids), "train_emb")
    check_embeddings(test_emb, "test_emb", dim=train_emb.shape[1])
    seed, w_avg = check_seed(seed), check_weight(w_avg, "w_avg")
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    rng = np.random.default_rng(seed)
    params = {"order": order, "granularity": granularity, "seed": seed, "measure": measure,
              "w_avg": w_avg}
    name = order if granularity == "fine" else f"coarse-{order}"
    if granularity == "fine":
        scores, info = _scores(train_emb, test_emb, measure, w_avg, chunk_size)
        idx = _rank(scores, order, rng)
        return make_arrangement(name, ids, tasks, idx, {**params, **info}, score=scores[idx])
    if granularity != "coarse":
        raise ArrangementError(f"granularity must be 'fine' or 'coarse'; got {granularity!r}")
    require_tasks(name, tasks)
    names = sorted(set(tasks))
    task_ix = {t: k for k, t in enumerate(names)}
    codes = np.array([task_ix[t] for t in tasks])
    means = np.zeros((len(names), train_emb.shape[1]), np.float64)
    for start in range(0, len(ids), chunk_size):  # chunked: train_emb may be a memmap
        block = normalise_rows(train_emb[start : start + chunk_size], "train_emb", start)
        np.add.at(means, codes[start : start + chunk_size], block)
    means /= np.bincount(codes, minlength=len(names))[:, None]
    if not (np.linalg.norm(means, axis=1) > 0).all():
        raise ArrangementError("coarse: a task's mean embedding is zero (its instances cancel)")
    task_scores, info = _scores(means, test_emb, measure, w_avg, chunk_size)
    rank = _rank(task_scores, order, rng)
    by_code = np.argsort(codes, kind="stable")  # rows grouped by task, table order inside
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(names)))])
    order_ix, block_no = [], []
    for b, t in enumerate(rank):
        rows = rng.permutation(by_code[bounds[t] : bounds[t + 1]])
        order_ix.append(rows)
        block_no.append(np.full(len(rows), b))
    order_ix = np.concatenate(order_ix)
    return make_arrangement(name, ids, tasks, order_ix, {**params, **info},
                            score=task_scores[codes[order_ix]], rounds=np.concatenate(block_no))
