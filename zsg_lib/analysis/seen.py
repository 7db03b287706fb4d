"""The seen-prefix distance: as training proceeds, how close is what the run has seen so far
to each test task? (PAPER.md, last paragraph: the authors plot it under each task's loss.)

The definitions are the authors' (``src/calculate_dataset_similarity_per_task.py`` with
``CALC_METHOD = "cosine"``, and ``..._kl.py``, in github.com/thunlp/Dynamics-of-Zero-Shot-
Generalization). With ``d(i, j) = -cos(e_i, e_j)`` (the distance of
:mod:`zsg_lib.similarity`; lower = nearer), for the training instances seen by a step
(``P``) and the test instances of a task (``J``):

* ``min``: ``min over i in P, j in J of d(i, j)`` — the single nearest pair;
* ``mean``: ``mean over every pair (i, j) of d(i, j)``;
* ``max``: ``max over every pair of d(i, j)`` — the farthest pair (the script keeps it too);
* ``centroid``: ``-cos(mean_i e_i, mean_j e_j)``, the distance between the two centroids;
* ``kl``: :func:`zsg_lib.similarity.kl_distance` of the seen texts to the task's texts
  (word bigrams; optional, needs the texts).

Rows are unit-normalised before the centroids are taken (the authors' all-MiniLM-L6-v2
embeddings already are). The script scores a prefix every 160 training samples (10 steps of
16); here a prefix is whatever was consumed by each of ``steps`` (``seen_at <= step``).

Nothing is recomputed per step: one pass over the training rows keeps a running maximum and
minimum of each row's per-task cosine and a running sum of the rows (the mean and centroid
cosines are dot products of sums), and one running n-gram count serves every step's ``kl``.

>>> order = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
>>> test = np.array([[1.0, 0.0], [0.0, 1.0]])
>>> sp = seen_prefix(order, [1, 1, 2], test, ["x", "y"], steps=[1, 2])
>>> sp[["step", "task", "n_seen"]].to_numpy().tolist()
[[1, 'x', 2], [1, 'y', 2], [2, 'x', 3], [2, 'y', 3]]
>>> (sp[["min", "mean", "max", "centroid"]].round(3) + 0.0).to_numpy().tolist()  # + 0: no -0.0
[[-1.0, -0.5, 0.0, -0.707], [-1.0, -0.5, 0.0, -0.707], [-1.0, 0.0, 1.0, 0.0], [-1.0, -0.333, 0.0, -1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..similarity import (
    DEFAULT_CHUNK,
    KL_EPS,
    check_embeddings,
    check_weight,
    kl_terms,
    ngram_codes,
    ngram_distribution,
    normalise_rows,
)

COLUMNS = ["step", "task", "n_seen", "min", "mean", "max", "centroid", "kl"]


def consumed_order(log: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """One run's training ids in the order consumed, and the step that consumed each (the
    ``order`` and ``seen_at`` of :func:`seen_prefix`), from its log (``step``,
    ``instance_ids``).

    >>> consumed_order(pd.DataFrame({"step": [2, 1], "instance_ids": [["c"], ["a", "b"]]}))
    (['a', 'b', 'c'], array([1, 1, 2]))
    """
    missing = {"step", "instance_ids"} - set(log.columns)
    if missing:
        raise ValueError(f"log: missing column(s) {sorted(missing)}")
    if log["step"].duplicated().any():
        step = int(log.loc[log["step"].duplicated(), "step"].iloc[0])
        raise ValueError(f"log: step {step} appears twice; pass the log of one run")
    log = log.sort_values("step")
    ids = [str(i) for batch in log["instance_ids"] for i in batch]
    seen_at = np.repeat(log["step"].to_numpy(dtype=np.int64),
                        [len(batch) for batch in log["instance_ids"]])
    return ids, seen_at


def _check_inputs(order_emb: np.ndarray, seen_at: Sequence[int], test_emb: np.ndarray,
                  test_tasks: Sequence[str], steps: Sequence[int]):
    n = check_embeddings(order_emb, "order_emb").shape[0]
    m = check_embeddings(test_emb, "test_emb", dim=order_emb.shape[1]).shape[0]
    seen_at = np.asarray(seen_at)
    if seen_at.shape != (n,) or not np.issubdtype(seen_at.dtype, np.integer):
        raise ValueError(f"seen_at: expected {n} integer steps (one per row of order_emb), got "
                         f"shape {seen_at.shape}, dtype {seen_at.dtype}")
    if n > 1 and (np.diff(seen_at) < 0).any():
        row = int(np.flatnonzero(np.diff(seen_at) < 0)[0]) + 1
        raise ValueError(f"seen_at: must be nondecreasing (rows of order_emb in the order "
                         f"consumed); row {row} has step {seen_at[row]} after {seen_at[row - 1]}")
    tasks = list(test_tasks)
    if len(tasks) != m:
        raise ValueError(f"test_tasks: {len(tasks)} tasks for {m} rows of test_emb")
    for j, t in enumerate(tasks):
        if not isinstance(t, str):
            raise ValueError(f"test_tasks: test instance {j} has task {t!r}; every test "
                             "instance needs a task name")
    steps = np.asarray(steps)
    if steps.ndim != 1 or steps.size == 0 or not np.issubdtype(steps.dtype, np.integer):
        raise ValueError(f"steps: expected a non-empty sequence of integer steps, got {steps!r}")
    return seen_at, tasks, steps


def seen_prefix(order_emb: np.ndarray, seen_at: Sequence[int], test_emb: np.ndarray,
                test_tasks: Sequence[str], steps: Sequence[int],
                order_texts: Sequence[str] | None = None,
                test_texts: Sequence[str] | None = None, n: int = 2, eps: float = KL_EPS,
                chunk_size: int = DEFAULT_CHUNK) -> pd.DataFrame:
    """Per step of ``steps`` × test task: the distance between the training rows seen by that
    step and the task's test rows (see the module docstring for each column).

    ``order_emb`` holds the training instances in the order consumed and ``seen_at[i]`` the
    step that consumed row ``i`` (nondecreasing; :func:`consumed_order` builds both from a
    run's log). A step before anything was seen gives ``n_seen = 0`` and NaN distances;
    ``kl`` is NaN unless both ``order_texts`` and ``test_texts`` are given (or while the seen
    texts have no n-grams yet). Rows: steps in the given order, tasks sorted.
    """
    seen_at, tasks, steps = _check_inputs(order_emb, seen_at, test_emb, test_tasks, steps)
    if chunk_size < 1:
        raise ValueError(f"chunk_size: must be >= 1, got {chunk_size}")
    names, code = np.unique(np.asarray(tasks, dtype=object), return_inverse=True)
    perm = np.argsort(code, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(code[perm]) != 0])
    m_task = np.diff(np.r_[starts, len(code)])
    n_seen = np.searchsorted(seen_at, steps, side="right")
    ends = np.unique(n_seen[n_seen > 0])  # the prefix lengths asked for, ascending

    test_n = normalise_rows(test_emb, "test_emb").astype(np.float64)[perm]
    task_sum = np.add.reduceat(test_n, starts, axis=0)  # T x dim
    hi_cos = np.empty((len(ends), len(names)))  # nearest pair's cosine, per prefix x task
    lo_cos = np.empty((len(ends), len(names)))
    row_sum = np.empty((len(ends), test_n.shape[1]))
    run_hi = np.full(len(names), -np.inf)
    run_lo = np.full(len(names), np.inf)
    run_sum = np.zeros(test_n.shape[1])
    stop_at = int(ends[-1]) if len(ends) else 0  # rows after the last asked prefix are unused
    for start in range(0, stop_at, chunk_size):
        stop = min(start + chunk_size, stop_at)
        block = normalise_rows(order_emb[start:stop], "order_emb", start)
        sim = block.astype(np.float64) @ test_n.T
        # cumulative over rows, seeded with the carry of the previous chunks
        hi = np.maximum.accumulate(
            np.vstack([run_hi, np.maximum.reduceat(sim, starts, axis=1)]), axis=0)[1:]
        lo = np.minimum.accumulate(
            np.vstack([run_lo, np.minimum.reduceat(sim, starts, axis=1)]), axis=0)[1:]
        sums = run_sum + np.cumsum(block, axis=0, dtype=np.float64)
        here = (ends > start) & (ends <= stop)
        rows = ends[here] - 1 - start
        hi_cos[here], lo_cos[here], row_sum[here] = hi[rows], lo[rows], sums[rows]
        run_hi, run_lo, run_sum = hi[-1], lo[-1], sums[-1]

    dots = row_sum @ task_sum.T  # sum over pairs of cos, per prefix x task
    mean_cos = dots / (ends[:, None] * m_task[None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        cen_cos = dots / (np.linalg.norm(row_sum, axis=1)[:, None]
                          * np.linalg.norm(task_sum, axis=1)[None, :])
    kl = _prefix_kl(order_texts, test_texts, code, list(names), ends, order_emb.shape[0], n,
                    eps)

    at = {int(e): k for k, e in enumerate(ends)}
    out = []
    for step, seen in zip(steps.tolist(), n_seen.tolist()):
        k = at.get(seen)
        for t, name in enumerate(names):
            if k is None:
                vals = [np.nan] * 5
            else:
                vals = [-hi_cos[k, t], -mean_cos[k, t], -lo_cos[k, t], -cen_cos[k, t],
                        kl[k, t]]
            out.append([step, name, seen, *[float(v) for v in vals]])
    return pd.DataFrame(out, columns=COLUMNS)


def _prefix_kl(order_texts: Sequence[str] | None, test_texts: Sequence[str] | None,
               code: np.ndarray, names: list[str], ends: np.ndarray, n_order: int, n: int,
               eps: float) -> np.ndarray:
    """``KL(p_prefix || q_task)`` per prefix length in ``ends`` × task, from one running
    n-gram count (NaN throughout without texts)."""
    out = np.full((len(ends), len(names)), np.nan)
    if order_texts is None and test_texts is None:
        return out
    if order_texts is None or test_texts is None:
        given, absent = (("order_texts", "test_texts") if test_texts is None
                         else ("test_texts", "order_texts"))
        raise ValueError(f"{absent}: needed with {given} (kl compares the two sets' texts)")
    eps = check_weight(eps, "eps", optional=False)
    if not eps > 0:
        raise ValueError(f"eps: expected a positive smoothing constant, got {eps}")
    vocab: dict[tuple[str, ...], int] = {}
    order = ngram_codes(order_texts, vocab, n, "order_texts")
    test = ngram_codes(test_texts, vocab, n, "test_texts")
    if len(order) != n_order:
        raise ValueError(f"order_texts: {len(order)} texts for {n_order} rows of order_emb")
    if len(test) != len(code):
        raise ValueError(f"test_texts: {len(test)} texts for {len(code)} rows of test_emb")
    size = len(vocab)
    q = [ngram_distribution([test[j] for j in np.flatnonzero(code == t)], size,
                            f"test_texts of task {name}") for t, name in enumerate(names)]
    support = [np.flatnonzero(qt) for qt in q]
    # KL = sum_p p log p - sum_p p log(q + eps), and sum_g p_g log(q_g + eps) =
    # log(eps) + sum over q's support of p_g log1p(q_g / eps): O(support) per task, not O(V)
    gain = [np.log1p(qt[s] / eps) for qt, s in zip(q, support)]
    counts = np.zeros(size)
    done = 0
    for k, end in enumerate(ends.tolist()):
        if end > done:
            counts += np.bincount(np.concatenate(order[done:end]), minlength=size)
            done = end
        total = counts.sum()
        if total == 0:
            continue
        p = counts / total
        if total * eps * (1 + eps) >= 1:  # the authors' floor on p / (q + eps) may bind
            out[k] = [p @ kl_terms(p, qt, eps) for qt in q]
            continue
        nz = p[p > 0]
        entropy_term = float(nz @ np.log(nz))
        out[k] = [entropy_term - np.log(eps) - p[s] @ g for s, g in zip(support, gain)]
    return out
