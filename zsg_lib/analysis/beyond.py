"""Analyses beyond the paper, cheap enough for a CPU: no extra training runs.

Each takes plain inputs (embeddings, ids, tasks, score tables); the book's
:mod:`zsg_lib.study.chapter_data` hands them a profile's data.

- :func:`ot_vs_wsd`: does the paper's alternative measure (optimal transport) order the
  training data like WSD does?
- :func:`nearest_relatives`: are a test instance's nearest training instances from related
  tasks ("tasks are artificial labels": similarity crosses task boundaries)?
- :func:`similarity_vs_gain`: per test instance, does being close to the training instances a
  run has seen predict how much its loss fell?
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..data.demo import relatives_of
from ..similarity import distance_stats, nearest, ot_cost


def ot_vs_wsd(dist: pd.DataFrame, train_emb: np.ndarray, test_emb: np.ndarray) -> pd.DataFrame:
    """``dist`` (one row per training instance, with ``wsd``) plus its optimal-transport cost
    share ``ot``, and the ranks of both."""
    dist = dist.copy()
    dist["ot"] = ot_cost(train_emb, test_emb).per_train
    dist["wsd_rank"] = dist["wsd"].rank(method="first")
    dist["ot_rank"] = dist["ot"].rank(method="first")
    return dist


def prefix_overlap(a: pd.Series, b: pd.Series, k: int) -> float:
    """Share of the ``k`` lowest of ``a`` that are also among the ``k`` lowest of ``b``.

    >>> prefix_overlap(pd.Series([1, 2, 3, 4]), pd.Series([2, 1, 4, 3]), 2)
    1.0
    """
    top_a = set(a.nsmallest(k).index)
    top_b = set(b.nsmallest(k).index)
    return len(top_a & top_b) / k if k else float("nan")


def rank_agreement(dist: pd.DataFrame, consumed: int) -> dict[str, float]:
    """Spearman ρ of WSD vs OT, and the overlap of their nearest-first prefixes."""
    rho, p = sps.spearmanr(dist["wsd"], dist["ot"])
    k = min(consumed, len(dist))
    return {"spearman_rho": float(rho), "p": float(p), "prefix": k,
            "prefix_overlap": prefix_overlap(dist["wsd"], dist["ot"], k)}


def nearest_relatives(pool_tasks: Sequence[str | None], pool_emb: np.ndarray,
                      test_tasks: Sequence[str | None], test_emb: np.ndarray,
                      families: pd.DataFrame | None = None, k: int = 5) -> pd.DataFrame:
    """Per test instance: the tasks of its ``k`` nearest training instances, and (with a demo
    task table ``families``) how many are the same family / a relative."""
    pool_tasks = np.asarray(pool_tasks, dtype=object)
    near = nearest(pool_emb, test_emb, k)
    fam = rel = None
    if families is not None:
        fam = dict(zip(families["task"], families["family"]))
        rel = relatives_of(families)
    rows = []
    for task, idx in zip(test_tasks, near):
        tasks = pool_tasks[idx].tolist()
        row = {"task": task, "nearest_tasks": ", ".join(dict.fromkeys(tasks))}
        if fam is not None:
            row["family"] = fam.get(task)
            row["has_relative"] = bool(rel.get(task))
            row["share_relative"] = float(np.mean([t in rel.get(task, set()) for t in tasks]))
            row["share_same_family"] = float(np.mean([fam.get(t) == fam.get(task) for t in tasks]))
        rows.append(row)
    return pd.DataFrame(rows)


def similarity_vs_gain(scores: pd.DataFrame, train_ids: Sequence[str], train_emb: np.ndarray,
                       seen: set[str], test_ids: Sequence[str], test_tasks: Sequence[str | None],
                       test_emb: np.ndarray) -> pd.DataFrame:
    """Per test instance of one run's ``scores``: the minimum distance to the training
    instances the run consumed (``seen``), and the fall in loss from its first scored step
    to its last."""
    first, last = scores["step"].min(), scores["step"].max()
    mask = np.array([i in seen for i in train_ids])
    # MD of each *test* instance to the seen training set: swap the roles of the sets.
    md = distance_stats(test_emb, train_emb[mask], w_avg=1.0).md
    start = scores[scores["step"] == first].set_index("id")["loss"]
    end = scores[scores["step"] == last].set_index("id")["loss"]
    out = pd.DataFrame({"id": list(test_ids), "task": list(test_tasks), "min_distance_seen": md,
                        "loss_start": [start.get(t, np.nan) for t in test_ids],
                        "loss_end": [end.get(t, np.nan) for t in test_ids]})
    out["loss_fall"] = out["loss_start"] - out["loss_end"]
    return out
