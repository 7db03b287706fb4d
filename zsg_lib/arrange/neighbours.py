"""TMA's nearest-candidate screen: a fast bfloat16 product, exact decisions.

**What "nearest" means, exactly.** Both sets are first turned into float32 unit rows by
:func:`zsg_lib.similarity.normalise_rows`. The similarity of a pair is the dot product of
those two float32 vectors computed in float64 and rounded to float32 (:func:`exact_pairs`).
A float64 dot product of float32 inputs is exact to ~1e-16, so this value does not depend on
BLAS, chunking or summation order; ties between equal values go to the lower training index
(:func:`rank_keys`). A direct implementation computing the same values gets the same answers,
on any machine.

**How it is fast** (:func:`screen_candidates`): a bfloat16 product (about twice the float32
speed on AVX512-BF16 CPUs) with a per-test-row error bound screens the candidates, thresholds
set from a sample, and float32 scores only for the candidates kept; a caller rescores exactly
only the band of candidates the bound cannot separate (usually one or two rows).

For a plain "k nearest" look (a notebook, a map), use :func:`zsg_lib.similarity.nearest`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..similarity import DEFAULT_CHUNK, normalise_rows

_LOW32 = np.uint64(0xFFFFFFFF)


def margin(dim: int) -> float:
    """Bound on |float32 BLAS dot - exact value| for unit vectors of ``dim`` entries."""
    return 2.0 * (dim + 2) * 2.0**-24


def rank_keys(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """uint64 keys whose ascending order is (value descending, index ascending).

    High 32 bits: the float32 value mapped to an order-preserving unsigned integer, then
    inverted; low 32 bits: the index. ``-0.0`` is folded into ``+0.0`` first (they compare
    equal as floats, so they must tie here too).
    """
    u = (values.astype(np.float32) + np.float32(0.0)).view(np.uint32).astype(np.uint64)
    ordered = np.where(u >> np.uint64(31), ~u & _LOW32, u | np.uint64(1 << 31))
    return ((~ordered & _LOW32) << np.uint64(32)) | idx.astype(np.uint64)


def _key_values(keys: np.ndarray) -> np.ndarray:
    """The float32 values encoded in :func:`rank_keys` keys."""
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


# --- bf16 candidate screen (used by TMA) ------------------------------------------------------

_SAMPLE = 4096  # fewest training rows sampled to set each test row's screening threshold
_KEEP_BYTES = 512 * 2**20  # keep normalised (+ bf16) training rows in memory up to this size
# |a - bf16(a)| <= 2^-8 |a| (round to nearest, 8 significant bits), |a| <= 1 + 2^-16
_DA_BOUND = 2.0**-8 * (1 + 2.0**-16)
_ONE_BLOCK_BYTES = 256 * 2**20  # largest bf16 similarity block computed in one matmul


class TrainPrep:
    """Normalised training rows (float32 and bf16) kept for repeated screens, when they fit
    in ``_KEEP_BYTES`` (else every screen normalises chunk by chunk again). ``da_norm``
    bounds ``|a - bf16(a)|`` for every row (round to nearest: at most ``2^-8 |a|``)."""

    def __init__(self, train_emb: np.ndarray, chunk_size: int = DEFAULT_CHUNK):
        n, dim = train_emb.shape
        self.train_emb, self.chunk_size = train_emb, chunk_size
        self.unit = self.bf16 = None
        self.m_hint = 1  # test rows of the next screen (sizes the similarity block)
        self.da_norm = _DA_BOUND
        if n * dim * 6 <= _KEEP_BYTES:
            unit = np.empty((n, dim), np.float32)
            for s in range(0, n, chunk_size):
                unit[s : s + chunk_size] = normalise_rows(train_emb[s : s + chunk_size],
                                                          "train_emb", s)
            self.unit = unit
            self.bf16 = torch.from_numpy(unit).bfloat16()
            self.da_norm = _DA_BOUND

    def blocks(self):
        """Yield ``(start, unit float32 block, bf16 tensor block, bound on |a - a'|)``."""
        n, cs = self.train_emb.shape[0], self.chunk_size
        if self.unit is not None:
            if n * self.m_hint * 2 <= _ONE_BLOCK_BYTES:  # one matmul beats several
                yield 0, self.unit, self.bf16, self.da_norm
                return
            for s in range(0, n, cs):
                yield s, self.unit[s : s + cs], self.bf16[s : s + cs], self.da_norm
            return
        for s in range(0, n, cs):
            block = normalise_rows(self.train_emb[s : s + cs], "train_emb", s)
            bb = torch.from_numpy(block).bfloat16()
            yield s, block, bb, _DA_BOUND

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """Normalised float32 training rows (any index shape)."""
        rows = np.asarray(rows, np.int64)
        if self.unit is not None:
            return self.unit[rows]
        u, inv = np.unique(rows, return_inverse=True)  # sorted: sequential memmap reads
        return normalise_rows(np.asarray(self.train_emb[u]), "train_emb")[inv.reshape(rows.shape)]


def exact_pairs(prep: TrainPrep, rows: np.ndarray, test_n: np.ndarray,
                tests: np.ndarray) -> np.ndarray:
    """Exact similarity (see :func:`exact_scores`) of the pairs ``(rows[p], tests[p])``.

    >>> prep = TrainPrep(np.array([[3.0, 4.0], [1.0, 0.0]]))
    >>> exact_pairs(prep, np.array([1, 0]), np.array([[1.0, 0.0]], np.float32),
    ...             np.array([0, 0])).tolist()
    [1.0, 0.6000000238418579]
    """
    rows, tests = np.asarray(rows, np.int64), np.asarray(tests, np.int64)
    out = np.empty(len(rows), np.float32)
    for s in range(0, len(rows), 2048):  # small pieces stay in cache
        a = prep.gather(rows[s : s + 2048]).astype(np.float64)
        out[s : s + 2048] = np.vecdot(a, test_n[tests[s : s + 2048]].astype(np.float64))
    return out


@dataclass
class Candidates:
    """Per test row (``m`` rows, ``width`` slots): candidate training rows from the screen.

    ``idx[j, :length[j]]`` are the kept rows; the first ``scored[j]`` of them carry float32
    BLAS scores in ``value`` (within :func:`margin` of the exact ones; negated when
    ``farthest``) and are sorted by (value desc, index asc); the rest are in screened order
    (``screen``, bf16 values, descending). The first ``proven[j]`` rows, as a set, score
    exactly above every non-excluded row outside them. ``floor[j]``: every row not kept
    screens below it; ``err[j]``: the screen's error bound for that test row.
    """

    idx: np.ndarray  # (m, width) int64
    screen: np.ndarray  # (m, width) float32 (bf16 values), -inf padding
    value: np.ndarray  # (m, width) float32, -inf where not scored
    length: np.ndarray  # (m,) int64
    scored: np.ndarray  # (m,) int64
    proven: np.ndarray  # (m,) int64
    floor: np.ndarray  # (m,) float64
    err: np.ndarray  # (m,) float64

    def exact_limit(self, t: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Exact scores of rows screening at most ``t`` (for test rows ``j``) are below."""
        with np.errstate(invalid="ignore"):  # t = -inf: nothing outside, limit -inf
            lim = t + np.abs(t) * 2.0**-7 * (1 + 2**-6) + 1.25 * self.err[j] + 2.0**-40
        return np.where(np.isneginf(t), -np.inf, lim)

    def score(self, prep: "TrainPrep", test_n: np.ndarray, rows: np.ndarray, upto: np.ndarray,
              farthest: bool) -> None:
        """Score the first ``upto`` kept rows of test rows ``rows`` (float32), re-sort them,
        and update ``proven``."""
        if len(rows) == 0:
            return
        dim = test_n.shape[1]
        w = int(upto.max())
        sub = self.idx[rows, :w]
        v = np.empty(sub.shape, np.float32)
        for s in range(0, len(rows), 64):  # small pieces stay in cache
            g = prep.gather(sub[s : s + 64])
            v[s : s + 64] = np.matmul(g, test_n[rows[s : s + 64]][:, :, None])[:, :, 0]
        v = -v if farthest else v
        v = np.where(np.arange(w) < upto[:, None], v, -np.inf).astype(np.float32)
        keys = np.sort(rank_keys(v, sub), axis=1)
        self.idx[rows, :w] = (keys & _LOW32).astype(np.int64)
        self.value[rows, :w] = _key_values(keys)
        # the scored rows' screened values are re-sorted too: keep them aligned (the rest
        # of each row is untouched and still in screened order)
        scr_rest = np.where(upto < self.length[rows],
                            self.screen[rows, np.minimum(upto, self.screen.shape[1] - 1)],
                            -np.inf)
        self.scored[rows] = upto
        t = np.maximum(self.floor[rows], scr_rest.astype(np.float64))
        lim = self.exact_limit(t, rows)
        above = self.value[rows, :w].astype(np.float64) - margin(dim) > lim[:, None]
        above &= np.arange(w) < upto[:, None]
        pr = np.where(above.all(axis=1), w, np.argmin(above, axis=1))
        complete = np.isneginf(self.floor[rows]) & (upto >= self.length[rows])
        self.proven[rows] = np.where(complete, self.length[rows], pr)


def screen_candidates(
    prep: TrainPrep,
    test_n: np.ndarray,
    k: int,
    farthest: bool = False,
    exclude: np.ndarray | None = None,
    first_scored: int | None = None,
) -> Candidates:
    """Screen the pool for about ``k`` best training rows of each (normalised) test row;
    the best ``first_scored`` (default: all) of them are scored in float32 at once.

    **Screen.** Unit rows are rounded to bfloat16 and multiplied with torch (float32
    accumulation, bf16 output; about twice the float32 speed on AVX512-BF16 CPUs). Each test
    row keeps the rows whose screened value reaches a threshold set from a strided sample
    (aiming at ~2k rows), then its ``k`` best by screened value; ``floor`` is the screened
    value that every dropped row is at or below. **Bound.** For a training row ``a`` and test
    row ``b`` (float32 unit vectors) with bf16 roundings ``a'``, ``b'``:
    ``|a'.b' - a.b| <= |a'-a|·|b'| + |a|·|b'-b|`` (Cauchy-Schwarz; the test rows'
    rounding errors are measured, the training rows' bounded by ``2^-8 |a|``), plus the
    float32 accumulation error ``<= (dim+2)·2^-24·|a'||b'|``
    and the output rounding ``<= 2^-7·|value|`` (truncation or round-to-nearest), the sum
    taken 1.25x. A row outside the scored prefix screens at most ``t``, so it scores exactly
    below ``exact_limit(t)``; scored rows whose float32 score minus :func:`margin` is above
    that are proven.

    >>> train = np.array([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [-1.0, 0.0]], np.float32)
    >>> c = screen_candidates(TrainPrep(train), np.array([[1.0, 0.0]], np.float32), k=2)
    >>> c.idx[0].tolist(), int(c.proven[0])
    ([0, 2], 2)
    """
    m, dim = test_n.shape
    n = prep.train_emb.shape[0]
    available = n if exclude is None else n - int(np.count_nonzero(exclude))
    xt = torch.from_numpy(np.ascontiguousarray(test_n, np.float32))
    xb0 = xt.bfloat16()
    xb = -xb0 if farthest else xb0  # negation is exact
    thr = None
    pool = np.arange(n) if exclude is None else np.flatnonzero(~exclude)
    # about 16 sampled rows at or above each threshold: its count is then within ~25%
    size = int(min(len(pool), max(_SAMPLE, 16 * available // max(2 * k, 1))))
    if 2 * k < available and len(pool) > size:
        pick = pool[np.linspace(0, len(pool) - 1, size).astype(np.int64)]
        q = int(np.clip(round(2.0 * k * size / available), 1, size))
        top = None
        for p0 in range(0, size, 8192):  # in pieces: bounded memory at full scale
            part = pick[p0 : p0 + 8192]
            sb = (prep.bf16[torch.from_numpy(part)] if prep.bf16 is not None else
                  torch.from_numpy(np.ascontiguousarray(prep.gather(part))).bfloat16())
            s = xb @ sb.T
            if top is not None:
                s = torch.cat([top, s], 1)
            top = torch.topk(s, min(q, s.shape[1]), dim=1).values
        thr = top[:, -1].contiguous()
    fast = thr is not None and bool((thr > 0).all())  # int16 view compare needs thr > 0
    thr16 = thr.view(torch.int16).numpy()[:, None] if fast else None
    rows_l, cols_l, scr_l = [], [], []
    da_norm = 0.0
    prep.m_hint = m
    for start, _, bb, da in prep.blocks():
        da_norm = max(da_norm, da)
        if not available:
            continue
        s = xb @ bb.T  # (m, c) bf16
        if thr is None:
            mask = np.ones(tuple(s.shape), bool)
        elif fast:  # positive bf16 values order like their int16 bit patterns
            mask = s.view(torch.int16).numpy() >= thr16
        else:
            mask = (s >= thr[:, None]).numpy()
        r, c = _sparse_nonzero(mask)
        if exclude is not None:
            ok = ~exclude[c + start]
            r, c = r[ok], c[ok]
        rows_l.append(r)
        scr_l.append(s.view(torch.int16).numpy()[r, c])  # bf16 bit patterns
        cols_l.append(c + start)
    r = np.concatenate(rows_l) if rows_l else np.zeros(0, np.int64)
    c = np.concatenate(cols_l) if cols_l else np.zeros(0, np.int64)
    bits = np.concatenate(scr_l) if scr_l else np.zeros(0, np.int16)
    v = (bits.astype(np.int32) << 16).view(np.float32)  # bf16 -> float32, exact
    if fast and m < 2**15 and n < 2**32:  # one uint64 sort key: row, screened desc, index
        key = ((r.astype(np.uint64) << np.uint64(48))
               | ((32767 - bits.astype(np.int64)).astype(np.uint64) << np.uint64(32))
               | c.astype(np.uint64))
        order = np.argsort(key)
    else:
        order = np.lexsort((c, -v, r))  # by test row, screened desc, index
    r, c, v = r[order], c[order], v[order]
    count = np.bincount(r, minlength=m).astype(np.int64)
    slot = np.arange(len(r)) - (np.cumsum(count) - count)[r]
    length = np.minimum(count, k)
    keep = slot < k
    width = int(length.max()) if m and len(r) else 0
    idx = np.zeros((m, width), np.int64)
    screen = np.full((m, width), -np.inf, np.float32)
    idx[r[keep], slot[keep]] = c[keep]
    screen[r[keep], slot[keep]] = v[keep]
    floor = np.full(m, -np.inf) if thr is None else thr.float().double().numpy()
    cut = count > k  # dropped kept rows screen at most the first dropped one's value
    if cut.any():
        first_drop = (np.cumsum(count) - count)[cut] + k
        floor[cut] = np.maximum(floor[cut], v[first_drop].astype(np.float64))
    a_norm = 1.0 + (dim + 4) * 2.0**-23  # norm of a float32-normalised row, at most
    xbf = xb0.float().numpy().astype(np.float64)
    xb_norm = np.sqrt(np.einsum("ij,ij->i", xbf, xbf)) * (1 + 2**-20)
    xd = test_n.astype(np.float64) - xbf  # exact
    xd_norm = np.sqrt(np.einsum("ij,ij->i", xd, xd)) * (1 + 2**-20)
    err = (da_norm * xb_norm + a_norm * xd_norm
           + (dim + 2) * 2.0**-24 * (a_norm + da_norm) * xb_norm)
    cands = Candidates(idx=idx, screen=screen, value=np.full((m, width), -np.inf, np.float32),
                       length=length, scored=np.zeros(m, np.int64),
                       proven=np.zeros(m, np.int64), floor=floor, err=err)
    upto = length if first_scored is None else np.minimum(length, first_scored)
    cands.score(prep, test_n, np.arange(m), upto, farthest)
    return cands


def replace_rows(c: Candidates, rows: np.ndarray, fresh: Candidates) -> Candidates:
    """``c`` with the test rows ``rows`` replaced by ``fresh`` (one row each), widened if
    needed."""
    w = max(c.idx.shape[1], fresh.idx.shape[1])
    pad = lambda a, fill: np.pad(a, ((0, 0), (0, w - a.shape[1])), constant_values=fill)
    idx, screen, value = pad(c.idx, 0), pad(c.screen, -np.inf), pad(c.value, -np.inf)
    fw = fresh.idx.shape[1]
    idx[rows], screen[rows], value[rows] = 0, -np.inf, -np.inf
    idx[rows, :fw], screen[rows, :fw], value[rows, :fw] = fresh.idx, fresh.screen, fresh.value
    out = Candidates(idx=idx, screen=screen, value=value, length=c.length.copy(),
                     scored=c.scored.copy(), proven=c.proven.copy(), floor=c.floor.copy(),
                     err=c.err.copy())
    for name in ("length", "scored", "proven", "floor", "err"):
        getattr(out, name)[rows] = getattr(fresh, name)
    return out
