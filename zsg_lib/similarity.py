"""Distances between training and test embeddings (PAPER.md §3), computed in chunks.

The distance between training instance *i* and test instance *j* is the **negative cosine
similarity** ``d(i, j) = -cos(e_i, e_j)``. Per training instance:

* ``AD_i = mean_j d(i, j)`` (average distance to the test set),
* ``MD_i = min_j d(i, j)`` (distance to the nearest test instance),
* ``WSD_i = w_avg * AD_i + w_min * MD_i`` with ``w_min = 1`` and, by default,
  ``w_avg = mean_i(MD_i) / mean_i(AD_i)``.

The formula is followed literally. With negative cosine both means are usually negative, so
the default ``w_avg`` is positive (the two terms get the same scale); if ``mean(AD)`` is
exactly zero the default weight is undefined and :class:`ArrangementError` is raised.

Every function here works on ``(n, dim)`` float arrays (NumPy arrays or ``np.memmap``),
normalises rows itself (cosine), and never materialises the full ``N x M`` matrix: training
rows are processed ``chunk_size`` at a time, so peak memory is the inputs plus one
``chunk_size x M`` block. Values come from float32 BLAS (error ~1e-6 for 384-d unit vectors);
orders that must be exact (TMA) use the exact similarity of :mod:`zsg_lib.arrange.neighbours`.
NaN/inf rows and zero-norm rows are rejected with :class:`ArrangementError` naming the row.

The paper's third measure, "a KL-based one", is not over embeddings: the authors' script
(``src/calculate_dataset_similarity_per_task_kl.py``) compares the word-bigram distributions
of the two sets' *texts*; :func:`kl_distance` follows it.

>>> rng = np.random.default_rng(0)
>>> train, test = rng.normal(size=(6, 8)), rng.normal(size=(3, 8))
>>> st = distance_stats(train, test, chunk_size=4)
>>> st.ad.shape, st.md.shape, st.wsd.shape
((6,), (6,), (6,))
>>> bool(np.all(st.md <= st.ad + 1e-6))
True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ArrangementError

DEFAULT_CHUNK = 8192  # rows of train per block: ~8192 x 1125 float32 = 37 MB, cache-friendly BLAS


def check_embeddings(emb: np.ndarray, name: str, dim: int | None = None) -> np.ndarray:
    """Check shape (2-D, non-empty, ``dim`` columns) and return ``emb`` unchanged.

    Finiteness and norms are checked per chunk in :func:`normalise_rows` (no full copy).

    >>> check_embeddings([[1.0, 0.0]], "train_emb")
    Traceback (most recent call last):
    ...
    zsg_lib.errors.ArrangementError: train_emb: expected a NumPy array (n, dim), got list; pass np.asarray(train_emb, dtype=np.float32)
    """
    if isinstance(emb, (list, tuple)):
        raise ArrangementError(f"{name}: expected a NumPy array (n, dim), got "
                               f"{type(emb).__name__}; pass np.asarray({name}, dtype=np.float32)")
    if not hasattr(emb, "ndim") or emb.ndim != 2:
        raise ArrangementError(f"{name}: expected a 2-D (n, dim) array, got {type(emb).__name__}"
                               f" with shape {getattr(emb, 'shape', None)}")
    dtype = getattr(emb, "dtype", None)
    if dtype is None or dtype == np.bool_ or not (np.issubdtype(dtype, np.integer)
                                                   or np.issubdtype(dtype, np.floating)):
        raise ArrangementError(f"{name}: expected real numbers (a float array), got dtype "
                               f"{dtype}")
    if emb.shape[0] == 0:
        raise ArrangementError(f"{name}: empty (no rows)")
    if emb.shape[1] == 0:
        raise ArrangementError(f"{name}: zero-dimensional embeddings")
    if dim is not None and emb.shape[1] != dim:
        raise ArrangementError(
            f"{name}: embedding dimension {emb.shape[1]} does not match the other set's {dim}"
        )
    return emb


def check_weight(value: float | None, name: str, optional: bool = True) -> float | None:
    """A WSD weight: a finite real number (``None`` = the default, when ``optional``).

    >>> check_weight(float("nan"), "w_avg")
    Traceback (most recent call last):
    ...
    zsg_lib.errors.ArrangementError: w_avg: expected a finite number (or None for the default), got nan
    """
    if value is None and optional:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ArrangementError(f"{name}: expected a finite number (or None for the default), "
                               f"got {type(value).__name__} {value!r}")
    if not np.isfinite(value):
        raise ArrangementError(f"{name}: expected a finite number (or None for the default), "
                               f"got {value!r}")
    return float(value)


def normalise_rows(block: np.ndarray, name: str = "embeddings", offset: int = 0) -> np.ndarray:
    """Rows of ``block`` as float32 unit vectors (a new array).

    Raises :class:`ArrangementError` on a non-finite or zero-norm row; ``offset`` is added to
    the row number in the message (for chunks).

    >>> normalise_rows(np.array([[3.0, 4.0]]))
    array([[0.6, 0.8]], dtype=float32)
    """
    x = np.asarray(block, dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0]) + offset
        raise ArrangementError(f"{name}: row {row} has a NaN or infinite value")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    if not (norms > 0).all():
        row = int(np.flatnonzero(~(norms > 0))[0]) + offset
        raise ArrangementError(f"{name}: row {row} has zero norm (cosine undefined)")
    return x / norms[:, None]


def iter_similarity_blocks(
    train_emb: np.ndarray,
    test_emb: np.ndarray,
    chunk_size: int = DEFAULT_CHUNK,
    test_major: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, S)`` with ``S[a, j] = cos(train[start + a], test[j])``, float32.

    One ``chunk_size x M`` block at a time (``test_major=True``: the C-contiguous
    ``M x chunk_size`` transpose, for per-test-row work); the caller may modify ``S``.
    """
    check_embeddings(train_emb, "train_emb")
    check_embeddings(test_emb, "test_emb", dim=train_emb.shape[1])
    if chunk_size < 1:
        raise ArrangementError(f"chunk_size must be >= 1, got {chunk_size}")
    for start, _, sim in _blocks(train_emb, test_emb, chunk_size, test_major):
        yield start, sim


