"""Shapes of per-test-task loss curves, and the step of a sudden drop (PAPER.md §2).

Under a Cluster arrangement the loss of one test task can fall abruptly at the step where
training reaches a task similar to it. :func:`classify_curve` names a curve's shape:

- ``sudden drop``: one interval between evaluations carries most of the fall
  (≥ ``share`` of it) and stands out from the other intervals' changes (≥ ``ratio`` × their
  robust spread);
- ``steady fall``: the loss falls, spread over several intervals;
- ``rise``: the loss ends higher than it starts;
- ``flat``: it moves by less than ``flat_tol`` of its starting value.

The drop's *step* is the evaluation step after the drop: the training instances that caused it
arrived between the previous evaluation and that step, which :func:`arrivals` lists from the
arrangement's order.

>>> steps = [0, 4, 8, 12, 16, 20]
>>> classify_curve(steps, [3.0, 2.95, 2.9, 1.6, 1.55, 1.5]).kind
'sudden drop'
>>> classify_curve(steps, [3.0, 2.95, 2.9, 1.6, 1.55, 1.5]).drop_step
12
>>> classify_curve(steps, [3.0, 2.7, 2.4, 2.1, 1.8, 1.5]).kind
'steady fall'
>>> classify_curve(steps, [2.0, 2.1, 2.2, 2.4, 2.5, 2.6]).kind
'rise'
>>> classify_curve(steps, [2.0, 2.01, 1.99, 2.0, 2.02, 2.0]).kind
'flat'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CurveShape:
    """A curve's shape; ``drop_step`` / ``drop`` describe its largest single fall."""

    kind: str
    drop_step: int | None  # evaluation step right after the largest fall
    prev_step: int | None  # evaluation step right before it
    drop: float  # size of the largest fall (≥ 0)
    noise: float  # robust spread of the other intervals' changes
    net: float  # last − first


def classify_curve(
    steps: Sequence[int],
    losses: Sequence[float],
    *,
    share: float = 0.5,
    ratio: float = 3.0,
    flat_tol: float = 0.05,
) -> CurveShape:
    """Classify one loss curve (see the module docstring for the rules)."""
    x = np.asarray(steps)
    y = np.asarray(losses, dtype=float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    if len(y) < 2:
        return CurveShape("flat", None, None, 0.0, 0.0, 0.0)
    diffs = np.diff(y)
    i = int(np.argmin(diffs))
    drop = float(max(-diffs[i], 0.0))
    others = np.delete(diffs, i)
    # Median absolute deviation of the other changes: one outlying interval cannot inflate it.
    noise = float(1.4826 * np.median(np.abs(others - np.median(others)))) if len(others) else 0.0
    net = float(y[-1] - y[0])
    drop_step = int(x[i + 1]) if drop > 0 else None
    prev_step = int(x[i]) if drop > 0 else None
    scale = max(abs(float(y[0])), 1e-12)
    moved = float(np.ptp(y))
    if abs(net) < flat_tol * scale and moved < 2 * flat_tol * scale:
        kind = "flat"
    elif net > 0:
        kind = "rise"
    else:
        floor = flat_tol * scale / 10  # so a perfectly smooth rest still has a spread
        sudden = drop >= share * (-net) and drop >= ratio * max(noise, floor) and len(diffs) >= 2
        kind = "sudden drop" if sudden else "steady fall"
    return CurveShape(kind, drop_step, prev_step, drop, noise, net)


def task_curves(scores: pd.DataFrame, value: str = "loss") -> pd.DataFrame:
    """Mean ``value`` per arrangement × seed × test task × step (the per-task curves)."""
    keys = [k for k in ("arrangement", "seed", "task", "step") if k in scores]
    return scores.groupby(keys, as_index=False, observed=True)[value].mean()


def classify_tasks(
    scores: pd.DataFrame, value: str = "loss", from_step: int = 0, **rules: float
) -> pd.DataFrame:
    """One row per arrangement × seed × test task with its :class:`CurveShape` fields.

    ``from_step``: classify only the part of each curve from that step on. In short runs the
    first interval after step 0 carries a steep fall for *every* test task under *every*
    order (the model learns the answer format); the book starts at the first evaluation so
    that a sudden drop means something that arrived later.
    """
    curves = task_curves(scores[scores["step"] >= from_step], value)
    keys = [k for k in ("arrangement", "seed", "task") if k in curves]
    rows = []
    for key, grp in curves.groupby(keys, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        shape = classify_curve(grp["step"].to_numpy(), grp[value].to_numpy(), **rules)
        rows.append({**dict(zip(keys, key)), **shape.__dict__})
    return pd.DataFrame(rows)


def positions_between(prev_step: int, step: int, instances_per_step: int) -> range:
    """Arrangement positions consumed by the optimizer steps ``prev_step+1 … step``.

    Step ``s`` (1-based) trains on positions ``[(s−1)·B, s·B)``; the loss scored *at* step
    ``prev_step`` has seen positions ``< prev_step·B``.

    >>> positions_between(4, 8, 4)
    range(16, 32)
    """
    return range(int(prev_step) * instances_per_step, int(step) * instances_per_step)


def arrivals(
    order_table: pd.DataFrame, prev_step: int, step: int, instances_per_step: int
) -> pd.DataFrame:
    """The training tasks that arrived between two evaluations, with instance counts.

    ``order_table`` has one row per position in training order (columns ``position`` and
    ``task``, as an :class:`~zsg_lib.arrange.Arrangement`'s table); result columns ``task``,
    ``count``, most frequent first.

    >>> tab = pd.DataFrame({"position": range(8), "task": list("aabbbbcc")})
    >>> arrivals(tab, 1, 3, 2).to_dict("records")
    [{'task': 'b', 'count': 4}]
    """
    pos = positions_between(prev_step, step, instances_per_step)
    sel = order_table[(order_table["position"] >= pos.start) & (order_table["position"] < pos.stop)]
    counts = sel.groupby("task", observed=True).size().sort_values(ascending=False, kind="stable")
    return counts.rename("count").reset_index()
