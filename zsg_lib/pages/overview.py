"""The summary's view of the findings: every judged contrast as one table for the forest plot
(:func:`contrasts`, drawn by :func:`zsg_lib.pages.plots.forest`), one short row per finding
with its verdict badge and a link to the chapter (:func:`finding_rows`), and the card a
chapter shows for a finding (:func:`card`, the anchor those links point at).

Each contrast comes with the smallest difference this run could have detected
(:func:`zsg_lib.analysis.stats.minimum_detectable`: for a 95% interval of half-width ``h``,
``(1.96 + 0.84) / 1.96 · h``, the difference found with 80% power under a normal
approximation), so a claim that "does not agree" reads either as "no difference of that size"
(a narrow interval around zero) or as "too little power" (a wide one).

Under a query split (issue #29) a test-centric finding carries a second verdict, on the
evaluation instances (:attr:`~zsg_lib.analysis.findings.Finding.evaluation`): the forest plot
draws its contrasts as a second mark (``part``), the summary's rows get a second verdict column
and the sentence where the two differ, and a chapter's card shows the two verdicts side by
side. Without a split the page reads as before, with one sentence saying why there is no
evaluation verdict.

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

from ..analysis.findings import Contrast, Finding, part_difference
from ..analysis.parts import PART_NAMES
from ..data.split import EVALUATION, QUERY
from ..profiles.chapters import CHAPTERS
from .plots import VERDICT_COLOURS

GREY = "color:#57606a"  # secondary text: detectable sizes, notes


class Html(str):
    """HTML text a notebook shows as HTML (``_repr_html_``) and a test can read as a string."""

    def _repr_html_(self) -> str:
        return str(self)


def _note(text: str) -> str:
    """A note's text as HTML: escaped, its `code` as code (the notes are Markdown too)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


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


def badge(status: str, wrap: bool = False) -> str:
    """A verdict as a coloured label (inline style: it reads the same in JupyterLab);
    ``wrap``: its words may wrap (a narrow column)."""
    colour = VERDICT_COLOURS.get(status, VERDICT_COLOURS["not measured"])
    lines = "display:inline-block;line-height:1.25" if wrap else "white-space:nowrap"
    return (f'<span class="zsg-badge" style="background:{colour};color:#fff;'
            'border-radius:0.8em;padding:0.1em 0.6em;font-size:0.85em;font-weight:600;'
            f'{lines}">{html.escape(status)}</span>')


def _detectable(c: Contrast) -> str:
    d = c.detectable
    if not math.isfinite(d):
        return "no interval"
    return f"±{d:.0%}" if "%" in c.fmt else f"±{d:.2g}"


def contrasts(found: Sequence[Finding]) -> pd.DataFrame:
    """One row per contrast of every finding, in the order of the findings (the forest
    plot's lines): ``finding, row, part, measure, estimate, lo, hi, detectable, claimed,
    reference, status, shown, detectable_shown, fmt, link``; ``part``: ``query`` (the finding's
    own contrasts), or ``evaluation`` (those of its verdict on the evaluation instances, right
    after). Findings without a contrast (not measured, or judged without an interval) have no
    row."""
    rows = []
    for f in found:
        judged = [(QUERY, f)] + ([(EVALUATION, f.evaluation)] if f.evaluation else [])
        for part, g in judged:
            for c in g.contrasts:
                rows.append({"finding": f.section, "row": f"{f.section}: {c.label}",
                             "part": part, "measure": c.measure, "estimate": c.estimate,
                             "lo": c.lo, "hi": c.hi, "detectable": c.detectable,
                             "claimed": c.claimed, "reference": c.reference,
                             "status": c.status, "shown": c.shown(),
                             "detectable_shown": _detectable(c), "fmt": c.fmt,
                             "link": chapter_link(f.section)})
    columns = ["finding", "row", "part", "measure", "estimate", "lo", "hi", "detectable",
               "claimed", "reference", "status", "shown", "detectable_shown", "fmt", "link"]
    return pd.DataFrame(rows, columns=columns)


def _numbers(f: Finding) -> str:
    """A finding's contrasts, one short line each, or why it has none."""
    if not f.contrasts:  # not measured (the reason), or judged without an interval
        return html.escape(f.measured)
    return "<br>".join(
        f"{html.escape(c.label)}: <code>{html.escape(c.shown())}</code>"
        f" <span style=\"color:#57606a\">(detects {html.escape(_detectable(c))})</span>"
        for c in f.contrasts)


def _both_numbers(f: Finding) -> str:
    """Each contrast on the query instances with the same contrast on the evaluation
    instances under it."""
    if f.evaluation is None or not f.contrasts:
        return _numbers(f)
    theirs = {c.label: c for c in f.evaluation.contrasts}
    out = []
    for c in f.contrasts:
        line = (f"{html.escape(c.label)}: <code>{html.escape(c.shown())}</code>"
                f' <span style="{GREY}">(detects {html.escape(_detectable(c))})</span>')
        e = theirs.get(c.label)
        if e is not None:
            line += (f'<br><span style="{GREY}">evaluation:</span> '
                     f"<code>{html.escape(e.shown())}</code>"
                     f' <span style="{GREY}">(detects {html.escape(_detectable(e))})</span>')
        out.append(line)
    return "<br>".join(out)


