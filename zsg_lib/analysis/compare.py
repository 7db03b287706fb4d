"""Two arms compared on the same test instances: three views, cluster-bootstrap intervals,
and a verdict computed from the intervals.

Arms of one seed are scored on the same test instances, so they are compared instance by
instance: ``d = loss_a − loss_b`` per seed × test instance, each the mean over the steps of a
window. Three views of that difference (a negative value: ``a`` is lower):

* ``instance``: the mean over every seed × instance (the paper's instance mean);
* ``task-balanced``: the mean over test task × seed of the task's mean, so a task with huge
  losses (or many instances) cannot dominate;
* ``relative``: the same instance mean of ``loss / loss at the branch point`` (the step the
  arms start from), so each instance counts by how far it moved, not by its size.

**Intervals**: a cluster bootstrap over test task × seed (:mod:`~zsg_lib.analysis.bootstrap`:
``scipy.stats.bootstrap``, percentile, seeded, ≥ 2,000 resamples): instances of one task in
one run share the model and the task, so they are not independent; clusters are. Fewer than two clusters: no interval, and
the comparison says why.

**Verdict** on a claim ``a < b``, from the three intervals: *agrees* (every interval below 0),
*agrees in direction only* (every estimate below 0, not every interval), *opposite,
significantly* (an interval above 0), else *does not agree*.

>>> import pandas as pd
>>> gain = {"t1": 0.4, "t2": 0.5, "t3": 0.6}  # a's extra fall in loss, per task
>>> rows = [{"arrangement": arm, "seed": s, "task": t, "id": f"{t}{i}", "step": st,
...          "loss": 2.0 + 0.01 * i - (gain[t] if arm == "a" and st > 0 else 0.0)}
...         for arm in ("a", "b") for s in (0, 1) for t in gain
...         for i in range(3) for st in (0, 4)]
>>> c = compare(pd.DataFrame(rows), "a", "b", window=(1, 4), branch_step=0)
>>> round(c.views["instance"].estimate, 3), c.views["instance"].hi < 0, c.status
(-0.5, True, 'agrees')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from .bootstrap import N_RESAMPLES, cluster_resamples, few_clusters, percentile_interval

STATUSES = ("opposite, significantly", "does not agree", "agrees in direction only", "agrees")


@dataclass(frozen=True)
class View:
    """One view's estimate of ``a − b`` and its cluster-bootstrap interval (``why`` when the
    interval could not be computed)."""

    estimate: float
    lo: float
    hi: float
    n_clusters: int
    why: str = ""

    def shown(self) -> str:
        """``-0.052 [-0.081, -0.020]``, or the estimate and why there is no interval."""
        if self.why:
            return f"{self.estimate:+.3f} (no interval: {self.why})"
        return f"{self.estimate:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}]"


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b`` over ``window``: the three views, the seed-level paired t as a
    secondary line, and the verdict on the claim ``a < b``."""

    a: str
    b: str
    window: tuple[int, int]
    views: dict[str, View]
    seed_t: tuple[float, float, int] = (np.nan, np.nan, 0)  # (t, p, seeds)
    pairs: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)

    @property
    def status(self) -> str:
        """The verdict on ``a < b`` (see the module docstring)."""
        return verdict(self.views.values())

    @property
    def views_agree(self) -> bool:
        """Whether the three views' estimates have the same sign."""
        signs = {np.sign(v.estimate) for v in self.views.values() if np.isfinite(v.estimate)}
        return len(signs) == 1

    def row(self) -> dict[str, object]:
        """One table row: the views, the secondary seed-level test, the verdict."""
        t, p, n = self.seed_t
        return {"a": self.a, "b": self.b, "window": f"{self.window[0]}–{self.window[1]}",
                **{f"{k} (a − b)": v.shown() for k, v in self.views.items()},
                "seed-level paired t": f"t = {t:.2f}, p = {p:.3g} ({n} seeds)",
                "views agree": self.views_agree, "verdict": self.status}


