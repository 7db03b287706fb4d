"""How the book's outputs read: tables with column names a reader understands and no bare
index, a finding as a card with its verdict badge, charts offline.

:func:`enable_book_display`, called in each chapter's first cell, turns this on for the
notebook's kernel (the site build and JupyterLab alike). It changes what is *shown*, never the
data: a DataFrame keeps its columns (``table["spearman_lo"]`` still works); its HTML view
hides an unnamed integer index (``0, 1, 2`` tells a reader nothing), names columns from
:data:`LABELS` (others: underscores become spaces), and merges an estimate with its interval
(``x`` with ``x_lo`` and ``x_hi``, or ``mean`` with ``lo`` and ``hi``) into one column
``x [95% interval]`` that wraps instead of widening the page.

>>> import pandas as pd
>>> t = pd.DataFrame({"predictor": ["emb_max"], "spearman": [-0.31], "spearman_lo": [-0.4],
...                   "spearman_hi": [-0.2], "n_clusters": [6]})
>>> readable(t).to_dict("records")
[{'similarity': 'emb_max', 'Spearman ρ [95% interval]': '-0.31 [-0.4, -0.2]', 'clusters (test task × seed)': 6}]
>>> html = table_html(t)
>>> ">similarity</th>" in html and 'class="row_heading' not in html  # no 0 column
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .render import Mode, enable_offline_altair

#: Reader-facing names of the columns the book's tables hold (the one place they are named).
LABELS: dict[str, str] = {
    "predictor": "similarity",
    "kind": "kind",
    "n": "n",
    "n_clusters": "clusters (test task × seed)",
    "spearman": "Spearman ρ",
    "slope": "slope per SD",
    "joint_slope": "joint slope per SD",
    "partial_r2": "partial R²",
    "why": "no interval because",
    "mean": "mean",
    "noise_to_signal": "seed noise ÷ movement",
    "ad": "AD", "md": "MD", "wsd": "WSD",
    "a": "arm a", "b": "arm b",
    "prev_step": "step before", "drop_step": "drop at step", "drop": "drop in loss",
    "relative_arrived": "a relative arrived",
    "first_position": "first position",
    "has_relative": "has a relative among nearest",
    "share_relative": "share of nearest that are relatives",
    "share_same_family": "share of nearest from its family",
    "nearest_tasks": "nearest training tasks",
    "helpful_more": "helpful relatives a fed beyond b",
    "min_distance_seen": "min distance to seen data",
    "loss_fall": "fall in loss",
}

INTERVAL = "[95% interval]"


def label(column: object) -> str:
    """A column's reader-facing name: :data:`LABELS`, else underscores as spaces.

    >>> label("noise_to_signal"), label("first_token")
    ('seed noise ÷ movement', 'first token')
    """
    name = str(column)
    return LABELS.get(name, name.replace("_", " "))


def _number(v: object) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3g}"


def _interval_columns(columns: list[str]) -> dict[str, tuple[str, str]]:
    """Estimate column → its (lo, hi) columns, for ``x, x_lo, x_hi`` and ``mean, lo, hi``."""
    out = {c: (f"{c}_lo", f"{c}_hi") for c in columns
           if f"{c}_lo" in columns and f"{c}_hi" in columns}
    if {"mean", "lo", "hi"} <= set(columns):
        out["mean"] = ("lo", "hi")
    return out


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """The table as shown: estimates merged with their intervals, reader-facing column names.
    The index is left alone (see :func:`table_html`)."""
    if isinstance(table.columns, pd.MultiIndex):
        return table
    columns = [str(c) for c in table.columns]
    intervals = _interval_columns(columns)
    merged = {c for pair in intervals.values() for c in pair}
    out = {}
    for column, name in zip(table.columns, columns):
        if name in merged:
            continue
        if name in intervals:
            lo, hi = intervals[name]
            out[f"{label(name)} {INTERVAL}"] = [
                _number(v) if not np.isfinite(a) else f"{_number(v)} [{_number(a)}, {_number(b)}]"
                for v, a, b in zip(table[column], table[lo].astype(float),
                                   table[hi].astype(float))]
        else:
            out[label(name)] = table[column]
    return pd.DataFrame(out, index=table.index)


def bare_index(index: pd.Index) -> bool:
    """An index that says nothing: unnamed integers (``0, 1, 2`` or what a filter left)."""
    return (not isinstance(index, pd.MultiIndex) and index.name is None
            and pd.api.types.is_integer_dtype(index.dtype))


def table_html(table: pd.DataFrame) -> str:
    """The HTML a notebook shows for ``table`` (see the module docstring)."""
    shown = readable(table)
    styler = shown.style.format(precision=3, na_rep="—").set_table_attributes(
        'class="dataframe zsg-table"')
    if bare_index(table.index):
        styler = styler.hide(axis="index")
    return styler.to_html()


def enable_book_display() -> Mode:
    """Charts offline (:func:`~zsg_lib.pages.render.enable_offline_altair`), and tables and
    findings shown as this module describes, in the running IPython kernel (nothing else
    changes outside one). Returns the chart mode."""
    mode = enable_offline_altair()
    try:
        from IPython import get_ipython
    except ImportError:  # not in a notebook: charts are all there is to set up
        return mode
    shell = get_ipython()
    if shell is not None:
        from ..analysis.findings import Finding
        from .overview import card

        html = shell.display_formatter.formatters["text/html"]
        html.for_type(pd.DataFrame, table_html)
        html.for_type(Finding, lambda f: str(card(f)))
    return mode