def _blocks(
    train_emb: np.ndarray, test_emb: np.ndarray, chunk_size: int, test_major: bool
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Like :func:`iter_similarity_blocks`, also yielding the normalised training block."""
    test_n = normalise_rows(test_emb, "test_emb")
    test_t = np.ascontiguousarray(test_n.T)
    for start in range(0, train_emb.shape[0], chunk_size):
        block = normalise_rows(train_emb[start : start + chunk_size], "train_emb", start)
        yield start, block, (test_n @ block.T if test_major else block @ test_t)


def nearest(train_emb: np.ndarray, test_emb: np.ndarray, k: int,
            chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """Indices of the ``k`` training rows most cosine-similar to each test row, nearest first
    (ties to the lower index): the one k-nearest search for looking (maps, tooltips, tables).
    Memory stays ``test x chunk_size``.

    >>> nearest(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([[1.0, 0.2]]), 2).tolist()
    [[0, 2]]
    """
    if k < 1:
        raise ArrangementError(f"nearest: k must be >= 1, got {k}")
    k = min(k, train_emb.shape[0])
    m = test_emb.shape[0]
    best_sim = np.full((m, 0), -np.inf, dtype=np.float32)
    best_idx = np.zeros((m, 0), dtype=np.int64)
    for start, sim in iter_similarity_blocks(train_emb, test_emb, chunk_size, test_major=True):
        idx = np.broadcast_to(np.arange(start, start + sim.shape[1]), sim.shape)
        all_sim = np.concatenate([best_sim, sim], axis=1)
        all_idx = np.concatenate([best_idx, idx], axis=1)
        # similarity descending, then index ascending (lexsort: the last key is primary)
        order = np.lexsort((all_idx, -all_sim), axis=1)[:, :k]
        best_sim = np.take_along_axis(all_sim, order, axis=1)
        best_idx = np.take_along_axis(all_idx, order, axis=1)
    return best_idx


@dataclass(frozen=True)
class DistanceStats:
    """Per-training-instance distances to the test set (arrays of length N, float64)."""

    ad: np.ndarray
    md: np.ndarray
    wsd: np.ndarray
    w_avg: float
    w_min: float


def distance_stats(
    train_emb: np.ndarray,
    test_emb: np.ndarray,
    w_avg: float | None = None,
    w_min: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK,
) -> DistanceStats:
    """AD, MD and WSD of every training instance (PAPER.md §3), chunked over training rows.

    ``w_avg=None`` uses the paper's default ``mean(MD) / mean(AD)``.

    >>> train = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    >>> test = np.array([[1.0, 0.0], [1.0, 1.0]])
    >>> st = distance_stats(train, test, w_avg=1.0)
    >>> np.round(st.md, 3).tolist(), np.round(st.ad, 3).tolist()
    ([-1.0, -0.707, 0.707], [-0.854, -0.354, 0.854])
    >>> np.round(st.wsd, 3).tolist()
    [-1.854, -1.061, 1.561]
    """
    n = check_embeddings(train_emb, "train_emb").shape[0]
    check_embeddings(test_emb, "test_emb", dim=train_emb.shape[1])
    w_avg = check_weight(w_avg, "w_avg")
    w_min = check_weight(w_min, "w_min", optional=False)
    ad = np.empty(n, dtype=np.float64)
    md = np.empty(n, dtype=np.float64)
    # mean_j cos(i, j) = e_i . mean_j(e_j) for unit rows: AD needs one vector, not the block
    test_mean = normalise_rows(test_emb, "test_emb").astype(np.float64).mean(axis=0)
    if chunk_size < 1:
        raise ArrangementError(f"chunk_size must be >= 1, got {chunk_size}")
    for start, block, sim in _blocks(train_emb, test_emb, chunk_size, test_major=False):
        stop = start + sim.shape[0]
        ad[start:stop] = -(block @ test_mean)
        md[start:stop] = -sim.max(axis=1)
    if w_avg is None:
        mean_ad = float(ad.mean())
        if mean_ad == 0.0:
            raise ArrangementError("default w_avg = mean(MD)/mean(AD) is undefined: mean(AD) is 0;"
                                   " pass w_avg explicitly")
        w_avg = float(md.mean()) / mean_ad
    return DistanceStats(ad=ad, md=md, wsd=w_avg * ad + w_min * md, w_avg=float(w_avg),
                         w_min=float(w_min))


@dataclass(frozen=True)
class OTCost:
    """Optimal-transport cost between the training and the test set.

    ``total``: the OT cost (uniform mass on each set, ground cost ``1 - cos``).
    ``per_train``: each training instance's share, ``N * sum_j P_ij C_ij`` — the mean cost of
    moving that instance's mass to the test set; ``per_train.mean() == total``.
    """

    total: float
    per_train: np.ndarray


def ot_cost(
    train_emb: np.ndarray,
    test_emb: np.ndarray,
    reg: float | None = None,
    max_cells: int = 50_000_000,
) -> OTCost:
    """The paper's alternative measure: optimal transport (POT) between the two sets.

    Both sets carry uniform mass; the ground cost is ``1 - cos`` (the paper's ``d`` shifted
    by 1 so costs are non-negative; the optimal plan is the same). ``reg=None`` solves the
    exact problem (``ot.emd``); a positive ``reg`` uses entropic Sinkhorn (faster, smoother).
    Unlike :func:`distance_stats` this needs the dense ``N x M`` cost matrix: sets with more
    than ``max_cells`` pairs raise :class:`ArrangementError`. Lower ``per_train`` = nearer.

    >>> train = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.1]])
    >>> test = np.array([[1.0, 0.0], [0.9, 0.1]])
    >>> oc = ot_cost(train, test)
    >>> int(np.argmax(oc.per_train)), bool(np.isclose(oc.per_train.mean(), oc.total))
    (2, True)
    """
    import ot  # POT; imported here so the module loads fast

    check_embeddings(train_emb, "train_emb")
    check_embeddings(test_emb, "test_emb", dim=train_emb.shape[1])
    n, m = train_emb.shape[0], test_emb.shape[0]
    if n * m > max_cells:
        raise ArrangementError(
            f"ot_cost needs the dense {n} x {m} cost matrix ({n * m:,} cells > max_cells="
            f"{max_cells:,}); subsample or raise max_cells"
        )
    a_n = normalise_rows(train_emb, "train_emb").astype(np.float64)
    b_n = normalise_rows(test_emb, "test_emb").astype(np.float64)
    cost = np.clip(1.0 - a_n @ b_n.T, 0.0, None)  # clip rounding below 0
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    plan = (ot.emd(a, b, cost) if reg is None
            else ot.sinkhorn(a, b, cost, reg, method="sinkhorn_log", numItermax=100_000))
    per_train = n * (plan * cost).sum(axis=1)
    return OTCost(total=float((plan * cost).sum()), per_train=per_train)


def check_texts(texts: Sequence[str], name: str) -> list[str]:
    """``texts`` as a list: a non-empty sequence of strings (one per instance).

    >>> check_texts("a b", "train_texts")
    Traceback (most recent call last):
    ...
    zsg_lib.errors.ArrangementError: train_texts: expected a sequence of texts (one per instance), got one str
    """
    if isinstance(texts, (str, bytes)):
        raise ArrangementError(f"{name}: expected a sequence of texts (one per instance), got "
                               f"one {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ArrangementError(f"{name}: empty (no texts)")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ArrangementError(f"{name}: text {i} is {type(t).__name__}, not str")
    return texts


def ngram_codes(texts: Sequence[str], vocab: dict[tuple[str, ...], int], n: int = 2,
                name: str = "texts") -> list[np.ndarray]:
    """Each text's word ``n``-grams as integer codes (one per occurrence, in order).

    Words are ``text.split()`` (whitespace), as in the authors' script. ``vocab`` maps an
    n-gram to its code and grows with unseen n-grams, so two sets coded with the same
    ``vocab`` share codes. A text of fewer than ``n`` words has no n-grams.

    >>> vocab = {}
    >>> [c.tolist() for c in ngram_codes(["a b c", "b c", "a"], vocab)]
    [[0, 1], [1], []]
    >>> vocab
    {('a', 'b'): 0, ('b', 'c'): 1}
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ArrangementError(f"n: expected an n-gram order >= 1, got {n!r}")
    out = []
    for text in check_texts(texts, name):
        words = text.split()
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        out.append(np.fromiter((vocab.setdefault(g, len(vocab)) for g in grams),
                               dtype=np.int64, count=len(grams)))
    return out


