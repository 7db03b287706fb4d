"""Analyses beyond the paper, cheap enough for a CPU: no extra training runs.

- :func:`ot_vs_wsd`: does the paper's alternative measure (optimal transport) order the
  training data like WSD does?
- :func:`nearest_relatives`: are a test instance's nearest training instances from related
  tasks ("tasks are artificial labels": similarity crosses task boundaries)?
- :func:`similarity_vs_gain`: per test instance, does being close to the training instances a
  run has seen predict how much its loss fell?
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from . import experiment as ex
from .params import Profile


def ot_vs_wsd(profile: Profile, seed: int) -> pd.DataFrame:
    """Per sampled training instance: WSD and its optimal-transport cost share, with ranks."""
    from .similarity import ot_cost

    prep = ex.prepare(profile, seed)
    dist = ex.distances(profile, seed)
    dist["ot"] = ot_cost(prep.train_emb, prep.test_emb).per_train
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


def nearest_relatives(profile: Profile, seed: int, k: int = 5) -> pd.DataFrame:
    """Per test instance: the tasks of its ``k`` nearest training instances (in the pool),
    and how many are the same family / a relative (demo data; NaN elsewhere)."""
    from .maps import nearest

    prep = ex.prepare(profile, seed)
    split = ex.load_split(profile)
    pool_tasks = np.asarray(prep.pool.column("task").to_pylist(), dtype=object)
    pool_emb = ex.embed(profile, prep.pool, profile.embedding.view)
    near = nearest(pool_emb, prep.test_emb, k)
    fam = rel = None
    if split.families is not None:
        fam = dict(zip(split.families["task"], split.families["family"]))
        rel = {t: set(filter(None, (r or "").split(", ")))
               for t, r in zip(split.families["task"], split.families["relatives"])}
    rows = []
    for task, idx in zip(prep.test.column("task").to_pylist(), near):
        tasks = pool_tasks[idx].tolist()
        row = {"task": task, "nearest_tasks": ", ".join(dict.fromkeys(tasks))}
        if fam is not None:
            row["family"] = fam.get(task)
            row["has_relative"] = bool(rel.get(task))
            row["share_relative"] = float(np.mean([t in rel.get(task, set()) for t in tasks]))
            row["share_same_family"] = float(np.mean([fam.get(t) == fam.get(task) for t in tasks]))
        rows.append(row)
    return pd.DataFrame(rows)


def similarity_vs_gain(profile: Profile, scores: pd.DataFrame, name: str = "random") -> pd.DataFrame:
    """Per seed × test instance under ``name``: the minimum distance to the training instances
    the run consumed, and the fall in loss from step 0 to the last step."""
    from .similarity import distance_stats

    rows = []
    per_step = profile.train.instances_per_step
    for seed in sorted(scores.loc[scores["arrangement"] == name, "seed"].unique()):
        sel = scores[(scores["arrangement"] == name) & (scores["seed"] == seed)]
        first, last = sel["step"].min(), sel["step"].max()
        arr = ex.arrangement(profile, name, int(seed))
        seen = set(arr.ids[: last * per_step])
        prep = ex.prepare(profile, int(seed))
        train_ids = prep.train.column("id").to_pylist()
        mask = np.array([i in seen for i in train_ids])
        # MD of each *test* instance to the seen training set: swap the roles of the sets.
        md = distance_stats(prep.test_emb, prep.train_emb[mask], w_avg=1.0).md
        test_ids = prep.test.column("id").to_pylist()
        start = sel[sel["step"] == first].set_index("id")["loss"]
        end = sel[sel["step"] == last].set_index("id")["loss"]
        for tid, task, d in zip(test_ids, prep.test.column("task").to_pylist(), md):
            rows.append({"seed": int(seed), "id": tid, "task": task, "min_distance_seen": d,
                         "loss_start": start.get(tid, np.nan), "loss_end": end.get(tid, np.nan)})
    out = pd.DataFrame(rows)
    out["loss_fall"] = out["loss_start"] - out["loss_end"]
    return out
