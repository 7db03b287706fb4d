"""Nearest training instances of each test instance: fast float32 screen, exact decisions.

**What "nearest" means, exactly.** Both sets are first turned into float32 unit rows by
:func:`zsg_lib.similarity.normalise_rows`. The similarity of a pair is the dot product of
those two float32 vectors computed in float64 and rounded to float32 (:func:`exact_scores`).
A float64 dot product of float32 inputs is exact to ~1e-16, so this value does not depend on
BLAS, chunking or summation order; ties between equal values go to the lower training index.
A direct implementation computing the same values gets the same answers, on any machine.

**How it is fast.** The full ``N x M`` float32 product is computed block by block with BLAS
(the only O(N·M·dim) work) and used as a *screen*: its values are within ``margin(dim)`` of
the exact ones (the float32 dot-product error bound ``dim · 2^-24`` for unit vectors, doubled
for safety). :func:`screen_topk` keeps, per test row, the k best screened candidates plus a
``floor``: every training row whose screened value is ``>= floor`` is in the list. A caller
that needs the exact best among unused candidates takes the band of candidates whose screened
values are within ``2 · margin`` of the best screened one — the exact winner must be in it —
and rescores only that band exactly (usually one or two rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ArrangementError
from ..similarity import DEFAULT_CHUNK, check_embeddings, iter_similarity_blocks, normalise_rows

_PAD = np.uint64(np.iinfo(np.uint64).max)  # an empty slot in a candidate list
_LOW32 = np.uint64(0xFFFFFFFF)


def margin(dim: int) -> float:
    """Bound on |float32 BLAS dot - exact value| for unit vectors of ``dim`` entries."""
    return 2.0 * (dim + 2) * 2.0**-24


def exact_scores(
    train_emb: np.ndarray, rows: np.ndarray, test_unit: np.ndarray, farthest: bool = False
) -> np.ndarray:
    """Exact similarity (float32-rounded float64 dot of unit rows) of ``train_emb[rows]`` to
    one normalised test vector; negated when ``farthest`` (higher = preferred).

    >>> train = np.array([[3.0, 4.0], [1.0, 0.0]])
    >>> exact_scores(train, np.array([1, 0]), np.array([1.0, 0.0], np.float32)).tolist()
    [1.0, 0.6000000238418579]
    """
    rows = np.asarray(rows, np.int64)
    order = np.argsort(rows, kind="stable")  # sorted gathers read a memmap sequentially
    block = normalise_rows(np.asarray(train_emb[rows[order]]), "train_emb")
    vals = np.empty(len(rows), np.float32)
    vals[order] = (block.astype(np.float64) @ test_unit.astype(np.float64)).astype(np.float32)
    return -vals if farthest else vals


def _rank_keys(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """uint64 keys whose ascending order is (value descending, index ascending).

    High 32 bits: the float32 value mapped to an order-preserving unsigned integer, then
    inverted; low 32 bits: the index. ``-0.0`` is folded into ``+0.0`` first (they compare
    equal as floats, so they must tie here too).
    """
    u = (values.astype(np.float32) + np.float32(0.0)).view(np.uint32).astype(np.uint64)
    ordered = np.where(u >> np.uint64(31), ~u & _LOW32, u | np.uint64(1 << 31))
    return ((~ordered & _LOW32) << np.uint64(32)) | idx.astype(np.uint64)


def _key_values(keys: np.ndarray) -> np.ndarray:
    """The float32 values encoded in :func:`_rank_keys` keys."""
    ordered = ~(keys >> np.uint64(32)) & _LOW32
    u = np.where(ordered >> np.uint64(31), ordered & np.uint64(0x7FFFFFFF), ~ordered)
    return (u & _LOW32).astype(np.uint32).view(np.float32)


def _sparse_nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a mostly-False C-contiguous 2-D mask, several times faster.

    Scans the mask as 64-bit words (8 entries each) and expands only nonzero words.

    >>> [a.tolist() for a in _sparse_nonzero(np.eye(3, dtype=bool))]
    [[0, 1, 2], [0, 1, 2]]
    """
    flat = mask.reshape(-1)
    whole = flat.size // 8 * 8
    words = np.flatnonzero(flat[:whole].view(np.uint64))
    wr, wc = np.nonzero(flat[:whole].reshape(-1, 8)[words])
    pos = words[wr] * 8 + wc
    if whole < flat.size:
        pos = np.concatenate([pos, whole + np.flatnonzero(flat[whole:])])
    return np.divmod(pos, mask.shape[1])


@dataclass(frozen=True)
class Screened:
    """Per test row: candidate training indices and their screened (float32 BLAS) scores,
    sorted by (score desc, index asc), and ``floor``: every training row not excluded whose
    screened score is ``>= floor[j]`` is in row j's list (``-inf``: the list is complete)."""

    idx: list[np.ndarray]
    score: list[np.ndarray]
    floor: np.ndarray