def ngram_distribution(codes: Sequence[np.ndarray], size: int, name: str) -> np.ndarray:
    """The relative frequency of each of ``size`` codes over all of ``codes`` (sums to 1).

    >>> ngram_distribution([np.array([0, 1]), np.array([1])], 3, "texts").round(3).tolist()
    [0.333, 0.667, 0.0]
    """
    counts = np.bincount(np.concatenate([np.asarray(c, dtype=np.int64) for c in codes]),
                         minlength=size).astype(np.float64)
    if counts.sum() == 0:
        raise ArrangementError(f"{name}: no word n-grams (every text is shorter than n words);"
                               " the n-gram distribution is undefined")
    return counts / counts.sum()


KL_EPS = 1e-10  # the authors' smoothing of q and floor of the ratio p / q


def kl_terms(p: np.ndarray, q: np.ndarray, eps: float = KL_EPS) -> np.ndarray:
    """``log(max(p / (q + eps), eps))`` per n-gram, the authors' smoothed log-ratio (0 where
    ``p`` is 0: those n-grams add nothing to the sum).

    >>> kl_terms(np.array([0.5, 0.5, 0.0]), np.array([1.0, 0.0, 0.0])).round(3).tolist()
    [-0.693, 22.333, 0.0]
    """
    out = np.zeros_like(p, dtype=np.float64)
    seen = p > 0
    out[seen] = np.log(np.clip(p[seen] / (q[seen] + eps), eps, None))
    return out