def verdict(views: Sequence[View] | object) -> str:
    """The verdict on "a is lower than b" from the views' intervals.

    >>> verdict([View(-1, -2, -0.5, 6), View(-1, -1.5, -0.1, 6)])
    'agrees'
    >>> verdict([View(-1, -2, 0.5, 6), View(-1, -1.5, -0.1, 6)])
    'agrees in direction only'
    >>> verdict([View(1, 0.2, 2, 6), View(-1, -1.5, 0.1, 6)])
    'opposite, significantly'
    """
    views = list(views)
    if any(v.lo > 0 for v in views if not v.why):
        return "opposite, significantly"
    if views and all(not v.why and v.hi < 0 for v in views):
        return "agrees"
    if views and all(v.estimate < 0 for v in views):
        return "agrees in direction only"
    return "does not agree"


def worst(statuses: Sequence[str]) -> str:
    """The weakest of several verdicts (a claim of several pairs holds as far as its weakest).

    >>> worst(["agrees", "agrees in direction only"])
    'agrees in direction only'
    """
    return min(statuses, key=STATUSES.index)


def paired_instances(scores: pd.DataFrame, a: str, b: str, window: tuple[int, int],
                     branch_step: int, value: str = "loss") -> pd.DataFrame:
    """Per seed × test instance seen under both arms: the window means of ``a`` and ``b``,
    their difference ``d``, and ``rel`` (the difference of each divided by the instance's
    loss at ``branch_step``)."""
    lo, hi = window
    sel = scores[scores["arrangement"].isin([a, b])].dropna(subset=[value])
    base = (sel[sel["step"] == branch_step].groupby(["seed", "id"], observed=True)[value]
            .mean().rename("base"))
    win = sel[(sel["step"] >= lo) & (sel["step"] <= hi)]
    means = win.groupby(["arrangement", "seed", "task", "id"], observed=True)[value].mean()
    wide = means.unstack("arrangement")
    if a not in wide or b not in wide:
        missing = [n for n in (a, b) if n not in wide]
        raise KeyError(f"no {value} for arrangement(s) {missing} in steps {lo}–{hi}")
    out = wide[[a, b]].dropna().reset_index()
    out = out.join(base, on=["seed", "id"])
    out["d"] = out[a] - out[b]
    out["rel"] = out["d"] / out["base"]
    return out


def _bootstrap(stat, data: tuple[np.ndarray, ...], n_resamples: int,
               seed: int) -> tuple[float, float, str]:
    why = few_clusters(len(data[0]))
    if why:
        return np.nan, np.nan, why
    if np.ptp(data[0] / np.where(data[-1] == 0, 1, data[-1])) == 0:
        return np.nan, np.nan, "every cluster has the same value"
    return percentile_interval(cluster_resamples(stat, data, n_resamples, seed))