def parts_note(found: Sequence[Finding]) -> str:
    """Why no test-centric finding has an evaluation verdict (no query split), once for a
    page; ``""`` where some finding has one or none is judged part by part."""
    if any(f.evaluation is not None for f in found):
        return ""
    return next((f.no_evaluation for f in found if f.no_evaluation), "")


def finding_rows(found: Sequence[Finding]) -> Html:
    """One short row per finding: the section (a link to its card in the chapter), the claim,
    the verdict badge and the key numbers with their intervals and detectable size. Where a
    finding has an evaluation verdict: a second verdict column (findings judged on all test
    instances say so there), the evaluation numbers under the query ones and, where the two
    verdicts differ, the sentence that says how; without, one sentence under the table."""
    both = any(f.evaluation is not None for f in found)
    if both:
        verdicts = (f"<th>verdict: {PART_NAMES[QUERY]}</th>"
                    f"<th>verdict: {PART_NAMES[EVALUATION]}</th>")
        columns = 5
    else:
        verdicts, columns = "<th>verdict</th>", 4
    head = (f"<tr><th>finding</th><th>the paper's claim</th>{verdicts}"
            "<th>this run: estimate [95% interval]</th></tr>")

    def second(f: Finding) -> str:
        if not both:
            return ""
        if f.evaluation is None:
            return f'<td><span style="{GREY}">all test instances</span></td>'
        return f"<td>{badge(f.evaluation.status, wrap=True)}</td>"

    def row(f: Finding) -> str:
        differ = part_difference(f, numbers=False)  # the numbers are in the row above it
        # the sentence spans the row under the finding's, which then has no rule under it
        rule = ' style="border-bottom:none"' if differ else ""
        cells = (f'<td{rule}><a class="zsg-finding-link" href="{chapter_link(f.section)}">'
                 f"{html.escape(f.section)}</a></td><td{rule}>{html.escape(f.claim)}</td>"
                 f"<td{rule}>{badge(f.status, wrap=both)}</td>{second(f)}"
                 f"<td{rule}>{_both_numbers(f)}</td>").replace("<td>", f"<td{rule}>")
        sentence = (f'<tr><td colspan="{columns}" style="padding-top:0;{GREY}">'
                    f"{html.escape(differ)}</td></tr>" if differ else "")
        return f"<tr>{cells}</tr>{sentence}"

    body = "".join(row(f) for f in found)
    note = parts_note(found)
    note = f'<p class="zsg-parts-note" style="{GREY}">{_note(note)}</p>' if note else ""
    return Html(f'<table class="zsg-findings">{head}{body}</table>{note}')


def _verdict_block(f: Finding, heading: str) -> str:
    """One verdict of a card: the badge (and what it was judged on), the measured sentence,
    the contrasts, under a left rule in the verdict's colour."""
    colour = VERDICT_COLOURS.get(f.status, VERDICT_COLOURS["not measured"])
    numbers = (f'<div style="margin-top:0.4em">{_numbers(f)}</div>' if f.contrasts else "")
    return (f'<div style="border-left:4px solid {colour};padding:0.5em 0.9em;'
            f'background:#f6f8fa;flex:1 1 18em;min-width:0">'
            f"<div>{badge(f.status)} {heading}</div>"
            f'<div style="margin-top:0.4em">{html.escape(f.measured)}</div>{numbers}</div>')


def card(f: Finding) -> Html:
    """A finding as a chapter shows it: the verdict badge, the claim, what this run measured
    (the full sentence, wrapped) and its contrasts; its id is the summary's link target.
    With an evaluation verdict, the two verdicts side by side (query first: the paper's) and
    the sentence where they differ; judged part by part without one, the sentence why."""
    title = f"<strong>{html.escape(f.section)}</strong>: {html.escape(f.claim)}"
    if f.evaluation is None:
        colour = VERDICT_COLOURS.get(f.status, VERDICT_COLOURS["not measured"])
        numbers = (f'<div style="margin-top:0.4em">{_numbers(f)}</div>' if f.contrasts else "")
        note = (f'<div style="margin-top:0.4em;{GREY}">{_note(f.no_evaluation)}</div>'
                if f.no_evaluation else "")
        return Html(
            f'<div class="zsg-finding" id="{anchor(f.section)}" style="border-left:4px solid '
            f'{colour};padding:0.5em 0.9em;margin:0.4em 0;background:#f6f8fa;'
            'overflow-wrap:anywhere">'
            f"<div>{badge(f.status)} {title}</div>"
            f'<div style="margin-top:0.4em">{html.escape(f.measured)}</div>{numbers}{note}</div>')
    differ = part_difference(f, numbers=False) or "The two parts give the same verdict."
    blocks = "".join(_verdict_block(g, f"judged on the {PART_NAMES[part]}")
                     for part, g in ((QUERY, f), (EVALUATION, f.evaluation)))
    return Html(
        f'<div class="zsg-finding" id="{anchor(f.section)}" style="margin:0.4em 0;'
        'overflow-wrap:anywhere">'
        f"<div>{title}</div>"
        f'<div style="display:flex;flex-wrap:wrap;gap:0.6em;margin-top:0.4em">{blocks}</div>'
        f'<div style="margin-top:0.4em">{html.escape(differ)}</div></div>')