@dataclass(frozen=True)
class KLDistance:
    """The KL divergence from the training set's word n-gram distribution to the test set's.

    ``total``: ``KL(p || q) = sum_g p_g log(max(p_g / (q_g + eps), eps))``.
    ``per_train``: each training instance's share, ``N * sum over its n-gram occurrences of
    log-ratio / (n-grams in the training set)``; ``per_train.mean() == total``. Longer
    instances carry more of ``p``'s mass, so they get a larger share (of either sign).
    """

    total: float
    per_train: np.ndarray


def kl_distance(train_texts: Sequence[str], test_texts: Sequence[str], n: int = 2,
                eps: float = KL_EPS) -> KLDistance:
    """The paper's "KL-based" measure: ``KL(p || q)`` between word ``n``-gram distributions.

    The authors' form, from ``src/calculate_dataset_similarity_per_task_kl.py`` in
    github.com/thunlp/Dynamics-of-Zero-Shot-Generalization: ``p`` is the bigram (``n = 2``)
    distribution of the training texts (the instances' turns joined by a space, split on
    whitespace), ``q`` that of the test texts, and
    ``KL = sum_g p_g log(clip(p_g / (q_g + 1e-10), 1e-10))`` — ``q`` smoothed by ``eps`` so
    n-grams absent from the test set cost ``log(p_g / eps)`` instead of infinity. It is over
    texts, not embeddings: the script names no embedding-based KL. One difference: the
    script sums over its list of every n-gram *occurrence* in the pooled texts (repeats
    included), so each distinct n-gram's term there counts once per occurrence; here each
    distinct n-gram counts once: the KL divergence the script names. Values therefore differ
    from those in the authors' plots. Lower = the training text is more like the test text.

    >>> kd = kl_distance(["a b", "c d"], ["a b"])
    >>> kd.per_train.round(3).tolist(), round(kd.total, 3)
    ([-0.693, 22.333], 10.82)
    """
    vocab: dict[tuple[str, ...], int] = {}
    train = ngram_codes(train_texts, vocab, n, "train_texts")
    test = ngram_codes(test_texts, vocab, n, "test_texts")
    eps = check_weight(eps, "eps", optional=False)
    if not eps > 0:
        raise ArrangementError(f"eps: expected a positive smoothing constant, got {eps}")
    p = ngram_distribution(train, len(vocab), "train_texts")
    q = ngram_distribution(test, len(vocab), "test_texts")
    terms = kl_terms(p, q, eps)
    lengths = np.array([len(c) for c in train])
    owner = np.repeat(np.arange(len(train)), lengths)
    # sum_i (per-occurrence terms of i) / C = sum_g p_g term_g: the shares add up to the KL
    per_train = len(train) * np.bincount(owner, weights=terms[np.concatenate(train)],
                                         minlength=len(train)) / lengths.sum()
    return KLDistance(total=float(p @ terms), per_train=per_train)
