"""The summary's view of the findings: every judged contrast as one table for the forest plot
(:func:`contrasts`, drawn by :func:`zsg_lib.pages.plots.forest`), one short row per finding
with its verdict badge and a link to the chapter (:func:`finding_rows`), and the card a
chapter shows for a finding (:func:`card`, the anchor those links point at).

Each contrast comes with the smallest difference this run could have detected
(:func:`zsg_lib.analysis.stats.minimum_detectable`: for a 95% interval of half-width ``h``,
``(1.96 + 0.84) / 1.96 · h``, the difference found with 80% power under a normal
approximation), so a claim that "does not agree" reads either as "no difference of that size"
(a narrow interval around zero) or as "too little power" (a wide one).

>>> from zsg_lib.analysis.findings import Contrast, Finding
>>> f = Finding("3. similarity", "NFT < RT < FFT", "…", "agrees", contrasts=(
...     Contrast("nft − rt", -0.1, -0.15, -0.05, "below", "loss difference", "agrees"),))
>>> contrasts([f])[["row", "shown", "detectable_shown"]].to_dict("records")
[{'row': '3. similarity: nft − rt', 'shown': '-0.1 [-0.15, -0.05]', 'detectable_shown': '±0.071'}]
>>> chapter_link("3. similarity")
'03_similarity.html#finding-3-similarity'
>>> 'class="zsg-badge"' in badge("agrees")
True
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

import pandas as pd

from ..analysis.findings import Contrast, Finding
from ..profiles.chapters import CHAPTERS
from .plots import VERDICT_COLOURS


class Html(str):
    """HTML text a notebook shows as HTML (``_repr_html_``) and a test can read as a string."""

    def _repr_html_(self) -> str:
        return str(self)


def anchor(section: str) -> str:
    """The id of a finding's card: ``"5. turn windows"`` → ``finding-5-turn-windows``."""
    return "finding-" + re.sub(r"[^a-z0-9]+", "-", section.lower()).strip("-")


def chapter_link(section: str) -> str:
    """Where a finding's details are: its chapter page (by the section's number) and card.
    Relative to the summary page, which sits beside the chapters."""
    number = section.split(".")[0].strip()
    stems = [s for s in CHAPTERS if number.isdigit() and s.startswith(f"{int(number):02d}_")]
    page = f"{stems[0]}.html" if stems else ""
    return f"{page}#{anchor(section)}"


def badge(status: str) -> str:
    """A verdict as a coloured label (inline style: it reads the same in JupyterLab)."""
    colour = VERDICT_COLOURS.get(status, VERDICT_COLOURS["not measured"])
    return (f'<span class="zsg-badge" style="background:{colour};color:#fff;'
            'border-radius:0.8em;padding:0.1em 0.6em;font-size:0.85em;font-weight:600;'
            f'white-space:nowrap">{html.escape(status)}</span>')


def _detectable(c: Contrast) -> str:
    d = c.detectable
    if not math.isfinite(d):
        return "no interval"
    return f"±{d:.0%}" if "%" in c.fmt else f"±{d:.2g}"


def contrasts(found: Sequence[Finding]) -> pd.DataFrame:
    """One row per contrast of every finding, in the order of the findings (the forest
    plot's lines): ``finding, row, measure, estimate, lo, hi, detectable, claimed,
    reference, status, shown, detectable_shown, fmt, link``. Findings without a contrast (not
    measured, or judged without an interval) have no row."""
    rows = []
    for f in found:
        for c in f.contrasts:
            rows.append({"finding": f.section, "row": f"{f.section}: {c.label}",
                         "measure": c.measure, "estimate": c.estimate, "lo": c.lo, "hi": c.hi,
                         "detectable": c.detectable, "claimed": c.claimed,
                         "reference": c.reference, "status": c.status, "shown": c.shown(),
                         "detectable_shown": _detectable(c), "fmt": c.fmt,
                         "link": chapter_link(f.section)})
    columns = ["finding", "row", "measure", "estimate", "lo", "hi", "detectable", "claimed",
               "reference", "status", "shown", "detectable_shown", "fmt", "link"]
    return pd.DataFrame(rows, columns=columns)


def _numbers(f: Finding) -> str:
    """A finding's contrasts, one short line each, or why it has none."""
    if not f.contrasts:  # not measured (the reason), or judged without an interval
        return html.escape(f.measured)
    return "<br>".join(
        f"{html.escape(c.label)}: <code>{html.escape(c.shown())}</code>"
        f" <span style=\"color:#57606a\">(detects {html.escape(_detectable(c))})</span>"
        for c in f.contrasts)


def finding_rows(found: Sequence[Finding]) -> Html:
    """One short row per finding: the section (a link to its card in the chapter), the claim,
    the verdict badge and the key numbers with their intervals and detectable size."""
    head = ("<tr><th>finding</th><th>the paper's claim</th><th>verdict</th>"
            "<th>this run: estimate [95% interval]</th></tr>")
    body = "".join(
        f'<tr><td><a class="zsg-finding-link" href="{chapter_link(f.section)}">'
        f"{html.escape(f.section)}</a></td><td>{html.escape(f.claim)}</td>"
        f"<td>{badge(f.status)}</td><td>{_numbers(f)}</td></tr>" for f in found)
    return Html(f'<table class="zsg-findings">{head}{body}</table>')


def card(f: Finding) -> Html:
    """A finding as a chapter shows it: the verdict badge, the claim, what this run measured
    (the full sentence, wrapped) and its contrasts; its id is the summary's link target."""
    colour = VERDICT_COLOURS.get(f.status, VERDICT_COLOURS["not measured"])
    numbers = (f'<div style="margin-top:0.4em">{_numbers(f)}</div>' if f.contrasts else "")
    return Html(
        f'<div class="zsg-finding" id="{anchor(f.section)}" style="border-left:4px solid '
        f'{colour};padding:0.5em 0.9em;margin:0.4em 0;background:#f6f8fa;'
        'overflow-wrap:anywhere">'
        f"<div>{badge(f.status)} <strong>{html.escape(f.section)}</strong>: "
        f"{html.escape(f.claim)}</div>"
        f'<div style="margin-top:0.4em">{html.escape(f.measured)}</div>{numbers}</div>')