def screen_topk(
    train_emb: np.ndarray,
    test_emb: np.ndarray,
    k: int,
    farthest: bool = False,
    exclude: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> Screened:
    """The ``k`` best training rows of each test row by screened score, and their floors.

    Score = cosine similarity (``farthest``: its negative), from chunked float32 BLAS.
    Rows flagged in the boolean ``exclude`` (length N) are skipped. Each block keeps only
    entries at or above its test row's running k-th best score (the first block uses its own
    k-th value); survivors are encoded as uint64 keys ordering (score desc, index asc) and
    merged into each row's list by one partition.

    >>> train = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    >>> sc = screen_topk(train, np.array([[1.0, 0.0]]), k=3)
    >>> sc.idx[0].tolist(), sc.score[0].tolist()
    ([0, 1, 2], [1.0, 1.0, 0.0])
    >>> screen_topk(train, np.array([[1.0, 0.0]]), k=2, farthest=True).idx[0].tolist()
    [3, 2]
    """
    if k < 1:
        raise ArrangementError(f"k must be >= 1, got {k}")
    m = check_embeddings(test_emb, "test_emb").shape[0]
    n = check_embeddings(train_emb, "train_emb", dim=test_emb.shape[1]).shape[0]
    if n >= 2**32:
        raise ArrangementError("at most 2**32 - 1 training rows are supported")
    if exclude is not None and len(exclude) != n:
        raise ArrangementError(f"exclude has length {len(exclude)}, expected {n}")
    best = np.full((m, k), _PAD, np.uint64)  # per row: the k smallest keys seen (unsorted)
    thr = np.full(m, -np.inf, np.float32)  # k-th best score per row once a row is full
    full = np.zeros(m, bool)
    for start, s in iter_similarity_blocks(train_emb, test_emb, chunk_size, test_major=True):
        if farthest:
            np.negative(s, out=s)
        if exclude is not None:
            s[:, exclude[start : start + s.shape[1]]] = -np.inf
        row_thr = thr
        if not full.all() and s.shape[1] > k:
            # rows not yet full: nothing below this block's own k-th value can make the top k
            local = np.partition(s, s.shape[1] - k, axis=1)[:, s.shape[1] - k]
            row_thr = np.where(full, thr, local)
        mask = s >= row_thr[:, None]  # >=: every tie at the boundary survives
        if exclude is not None:
            mask &= s > -np.inf
        rows, cols = _sparse_nonzero(mask)
        if rows.size == 0:
            continue
        keys = _rank_keys(s[rows, cols], cols + start)
        counts = np.bincount(rows, minlength=m)
        slot = np.arange(rows.size) - (np.cumsum(counts) - counts)[rows]
        extra = np.full((m, int(counts.max())), _PAD, np.uint64)
        extra[rows, slot] = keys
        best = np.partition(np.concatenate([best, extra], axis=1), k - 1, axis=1)[:, :k]
        full = best[:, k - 1] != _PAD
        thr = np.where(full, _key_values(best[:, k - 1]), np.float32(-np.inf)).astype(np.float32)
    best.sort(axis=1)
    # a full row holds every entry scoring above its k-th score (ties at it: lower indices);
    # when k covers every row that is not excluded, every list is complete
    available = n if exclude is None else n - int(np.count_nonzero(exclude))
    full &= k < available
    floor = np.where(full, np.nextafter(thr, np.float32(np.inf)), np.float32(-np.inf))
    idx, score = [], []
    for r in best:
        r = r[r != _PAD]
        idx.append((r & _LOW32).astype(np.int64))
        score.append(_key_values(r))
    return Screened(idx=idx, score=score, floor=floor.astype(np.float32))


def nearest_exact(
    train_emb: np.ndarray,
    test_emb: np.ndarray,
    k: int,
    farthest: bool = False,
    exclude: np.ndarray | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> list[np.ndarray]:
    """The ``k`` nearest training rows of each test row in exact order (see module doc):
    the screened lists, rescored exactly and re-sorted by (exact score desc, index asc).

    Meant for looking (a notebook's "nearest training instances"). Rarely, fewer than ``k``
    rows come back: when many near-equal scores cross the k-th place, only the prefix whose
    order is proven is returned.

    >>> train = np.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [-1.0, 0.0]])
    >>> [r.tolist() for r in nearest_exact(train, np.array([[1.0, 0.0], [0.0, 1.0]]), k=2)]
    [[0, 2], [1, 2]]
    """
    # screen a few more than k: the last places of a screened list are never provable
    sc = screen_topk(train_emb, test_emb, k + max(8, k // 4), farthest, exclude, chunk_size)
    test_n = normalise_rows(test_emb, "test_emb")
    out = []
    for j in range(len(sc.idx)):
        idx = sc.idx[j]
        if len(idx) == 0:
            out.append(idx)
            continue
        exact = exact_scores(train_emb, idx, test_n[j], farthest)
        order = np.lexsort((idx, -exact))
        # a row not in the list scores (exactly) below floor + margin: candidates at or above
        # that are provably placed right; the first one below it ends the proven prefix
        safe = exact[order] >= sc.floor[j] + np.float32(margin(test_n.shape[1]))
        cut = len(order) if safe.all() else int(np.argmin(safe))
        out.append(idx[order][: min(cut, k)])
    return out
