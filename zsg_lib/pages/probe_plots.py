"""The probes chapter's charts (issue #28): what each design did against random batches, on
its target and on the other test tasks, and the experiment's ranking of the similarities
beside chapter 7's observation. Each takes an already-aggregated table
(:mod:`zsg_lib.analysis.probes`) and returns an Altair chart with tooltips.

>>> import pandas as pd
>>> table = pd.DataFrame({"design": ["nearest-gradient"] * 3,
...                       "measure": ["target", "others", "difference"],
...                       "estimate": [-0.02, 0.0, -0.02], "lo": [-0.03, -0.01, -0.03],
...                       "hi": [-0.01, 0.01, -0.01], "n_clusters": 27, "why": "",
...                       "design_mean": [-0.05, -0.03, -0.02], "random_mean": -0.03})
>>> spec = design_contrasts(table).to_dict()
>>> len(spec["hconcat"])
3
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from .plots import WIDTH

#: The three contrasts of a design, as the panels name them.
MEASURE_TITLES = {"target": "on its target task", "others": "on the other test tasks",
                  "difference": "target − others"}


def _zero() -> alt.Chart:
    return alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="#444").encode(x="x:Q")


def design_contrasts(table: pd.DataFrame, title: str = "") -> alt.HConcatChart:
    """One panel per measure of a :func:`~zsg_lib.analysis.probes.design_table`: each
    design's Δ test loss minus random's, with its 95% interval (left of 0: the design's step
    lowered the loss more than a random step)."""
    panels = []
    designs = list(dict.fromkeys(table["design"]))
    for k, (measure, name) in enumerate(MEASURE_TITLES.items()):
        data = table[table["measure"] == measure][
            ["design", "estimate", "lo", "hi", "n_clusters", "design_mean", "random_mean"]]
        # the design names once, on the left: three labelled panels overflow the page column
        base = alt.Chart(data).encode(
            y=alt.Y("design:N", sort=designs, title=None,
                    axis=alt.Axis(labels=k == 0, ticks=k == 0)),
            color=alt.Color("design:N", sort=designs, scale=alt.Scale(scheme="tableau10"),
                            legend=None))
        bars = base.mark_errorbar(ticks=True).encode(
            x=alt.X("lo:Q", title="Δ loss, design − random (nats)"), x2="hi:Q")
        points = base.mark_point(filled=True, size=70).encode(
            x="estimate:Q",
            tooltip=["design:N", alt.Tooltip("estimate:Q", format="+.4f"),
                     alt.Tooltip("lo:Q", format="+.4f"), alt.Tooltip("hi:Q", format="+.4f"),
                     alt.Tooltip("design_mean:Q", format="+.4f", title="design's Δ loss"),
                     alt.Tooltip("random_mean:Q", format="+.4f", title="random's Δ loss"),
                     alt.Tooltip("n_clusters:Q", title="target task × seed")])
        panels.append(alt.layer(_zero(), bars, points).properties(
            title=name, width=WIDTH * 0.3, height=max(90, 28 * len(designs))))
    return alt.hconcat(*panels).properties(title=title)


def design_levels(table: pd.DataFrame, title: str = "") -> alt.Chart:
    """Each design's own mean Δ test loss after one step, on its target and on the other
    test tasks, beside random's on the same instances (the levels the contrasts subtract)."""
    rows = []
    for r in table[table["measure"].isin(["target", "others"])].itertuples():
        rows += [{"design": r.design, "where": r.measure, "batch": "design",
                  "dloss": r.design_mean},
                 {"design": r.design, "where": r.measure, "batch": "random",
                  "dloss": r.random_mean}]
    data = pd.DataFrame(rows)
    designs = list(dict.fromkeys(table["design"]))
    return alt.Chart(data).mark_point(filled=True, size=70).encode(
        y=alt.Y("design:N", sort=designs, title=None),
        x=alt.X("dloss:Q", title="mean Δ test loss after one step (nats)"),
        color=alt.Color("batch:N", scale=alt.Scale(domain=["design", "random"],
                                                   range=["#1f77b4", "#999999"])),
        shape=alt.Shape("where:N", title="instances"),
        tooltip=["design:N", "where:N", "batch:N", alt.Tooltip("dloss:Q", format="+.4f")],
    ).properties(width=WIDTH, height=max(90, 28 * len(designs)), title=title)


def rankings(table: pd.DataFrame, by: str = "slope", title: str = "") -> alt.Chart:
    """A :func:`~zsg_lib.analysis.probes.ranking_table`: each similarity's ``by`` (slope of
    Δ loss per SD) with its interval, by the experiment and by chapter 7's observation."""
    rows = []
    for side in ("experiment", "observation"):
        part = table[["predictor", f"{by}_{side}", f"{by}_lo_{side}", f"{by}_hi_{side}",
                      f"{side}_rank"]].copy()
        part.columns = ["predictor", "est", "lo", "hi", "rank"]
        rows.append(part.assign(source=side, rank=part["rank"].astype(float)))
    data = pd.concat(rows, ignore_index=True)
    base = alt.Chart(data).encode(
        y=alt.Y("predictor:N", sort=list(table["predictor"]), title=None),
        yOffset=alt.YOffset("source:N"),
        color=alt.Color("source:N", scale=alt.Scale(domain=["experiment", "observation"],
                                                    range=["#1f77b4", "#ff7f0e"])))
    bars = base.mark_errorbar(ticks=True).encode(
        x=alt.X("lo:Q", title=f"{by} of Δ loss per SD of similarity"), x2="hi:Q")
    points = base.mark_point(filled=True, size=60).encode(
        x="est:Q", tooltip=["predictor:N", "source:N", alt.Tooltip("est:Q", format="+.4f"),
                            alt.Tooltip("lo:Q", format="+.4f"),
                            alt.Tooltip("hi:Q", format="+.4f"), "rank:Q"])
    return alt.layer(_zero(), bars, points).properties(
        width=WIDTH, height=max(100, 34 * len(table)), title=title)
