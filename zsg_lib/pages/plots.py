"""Altair charts for the book. Each function takes a small, already-aggregated DataFrame and
returns an Altair chart (a ``Chart``, or a layer/facet of charts) with tooltips.

Charts embed their data in the page, so callers aggregate first (means over seeds and test
instances, histograms binned here in pandas): a chart never carries the raw score table.

>>> import pandas as pd
>>> ci = pd.DataFrame({"arrangement": ["nft", "nft"], "step": [0, 4], "mean": [3.0, 2.0],
...                    "lo": [2.8, 1.7], "hi": [3.2, 2.3], "n": [3, 3]})
>>> spec = loss_curves(ci).to_dict()
>>> [layer["mark"]["type"] for layer in spec["layer"]]
['area', 'line', 'point']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from ..arrange.catalog import ARRANGEMENTS

# The plotting area of a full-width chart: with its axis labels and legend (and vega-embed's
# actions button) it stays inside the site's content column (~750 px; tests/test_browser.py).
WIDTH = 460
HEIGHT = 280
COLUMN = 700  # what a chart may take in all, to size charts with one panel per category
LABEL_WIDTH = 260  # the forest plot's row labels

#: How every verdict is drawn: in the summary's forest plot and its badges (green agrees,
#: amber in direction only, grey does not agree, red opposite; pale: not measured).
VERDICT_COLOURS: dict[str, str] = {
    "agrees": "#1a7f37",
    "agrees in direction only": "#bf8700",
    "does not agree": "#6e7781",
    "opposite, significantly": "#cf222e",
    "not measured": "#afb8c1",
}


def _color(field: str, values: Sequence[str], title: str | None = None) -> alt.Color:
    """Arrangements in their catalog colour (the same in every chapter); any other values
    (turn windows, metrics, pairs) in one scheme."""
    names = list(dict.fromkeys(values))
    scale = (
        alt.Scale(domain=names, range=[ARRANGEMENTS[n].colour for n in names])
        if all(n in ARRANGEMENTS for n in names) else alt.Scale(scheme="tableau10")
    )
    return alt.Color(f"{field}:N", scale=scale, title=title or field)


def _short(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def loss_curves(
    ci: pd.DataFrame,
    group: str = "arrangement",
    y_title: str = "test loss (mean over seeds)",
    title: str = "",
) -> alt.LayerChart:
    """Mean curve per ``group`` with its 95% band (from :func:`zsg_lib.analysis.stats.mean_ci`)."""
    data = ci.copy()
    base = alt.Chart(data).encode(
        x=alt.X("step:Q", title="training step"),
        color=_color(group, data[group]),
    )
    band = base.mark_area(opacity=0.18).encode(
        y=alt.Y("lo:Q", title=y_title, scale=alt.Scale(zero=False)), y2="hi:Q")
    line = base.mark_line().encode(y="mean:Q")
    points = base.mark_point(filled=True, size=40).encode(
        y="mean:Q",
        tooltip=[
            alt.Tooltip(f"{group}:N"), alt.Tooltip("step:Q"),
            alt.Tooltip("mean:Q", format=".3f"), alt.Tooltip("lo:Q", format=".3f", title="95% lo"),
            alt.Tooltip("hi:Q", format=".3f", title="95% hi"), alt.Tooltip("n:Q", title="seeds"),
        ],
    )
    return alt.layer(band, line, points).properties(width=WIDTH, height=HEIGHT, title=title)


def task_curves(
    curves: pd.DataFrame,
    drops: pd.DataFrame | None = None,
    examples: Mapping[str, str] | None = None,
    title: str = "",
) -> alt.LayerChart:
    """Per-test-task loss curves, with a rule and label at each detected sudden drop.

    ``curves``: ``task, step, loss`` (one arrangement and seed, or means).
    ``drops``: ``task, drop_step, kind, arrivals`` (text naming the training tasks that
    arrived just before the drop). ``examples``: one test instance text per task, shown in
    the tooltip.
    """
    data = curves[["task", "step", "loss"]].copy()
    examples = dict(examples or {})
    data["example"] = data["task"].map(lambda t: _short(examples.get(t, "")))
    shapes = {} if drops is None else dict(zip(drops["task"], drops["kind"]))
    data["shape"] = data["task"].map(lambda t: shapes.get(t, ""))
    color = alt.Color("task:N", title="test task", scale=alt.Scale(scheme="tableau20"))
    base = alt.Chart(data).encode(x=alt.X("step:Q", title="training step"), color=color)
    lines = base.mark_line().encode(y=alt.Y("loss:Q", title="test loss", scale=alt.Scale(zero=False)))
    points = base.mark_point(filled=True, size=30).encode(
        y="loss:Q",
        tooltip=["task:N", "step:Q", alt.Tooltip("loss:Q", format=".3f"), "shape:N",
                 alt.Tooltip("example:N", title="test instance")],
    )
    layers: list[alt.Chart] = [lines, points]
    if drops is not None and len(drops):
        marks = drops[drops["kind"] == "sudden drop"][["task", "drop_step", "arrivals"]].copy()
        if len(marks):
            rule_base = alt.Chart(marks).encode(
                x="drop_step:Q", color=color,
                tooltip=[alt.Tooltip("task:N", title="test task"),
                         alt.Tooltip("drop_step:Q", title="sudden drop at step"),
                         alt.Tooltip("arrivals:N", title="training tasks that just arrived")],
            )
            layers.append(rule_base.mark_rule(strokeDash=[4, 3]))
            layers.append(
                rule_base.mark_text(align="left", dx=3, dy=-4, angle=0, fontSize=10)
                .encode(y=alt.value(8), text="task:N")
            )
    return alt.layer(*layers).properties(width=WIDTH, height=HEIGHT, title=title)


def normalise_metrics(ci: pd.DataFrame, group: str = "metric") -> pd.DataFrame:
    """Rescale each metric's mean and band to [0, 1] so that up is better for all of them.

    Loss is flipped (lower loss → higher score). Input: ``metric, step, mean, lo, hi``.

    >>> df = pd.DataFrame({"metric": ["loss", "loss"], "step": [0, 4], "mean": [4.0, 2.0],
    ...                    "lo": [4.0, 2.0], "hi": [4.0, 2.0]})
    >>> normalise_metrics(df)["mean"].tolist()
    [0.0, 1.0]
    """
    out = []
    for metric, grp in ci.groupby(group, sort=False):
        grp = grp.copy()
        lo_v, hi_v = grp["mean"].min(), grp["mean"].max()
        span = (hi_v - lo_v) or 1.0
        for col in ("mean", "lo", "hi"):
            scaled = (grp[col] - lo_v) / span
            grp[col] = 1 - scaled if metric == "loss" else scaled
        if metric == "loss":
            grp[["lo", "hi"]] = grp[["hi", "lo"]].to_numpy()
        out.append(grp)
    return pd.concat(out, ignore_index=True) if out else ci.copy()


def metric_comparison(ci: pd.DataFrame, title: str = "") -> alt.LayerChart:
    """Loss next to ROUGE-1 / ROUGE-L / EM, each rescaled to [0, 1] (up = better).

    ``ci``: :func:`zsg_lib.analysis.stats.mean_ci` rows with a ``metric`` column (raw values); the
    tooltip shows the raw mean too.
    """
    raw = ci.rename(columns={"mean": "raw"})[["metric", "step", "raw"]]
    data = normalise_metrics(ci).merge(raw, on=["metric", "step"])
    base = alt.Chart(data).encode(
        x=alt.X("step:Q", title="training step"),
        color=alt.Color("metric:N", scale=alt.Scale(scheme="set1")),
    )
    band = base.mark_area(opacity=0.15).encode(
        y=alt.Y("lo:Q", title="normalised score (1 = best seen)"), y2="hi:Q")
    line = base.mark_line(point=True).encode(
        y="mean:Q",
        tooltip=["metric:N", "step:Q", alt.Tooltip("raw:Q", format=".3f", title="mean (raw)"),
                 alt.Tooltip("mean:Q", format=".2f", title="normalised"), "n:Q"],
    )
    return alt.layer(band, line).properties(width=WIDTH, height=HEIGHT, title=title)


def distance_histograms(
    distances: pd.DataFrame,
    measures: Sequence[str] = ("ad", "md", "wsd"),
    bins: int = 30,
    title: str = "",
) -> alt.FacetChart:
    """Histograms of AD / MD / WSD over training instances, binned here (small data)."""
    rows = []
    for m in measures:
        values = distances[m].to_numpy(dtype=float)
        counts, edges = np.histogram(values[~np.isnan(values)], bins=bins)
        for c, a, b in zip(counts, edges[:-1], edges[1:]):
            rows.append({"measure": m.upper(), "start": float(a), "end": float(b), "count": int(c)})
    data = pd.DataFrame(rows)
    chart = alt.Chart(data).mark_bar().encode(
        x=alt.X("start:Q", title="distance (negative cosine similarity)"),
        x2="end:Q",
        y=alt.Y("count:Q", title="training instances"),
        tooltip=["measure:N", alt.Tooltip("start:Q", format=".3f"),
                 alt.Tooltip("end:Q", format=".3f"), "count:Q"],
    ).properties(width=WIDTH // len(measures), height=200)
    return chart.facet(column=alt.Column("measure:N", title=None)).resolve_scale(
        x="independent").properties(title=title)


def embedding_map(points: pd.DataFrame, color_title: str = "position in training order",
                  title: str = "") -> alt.LayerChart:
    """A 2-D map of train and test instances (from :func:`zsg_lib.analysis.maps.embedding_map_frame`).

    Training instances are coloured by ``position`` (their place in the arrangement; grey
    when the run never reaches them); test instances are black crosses whose tooltip lists
    their nearest training instances.
    """
    data = points.copy()
    data["text"] = data["text"].map(_short)
    train = data[data["split"] == "train"]
    test = data[data["split"] == "test"]
    xy = dict(x=alt.X("x:Q", axis=None, scale=alt.Scale(zero=False)),
              y=alt.Y("y:Q", axis=None, scale=alt.Scale(zero=False)))
    seen = alt.Chart(train[train["position"].notna()]).mark_circle(size=45, opacity=0.85).encode(
        **xy,
        color=alt.Color("position:Q", title=color_title, scale=alt.Scale(scheme="viridis")),
        tooltip=["task:N", alt.Tooltip("position:Q", format="d"), alt.Tooltip("text:N", title="instance")],
    )
    unseen = alt.Chart(train[train["position"].isna()]).mark_circle(size=20, color="#cccccc",
                                                                   opacity=0.6).encode(
        **xy, tooltip=["task:N", alt.Tooltip("text:N", title="instance (not reached)")],
    )
    tests = alt.Chart(test).mark_point(shape="cross", size=90, color="black", filled=True).encode(
        **xy,
        tooltip=[alt.Tooltip("task:N", title="test task"), alt.Tooltip("text:N", title="test instance"),
                 alt.Tooltip("nearest:N", title="nearest training instances")],
    )
    return alt.layer(unseen, seen, tests).properties(width=WIDTH, height=WIDTH * 0.75, title=title)


def interval_points(
    summary: pd.DataFrame, x: str = "arrangement", x_title: str | None = None,
    y_title: str = "mean test loss", title: str = "",
) -> alt.LayerChart:
    """Mean with a 95% error bar per category (``x, mean, lo, hi, n``; ``x_title`` names the
    categories, ``y_title`` the values). Named categories (arrangements) run down the side,
    one line each, so their labels read horizontally; numbers (a window's first round) run
    along the bottom."""
    data = summary.copy()
    numeric = pd.api.types.is_numeric_dtype(data[x])
    tips = [f"{x}:{'Q' if numeric else 'N'}", alt.Tooltip("mean:Q", format=".3f"),
            alt.Tooltip("lo:Q", format=".3f"), alt.Tooltip("hi:Q", format=".3f"), "n:Q"]
    value = alt.Scale(zero=False)
    if numeric:
        base = alt.Chart(data).encode(x=alt.X(f"{x}:Q", title=x_title or x),
                                      color=alt.value("#1f77b4"))
        bars = base.mark_errorbar(ticks=True).encode(
            y=alt.Y("lo:Q", title=y_title, scale=value), y2="hi:Q")
        points = base.mark_point(filled=True, size=80).encode(y="mean:Q", tooltip=tips)
        return alt.layer(bars, points).properties(width=WIDTH * 0.7, height=HEIGHT * 0.8,
                                                  title=title)
    base = alt.Chart(data).encode(
        y=alt.Y(f"{x}:N", title=x_title or x, sort=None), color=_color(x, data[x].astype(str)))
    bars = base.mark_errorbar(ticks=True).encode(
        x=alt.X("lo:Q", title=y_title, scale=value), x2="hi:Q")
    points = base.mark_point(filled=True, size=80).encode(x="mean:Q", tooltip=tips)
    return alt.layer(bars, points).properties(width=WIDTH * 0.7,
                                              height=max(80, 26 * data[x].nunique()),
                                              title=title)


def tma_rounds(tables: pd.DataFrame, title: str = "") -> alt.Chart:
    """How each TMA setting walks through the rounds: round of the instance at each position.

    ``tables``: concatenated arrangement tables with a ``setting`` column (``position``,
    ``round``, ``task``, ``id``); position is capped by the caller to what runs consume.
    """
    data = tables[["setting", "position", "round", "task"]].copy()
    data["round"] = data["round"].astype("float")
    return alt.Chart(data).mark_tick(thickness=2).encode(
        x=alt.X("position:Q", title="position in training order"),
        y=alt.Y("setting:N", title=None),
        color=alt.Color("round:Q", title="TMA round", scale=alt.Scale(scheme="plasma")),
        tooltip=["setting:N", "position:Q", "round:Q", "task:N"],
    ).properties(width=WIDTH, height=30 * data["setting"].nunique(), title=title)


def online_picks(picks: pd.DataFrame, title: str = "") -> alt.Chart:
    """Which query tasks each stretch of an online run served: one row per query task (per
    query instance on data without tasks), one column per scoring point, the pool instances
    picked for it (summed over the seeds in ``picks``, a run's
    :data:`~zsg_lib.train.records.PICKS_SCHEMA` rows) as the colour.

    >>> picks = pd.DataFrame({"scored_at": [2, 2, 4], "query_task": ["a", "b", "a"],
    ...                       "query_id": ["x", "y", "x"], "loss_ratio": [1.0, 1.0, 0.8]})
    >>> online_picks(picks).to_dict()["mark"]["type"]
    'rect'
    """
    data = picks.assign(query_task=picks["query_task"].where(picks["query_task"].notna(),
                                                             picks["query_id"]))
    counts = (data.groupby(["scored_at", "query_task"])
              .agg(picks=("query_id", "size"), ratio=("loss_ratio", "mean"),
                   instances=("query_id", "nunique")).reset_index())
    return alt.Chart(counts).mark_rect().encode(
        x=alt.X("scored_at:O", title="stretch from the scoring point at step"),
        y=alt.Y("query_task:N", title="query task served", axis=alt.Axis(labelLimit=200)),
        # the legend under the chart: beside it, task names and legend ran past the column
        color=alt.Color("picks:Q", title="instances picked", scale=alt.Scale(scheme="blues"),
                        legend=alt.Legend(orient="bottom", direction="horizontal")),
        tooltip=[alt.Tooltip("scored_at:O", title="scored at step"),
                 alt.Tooltip("query_task:N", title="query task"),
                 alt.Tooltip("picks:Q", title="instances picked"),
                 alt.Tooltip("instances:Q", title="query instances served"),
                 alt.Tooltip("ratio:Q", format=".3f", title="mean loss ratio")],
    ).properties(width=WIDTH, height=max(80, 18 * counts["query_task"].nunique()), title=title)


def scatter(
    data: pd.DataFrame, x: str, y: str, color: str | None = None,
    tooltip: Sequence[str] = (), x_title: str | None = None, y_title: str | None = None,
    title: str = "",
) -> alt.Chart:
    """A plain scatter with tooltips (e.g. OT cost vs WSD per training task)."""
    enc = dict(
        x=alt.X(f"{x}:Q", title=x_title or x, scale=alt.Scale(zero=False)),
        y=alt.Y(f"{y}:Q", title=y_title or y, scale=alt.Scale(zero=False)),
        tooltip=list(tooltip) or [x, y],
    )
    if color:
        enc["color"] = alt.Color(f"{color}:N")
    return alt.Chart(data).mark_circle(size=60).encode(**enc).properties(
        width=WIDTH * 0.8, height=HEIGHT, title=title)


def loss_parts(parts: pd.DataFrame, title: str = "") -> alt.Chart:
    """Stacked areas: how much of the mean test loss at each step is the first response
    token, the end token and the content between (``step, part, value``; from
    :func:`zsg_lib.analysis.stats.loss_parts`, averaged over seeds)."""
    order = {"end token": 0, "first token": 1, "content": 2}
    data = parts.assign(order=parts["part"].map(order))
    return alt.Chart(data).mark_area(opacity=0.85).encode(
        x=alt.X("step:Q", title="step"),
        y=alt.Y("value:Q", stack="zero", title="mean test loss (nats)"),
        color=alt.Color("part:N", title="part of the response",
                        scale=alt.Scale(domain=list(order), range=["#d62728", "#ff9896",
                                                                   "#1f77b4"])),
        order=alt.Order("order:Q"),
        tooltip=["step:Q", "part:N", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=WIDTH, height=HEIGHT, title=title)


def task_differences(table: pd.DataFrame, color: str = "relative", title: str = "",
                     x_title: str = "difference in test loss (a − b; below 0: a lower)",
                     ) -> alt.LayerChart:
    """Per test task: the mean difference between two arms with its 95% interval, coloured
    by ``color`` (e.g. the kind of relative the task has among the training tasks); a rule
    at 0. Columns: ``task, mean, lo, hi, n`` and ``color``."""
    data = table.copy()
    if color not in data:
        data[color] = "—"
    base = alt.Chart(data).encode(
        y=alt.Y("task:N", sort=alt.EncodingSortField("mean", order="ascending"), title=None),
        color=alt.Color(f"{color}:N", scale=alt.Scale(scheme="set1"), title=color))
    bars = base.mark_errorbar(ticks=True).encode(x=alt.X("lo:Q", title=x_title), x2="hi:Q")
    points = base.mark_point(filled=True, size=70).encode(
        x="mean:Q",
        tooltip=["task:N", f"{color}:N", alt.Tooltip("mean:Q", format="+.3f"),
                 alt.Tooltip("lo:Q", format="+.3f"), alt.Tooltip("hi:Q", format="+.3f"),
                 "n:Q"])
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="#444").encode(x="x:Q")
    return alt.layer(zero, bars, points).properties(
        width=WIDTH * 0.8, height=max(120, 22 * data["task"].nunique()), title=title)


def relatives_fed(table: pd.DataFrame, title: str = "") -> alt.LayerChart:
    """Per test task × arrangement (an ``chapter_data.relatives_fed`` table): the mean over seeds
    of the instances from the task's helpful relatives among those fed, as cells with their
    count; the tooltip adds the mirror relatives."""
    data = (table.groupby(["task", "relatives", "arrangement"], as_index=False, sort=False)
            [["helpful", "mirror", "of"]].mean())
    base = alt.Chart(data).encode(
        x=alt.X("arrangement:N", sort=None, title=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("task:N", title=None, sort=None))
    cells = base.mark_rect().encode(
        color=alt.Color("helpful:Q", scale=alt.Scale(scheme="greens"),
                        title="helpful relatives fed"),
        tooltip=["task:N", "relatives:N", "arrangement:N",
                 alt.Tooltip("helpful:Q", format=".1f"), alt.Tooltip("mirror:Q", format=".1f"),
                 alt.Tooltip("of:Q", title="instances fed")])
    text = base.mark_text(baseline="middle").encode(text=alt.Text("helpful:Q", format=".1f"))
    return alt.layer(cells, text).properties(
        width=min(90 * data["arrangement"].nunique(), WIDTH), height=22 * data["task"].nunique(),
        title=title)


def predictor_intervals(table: pd.DataFrame, title: str = "") -> alt.HConcatChart:
    """Per predictor (a ``predictor_test`` table): Spearman ρ and the fixed-effects slope per
    SD, each with its 95% cluster-bootstrap interval, a rule at 0, coloured by kind."""
    panels = []
    for stat, x_title in (("spearman", "Spearman ρ with the loss change"),
                          ("slope", "slope of the loss change per SD (task, step FE)")):
        data = table[["predictor", "kind", stat, f"{stat}_lo", f"{stat}_hi", "n"]].rename(
            columns={stat: "est", f"{stat}_lo": "lo", f"{stat}_hi": "hi"})
        base = alt.Chart(data).encode(
            y=alt.Y("predictor:N", sort=None, title=None),
            color=alt.Color("kind:N", scale=alt.Scale(scheme="set2"), title="similarity"))
        bars = base.mark_errorbar(ticks=True).encode(x=alt.X("lo:Q", title=x_title), x2="hi:Q")
        points = base.mark_point(filled=True, size=70).encode(
            x="est:Q", tooltip=["predictor:N", "kind:N", alt.Tooltip("est:Q", format="+.4f"),
                                alt.Tooltip("lo:Q", format="+.4f"),
                                alt.Tooltip("hi:Q", format="+.4f"), "n:Q"])
        zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="#444").encode(x="x:Q")
        panels.append(alt.layer(zero, bars, points).properties(
            width=WIDTH * 0.45, height=max(100, 26 * len(data))))
    return alt.hconcat(*panels).properties(title=title)


def task_slopes(table: pd.DataFrame, title: str = "") -> alt.VConcatChart:
    """Per predictor of a per-task predictor table (``task, predictor, relatives, slope,
    slope_lo, slope_hi, n``): each test task's slope with its interval, by relatives."""
    panels = []
    for name, part in table.groupby("predictor", sort=False):
        data = part.rename(columns={"slope": "mean", "slope_lo": "lo", "slope_hi": "hi"})
        panels.append(task_differences(
            data[["task", "relatives", "mean", "lo", "hi", "n"]], color="relatives",
            title=str(name), x_title="slope of the loss change per SD (step FE)"))
    return alt.vconcat(*panels).properties(title=title)


def seen_prefix(frame: pd.DataFrame, distance: str = "min", title: str = "") -> alt.FacetChart:
    """Per test task (a column each): its test loss by step (top row) over the distance from
    the training instances seen so far to the task (``distance`` column, bottom row); each
    row has its own scale."""
    names = {"loss": "test loss", distance: f"seen-prefix distance ({distance})"}
    data = frame[["step", "task", "loss", distance]].melt(
        id_vars=["step", "task"], var_name="measure", value_name="value")
    data["measure"] = data["measure"].map(names)
    chart = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("step:Q", title="step"),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=alt.Color("measure:N", scale=alt.Scale(domain=list(names.values()),
                                                     range=["#1f77b4", "#d62728"]), legend=None),
        tooltip=["task:N", "step:Q", "measure:N", alt.Tooltip("value:Q", format=".3f")])
    n_tasks = max(1, data["task"].nunique())
    width = max(50, min(110, (COLUMN - 80) // n_tasks - 12))  # every task's panel in the column
    return chart.properties(width=width, height=90).facet(
        row=alt.Row("measure:N", title=None, sort=list(names.values())),
        column=alt.Column("task:N", title=None)).resolve_scale(y="independent").properties(
        title=title)


def stack(charts: Sequence[alt.TopLevelMixin]) -> alt.VConcatChart:
    """Charts one under another (e.g. one per compared pair)."""
    return alt.vconcat(*charts)


def forest(contrasts: pd.DataFrame, title: str = "") -> alt.VConcatChart:
    """Every judged claim's contrast in one forest plot (a ``zsg_lib.pages.overview.contrasts``
    table: ``row, measure, estimate, lo, hi, detectable, claimed, reference, status, shown,
    detectable_shown``). One panel per ``measure`` (contrasts on one scale), one line per
    contrast: the estimate and its 95% interval coloured by verdict, a rule at the reference
    (no difference), the claimed side of it shaded (``fmt``, when given, with a ``%``: a
    percentage axis), and around the reference a grey band as
    wide as the smallest difference the run detects (80% power), its size written at the
    right. Where the table holds a ``part`` column with evaluation rows (issue #29), each
    line holds two marks, query (filled circle, the paper's) above evaluation (open diamond,
    dashed interval), told apart by shape in a legend."""
    if contrasts.empty:
        note = pd.DataFrame({"text": ["no claim was measured with an interval"]})
        return alt.vconcat(alt.Chart(note).mark_text(align="left").encode(text="text:N"))
    statuses = [s for s in VERDICT_COLOURS if s != "not measured"]  # measured, with a number
    verdicts = alt.Scale(domain=statuses, range=[VERDICT_COLOURS[s] for s in statuses])
    colour = alt.Color("status:N", title="verdict", scale=verdicts, legend=alt.Legend(
        orient="bottom", direction="horizontal", labelLimit=220))
    tips = [alt.Tooltip("row:N", title="contrast"), alt.Tooltip("shown:N", title="estimate [95%]"),
            alt.Tooltip("claimed_text:N", title="claimed"),
            alt.Tooltip("detectable_shown:N", title="smallest detectable (80% power)"),
            alt.Tooltip("status:N", title="verdict")]
    two = "part" in contrasts and contrasts["part"].nunique() > 1
    if two:  # query (the paper's) and evaluation marks share a line, one above the other
        tips.insert(1, alt.Tooltip("part:N", title="judged on"))
        parts = ["query", "evaluation"]
        offset = {"yOffset": alt.YOffset("part:N", sort=parts, scale=alt.Scale(
            domain=parts, paddingOuter=0.3))}
        shape = {"shape": alt.Shape("part:N", legend=None, scale=alt.Scale(
            domain=parts, range=["circle", "diamond"]))}  # told apart in the subtitle
        dash = {"strokeDash": alt.condition(alt.datum.part == "query", alt.value([1, 0]),
                                            alt.value([4, 2]))}  # a value: no second legend
        fill = alt.Fill("status:N", scale=verdicts, legend=None)
        filled = {"fill": alt.condition(alt.datum.part == "query", fill, alt.value("white"))}
    else:
        offset = shape = dash = filled = {}
    line_height = 40 if two else 26
    width = 300
    panels = []
    for measure, part in contrasts.groupby("measure", sort=False):
        data = part.copy()
        ref = float(data["reference"].iloc[0])
        spread = pd.concat([(data[c] - ref).abs() for c in ("estimate", "lo", "hi")] +
                           [data["detectable"]]).dropna()
        extent = float(spread.max()) * 1.15 if len(spread) and spread.max() > 0 else 1.0
        data["edge"] = np.where(data["claimed"] == "below", ref - extent, ref + extent)
        data["zone_lo"] = ref - data["detectable"]
        data["zone_hi"] = ref + data["detectable"]
        data["claimed_text"] = data["claimed"] + f" {ref:g}"
        x_scale = alt.Scale(domain=[ref - extent, ref + extent], nice=False, zero=False)
        percent = "%" in str(data["fmt"].iloc[0]) if "fmt" in data else False
        x_axis = alt.Axis(format=".0%" if percent else "~g")
        # one label width for every panel, so their zero lines stand one under another
        base = alt.Chart(data).encode(y=alt.Y("row:N", sort=None, title=None, axis=alt.Axis(
            labelLimit=LABEL_WIDTH, minExtent=LABEL_WIDTH)), **offset)
        side = base.mark_rect(color="#ddeaf7", opacity=0.7).encode(
            x=alt.X("reference:Q", scale=x_scale, title=str(measure), axis=x_axis), x2="edge:Q")
        zone = base.mark_rule(color="#8c959f", strokeWidth=9, opacity=0.35).encode(
            x="zone_lo:Q", x2="zone_hi:Q")
        ref_rule = alt.Chart(pd.DataFrame({"x": [ref]})).mark_rule(color="#24292f").encode(
            x=alt.X("x:Q", scale=x_scale))
        bar = base.mark_rule(strokeWidth=2.5).encode(x="lo:Q", x2="hi:Q", color=colour,
                                                      tooltip=tips, **dash)
        point = base.mark_point(filled=not two, size=90, opacity=1, strokeWidth=2).encode(
            x="estimate:Q", color=colour, tooltip=tips, **shape, **filled)
        text = base.mark_text(align="left", dx=8, color="#57606a", fontSize=11).encode(
            x=alt.value(width), text="detectable_shown:N")
        panels.append(alt.layer(side, zone, ref_rule, bar, point, text).properties(
            width=width, height=line_height * data["row"].nunique()))
    if two:  # a legend of the two marks beside the verdicts' would run past the column
        marks = [("filled circle, solid line: judged on the query instances (arranged "
                  "toward; the paper's)"),
                 ("open diamond, dashed line: judged on the evaluation instances (never "
                  "arranged toward)")]
        heading = alt.TitleParams(title or "Query and evaluation instances", anchor="start",
                                  subtitle=marks, subtitleColor="#57606a")
        return alt.vconcat(*panels, spacing=18).resolve_scale(x="independent").properties(
            title=heading)
    return alt.vconcat(*panels, spacing=18).resolve_scale(x="independent").properties(
        title=title)
