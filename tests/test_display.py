"""How outputs read: tables without a bare index, readable names, intervals merged; the
summary's rows and a chapter's finding card."""

from __future__ import annotations

import numpy as np
import pandas as pd

from zsg_lib.analysis.findings import Contrast, Finding
from zsg_lib.pages import display, overview
from zsg_lib.profiles.chapters import CHAPTERS


def test_tables_hide_a_bare_index_and_keep_a_named_one():
    t = pd.DataFrame({"task": ["x", "y"], "mean": [1.0, 2.0], "lo": [0.5, 1.5],
                      "hi": [1.5, 2.5], "n": [3, 3]})
    bare = display.table_html(t.loc[[1, 0]])
    assert "mean [95% interval]" in bare and "1 [0.5, 1.5]" in bare
    assert 'class="row_heading' not in bare  # no 0 / 1 column
    named = display.table_html(t.set_index("task"))
    assert 'class="row_heading' in named and ">x<" in named


def test_interval_columns_merge_and_names_read():
    t = pd.DataFrame({"predictor": ["emb_max", "label"], "slope": [-0.2, np.nan],
                      "slope_lo": [-0.3, np.nan], "slope_hi": [-0.1, np.nan],
                      "partial_r2": [0.01, 0.0], "noise_to_signal": [0.3, 0.4]})
    shown = display.readable(t)
    assert list(shown.columns) == ["similarity", "slope per SD [95% interval]", "partial R²",
                                   "seed noise ÷ movement"]
    assert shown.iloc[0, 1] == "-0.2 [-0.3, -0.1]" and shown.iloc[1, 1] == "—"
    assert list(t.columns)[:2] == ["predictor", "slope"]  # the data keeps its names


def _finding(status: str = "does not agree") -> Finding:
    return Finding("3. similarity", "NFT < RT < FFT", "a long sentence of numbers", status,
                   contrasts=(Contrast("nft − rt", 0.01, -0.2, 0.22, "below", "loss", status),
                              Contrast("rt − fft", -0.3, -0.5, -0.1, "below", "loss", "agrees")))


def test_summary_rows_link_each_finding_to_its_card():
    found = [_finding(), Finding("7. gradient order", "grad-nft < nft", "not run", "not measured")]
    rows = str(overview.finding_rows(found))
    assert rows.count("<tr>") == 3 and rows.count('class="zsg-badge"') == 2
    assert 'href="03_similarity.html#finding-3-similarity"' in rows
    assert 'href="07_instance_level.html#finding-7-gradient-order"' in rows
    assert "detects ±0.3)" in rows  # (1.96 + 0.84) / 1.96 × 0.21
    card = str(overview.card(found[0]))
    assert 'id="finding-3-similarity"' in card and "a long sentence of numbers" in card


def test_every_judged_section_links_to_a_chapter_page():
    for spec in CHAPTERS.values():
        if spec.section:
            page = overview.chapter_link(spec.section).split("#")[0]
            assert page[:-len(".html")] in CHAPTERS, spec.section


def test_contrast_table_has_one_row_per_contrast():
    frame = overview.contrasts([_finding(), Finding("2. permutations", "c", "m", "not measured")])
    assert frame["row"].tolist() == ["3. similarity: nft − rt", "3. similarity: rt − fft"]
    assert frame["detectable"].iloc[0] == frame["detectable"].iloc[0]  # not NaN