def _ratio(sums: np.ndarray, counts: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sum(sums, axis=axis) / np.sum(counts, axis=axis)


def cluster_view(pairs: pd.DataFrame, column: str, balanced: bool,
                 n_resamples: int = N_RESAMPLES, seed: int = 0) -> View:
    """The mean of ``column`` (instance-weighted, or ``balanced`` over clusters) with its
    cluster-bootstrap interval over test task × seed.

    >>> p = pd.DataFrame({"task": ["x", "x", "y", "y"], "seed": 0, "d": [1.0, 3.0, 5.0, 5.0]})
    >>> v = cluster_view(p, "d", balanced=True)
    >>> v.estimate, v.n_clusters, (v.lo, v.hi) == (2.0, 5.0)
    (3.5, 2, True)
    """
    grp = pairs.dropna(subset=[column]).groupby(["task", "seed"], observed=True)[column]
    sums, counts = grp.sum().to_numpy(), grp.count().to_numpy().astype(float)
    if balanced:
        data, stat = (sums / counts, np.ones_like(counts)), _ratio
    else:
        data, stat = (sums, counts), _ratio
    est = float(stat(*data)) if len(counts) else np.nan
    lo, hi, why = _bootstrap(stat, data, n_resamples, seed) if len(counts) else (
        np.nan, np.nan, "no paired instances")
    return View(est, lo, hi, len(counts), why)


def compare(scores: pd.DataFrame, a: str, b: str, window: tuple[int, int],
            branch_step: int = 0, value: str = "loss", n_resamples: int = N_RESAMPLES,
            seed: int = 0) -> Comparison:
    """``a`` against ``b`` over the steps of ``window`` (see the module docstring)."""
    if window[0] <= branch_step:
        raise ValueError(f"window {window} starts at or before the branch point (step "
                         f"{branch_step}): compare the steps after it")
    pairs = paired_instances(scores, a, b, window, branch_step, value)
    views = {
        "instance": cluster_view(pairs, "d", False, n_resamples, seed),
        "task-balanced": cluster_view(pairs, "d", True, n_resamples, seed),
        "relative": cluster_view(pairs, "rel", False, n_resamples, seed),
    }
    per_seed = pairs.groupby("seed")[[a, b]].mean()
    if len(per_seed) >= 2 and np.ptp(per_seed[a] - per_seed[b]) > 0:
        res = sps.ttest_rel(per_seed[a], per_seed[b])
        seed_t = (float(res.statistic), float(res.pvalue), len(per_seed))
    else:
        seed_t = (np.nan, np.nan, len(per_seed))
    return Comparison(a, b, tuple(window), views, seed_t, pairs)


def per_task(pairs: pd.DataFrame, n_resamples: int = N_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Per test task: the mean difference ``d`` and its bootstrap interval over the task's
    seed × instance pairs (within one task the seeds are few, so instances are resampled;
    the interval is narrower than a cluster bootstrap would be — read it as descriptive)."""
    rows = []
    for task, grp in pairs.groupby("task", observed=True):
        d = grp["d"].to_numpy()
        ones = np.ones_like(d)
        lo, hi, why = _bootstrap(_ratio, (d, ones), n_resamples, seed)
        rows.append({"task": task, "mean": float(d.mean()), "lo": lo, "hi": hi, "n": len(d),
                     "why": why})
    return pd.DataFrame(rows, columns=["task", "mean", "lo", "hi", "n", "why"])


def heaviest_task(pairs: pd.DataFrame) -> dict[str, Any]:
    """The test task that moves the instance mean of the differences ``d`` most: its part of
    that mean (its summed difference over all pairs), the mean without it, and its mean loss
    at the branch point beside the median test task's (a difference of losses weighs more
    where losses are large; the ``relative`` view divides that out).

    >>> pairs = pd.DataFrame({"task": list("aabb"), "d": [1.0, 1.0, -0.2, 0.0],
    ...                       "base": [8.0, 8.0, 2.0, 2.0]})
    >>> heaviest_task(pairs)
    {'task': 'a', 'mean': 0.45, 'part': 0.5, 'without': -0.1, 'base': 8.0, 'median_base': 5.0}
    """
    by = pairs.groupby("task", observed=True).agg(d=("d", "sum"), base=("base", "mean"))
    task = str(by["d"].abs().idxmax())
    rest = pairs[pairs["task"] != task]
    return {"task": task, "mean": float(pairs["d"].mean()),
            "part": float(by.at[task, "d"] / len(pairs)),
            "without": float(rest["d"].mean()) if len(rest) else float("nan"),
            "base": float(by.at[task, "base"]), "median_base": float(by["base"].median())}


def trend(scores: pd.DataFrame, x: str, window: tuple[int, int], value: str = "loss",
          n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[View, pd.DataFrame]:
    """The mean slope of window-mean ``value`` on the rank of ``x`` (e.g. the turn window's
    first round), fitted per test task × seed and bootstrapped over those clusters, so the
    runs of one seed stay paired. Returns the view and the per-cluster slopes.

    >>> df = pd.DataFrame([{"w": w, "seed": s, "task": t, "id": t, "step": 4,
    ...                     "loss": 1.0 + 0.1 * w * (1 + k + s)}
    ...                    for w in (0, 2, 4) for s in (0, 1) for k, t in enumerate("ab")])
    >>> v, slopes = trend(df, "w", (1, 4))
    >>> round(v.estimate, 3), len(slopes), v.lo > 0
    (0.4, 4, True)
    """
    lo, hi = window
    sel = scores[(scores["step"] >= lo) & (scores["step"] <= hi)].dropna(subset=[value])
    means = sel.groupby(["seed", "task", x], observed=True)[value].mean().reset_index()
    means["rank"] = means.groupby(["seed", "task"], observed=True)[x].rank(method="dense")
    rows = []
    for (s, t), grp in means.groupby(["seed", "task"], observed=True):
        if grp["rank"].nunique() >= 2:
            slope = float(np.polyfit(grp["rank"], grp[value], 1)[0])
            rows.append({"seed": s, "task": t, "slope": slope})
    slopes = pd.DataFrame(rows, columns=["seed", "task", "slope"])
    return cluster_view(slopes, "slope", balanced=True, n_resamples=n_resamples,
                        seed=seed), slopes
