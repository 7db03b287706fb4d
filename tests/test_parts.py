"""Query and evaluation instances judged side by side (issue #29): the same statistic on each
part's rows, the sentence where the verdicts differ, the summary's two columns, and today's
output where the scores have no evaluation instances."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from zsg_lib.analysis import findings, parts
from zsg_lib.data.split import EVALUATION, QUERY, TEST_PART
from zsg_lib.pages import overview, plots
from zsg_lib.study import chapter_data

JUDGE = findings.Judge(max_steps=4, eval_every=4, first_n_steps=4)


def scores(rng, effect: dict[str, float], tasks=6, seeds=3, per=(4, 6)) -> pd.DataFrame:
    """Arms nft and rt at the branch (step 0) and step 4, each test task with ``per``
    instances (query, evaluation); nft's extra fall ``effect[part]`` plus a shock per task ×
    seed × part, so the clusters vary."""
    rows = []
    for s in range(seeds):
        for t in range(tasks):
            for part, n in zip((QUERY, EVALUATION), per):
                shock = rng.normal(0, 0.03)
                for i in range(n):
                    key = {"seed": s, "task": f"t{t}", "id": f"t{t}-{part[0]}{i}",
                           TEST_PART: part}
                    base = 2.0 + rng.normal(0, 0.1)
                    later = base - 0.5 + rng.normal(0, 0.02)
                    rows += [{**key, "arrangement": "nft", "step": 0, "loss": base},
                             {**key, "arrangement": "rt", "step": 0, "loss": base},
                             {**key, "arrangement": "nft", "step": 4,
                              "loss": later - effect[part] + shock},
                             {**key, "arrangement": "rt", "step": 4, "loss": later}]
    return pd.DataFrame(rows)


def order(judge: findings.Judge, s: pd.DataFrame) -> findings.Finding:
    return findings.ordering("3. similarity", judge, s, "nft < rt", "NFT < RT")


@pytest.fixture(scope="module")
def differing() -> tuple[pd.DataFrame, findings.Finding]:
    """NFT clearly lower on the query instances, no different on the evaluation ones."""
    s = scores(np.random.default_rng(0), {QUERY: 0.3, EVALUATION: 0.0})
    return s, findings.by_part(order, JUDGE, s)


def test_each_part_is_judged_by_the_same_statistic_on_its_own_rows(differing):
    s, found = differing
    assert found.status == "agrees"
    assert found.evaluation is not None and found.evaluation.status != "agrees"
    for part, judged in ((QUERY, found), (EVALUATION, found.evaluation)):
        alone = order(JUDGE, s[s[TEST_PART] == part])  # the part's rows, judged directly
        assert [(c.estimate, c.lo, c.hi) for c in judged.contrasts] == \
            [(c.estimate, c.lo, c.hi) for c in alone.contrasts]
        assert judged.comparisons[0].views["instance"].n_clusters == 6 * 3  # task × seed
    assert found.contrasts[0].estimate == pytest.approx(-0.3, abs=0.05)
    assert abs(found.evaluation.contrasts[0].estimate) < 0.05


def test_the_sentence_says_where_the_verdicts_differ(differing):
    _, found = differing
    sentence = findings.part_difference(found)
    assert sentence.startswith("The verdicts differ. nft − rt: agrees on the query instances")
    assert f"{found.evaluation.status} on the unseen evaluation instances" in sentence
    assert found.contrasts[0].shown() in sentence  # with both estimates...
    assert found.contrasts[0].shown() not in findings.part_difference(found, numbers=False)
    same = findings.by_part(order, JUDGE, scores(np.random.default_rng(1),
                                                 {QUERY: 0.3, EVALUATION: 0.3}))
    assert same.evaluation.status == same.status == "agrees"
    assert findings.part_difference(same) == ""


def test_without_the_column_the_finding_is_todays(differing):
    s, _ = differing
    today = s.drop(columns=TEST_PART)
    found, plain = findings.by_part(order, JUDGE, today), order(JUDGE, today)
    assert (found.status, found.measured) == (plain.status, plain.measured)
    assert found.contrasts == plain.contrasts and found.details.equals(plain.details)
    assert found.evaluation is None and found.no_evaluation == parts.NO_EVALUATION
    # a column of query rows only is the same as no column
    assert findings.by_part(order, JUDGE, today.assign(**{TEST_PART: QUERY})).measured == \
        plain.measured
    # the pages: one verdict column, the sentence once, the card as before with it
    rows = str(overview.finding_rows([found, found]))
    assert rows.count("<th>verdict</th>") == 1 and "verdict: evaluation" not in rows
    assert rows.count("No evaluation instances") == 1
    assert "<code>split.query_per_task</code>" in rows  # the note's code, as code
    card = str(overview.card(found))
    assert card.count('class="zsg-badge"') == 1 and "No evaluation instances" in card
    assert list(findings.table([found]).columns) == ["finding", "paper", "this run", "agreement"]
    assert set(overview.contrasts([found])["part"]) == {QUERY}
    assert "yOffset" not in json.dumps(plots.forest(overview.contrasts([found])).to_dict())
    # a claim that was not measured has its reason and nothing about the parts
    missing = findings.by_part(order, JUDGE, today[today["arrangement"] == "nft"])
    assert missing.status == "not measured" and missing.no_evaluation == ""


def test_by_part_reads_the_column_and_refuses_unknown_parts():
    s = pd.DataFrame({"id": list("abc"), TEST_PART: [EVALUATION, QUERY, EVALUATION]})
    assert {p: r["id"].tolist() for p, r in parts.by_part(s).items()} == \
        {QUERY: ["b"], EVALUATION: ["a", "c"]}
    assert not parts.has_evaluation(s[s[TEST_PART] == QUERY])
    with pytest.raises(ValueError, match=r"'test_part' holds \['held out'\]"):
        parts.by_part(s.assign(**{TEST_PART: [QUERY, "held out", QUERY]}))
    with pytest.raises(ValueError, match="a missing value"):
        parts.by_part(s.assign(**{TEST_PART: [QUERY, None, QUERY]}))


def test_the_summary_carries_both_verdicts(differing):
    _, found = differing
    early = findings.Finding("1. early generalization", "c", "m", "agrees", contrasts=(
        findings.Contrast("share", 0.7, 0.6, 0.8, "above", "share", "agrees", reference=0.5,
                          fmt=".0%"),))
    rows = str(overview.finding_rows([early, found]))
    assert "<th>verdict: query instances (arranged toward)</th>" in rows
    assert "<th>verdict: evaluation instances (never arranged toward)</th>" in rows
    assert rows.count('class="zsg-badge"') == 3  # early's one, the ordering's two
    assert "all test instances" in rows  # early is judged on every instance, and says so
    assert findings.part_difference(found, numbers=False) in rows
    assert "No evaluation instances" not in rows
    table = findings.table([early, found])
    assert table["agreement, evaluation instances"].tolist() == [
        "— (judged on all test instances)", found.evaluation.status]
    frame = overview.contrasts([early, found])
    assert frame["part"].tolist() == [QUERY, QUERY, EVALUATION]
    assert frame["row"].tolist()[1:] == ["3. similarity: nft − rt"] * 2  # one line, two marks
    spec = plots.forest(frame).to_dict()
    loss = spec["vconcat"][1]["layer"]
    assert loss[4]["encoding"]["yOffset"]["field"] == "part"  # the points, one above the other
    assert loss[4]["encoding"]["shape"]["field"] == "part"
    assert "evaluation instances" in " ".join(spec["title"]["subtitle"])
    # the chapter's card: both verdicts side by side, and the sentence
    card = str(overview.card(found))
    assert card.count('class="zsg-badge"') == 2 and card.count('class="zsg-finding"') == 1
    assert card.index("judged on the query") < card.index("judged on the evaluation")
    assert findings.part_difference(found, numbers=False).replace("'", "&#x27;") in card


def test_chapter_7_judges_its_predictor_test_on_each_part():
    rng = np.random.default_rng(3)
    rows = [{"seed": s, "task": f"t{t}", "id": f"t{t}-{i}", "step": st, "prev_step": st - 1,
             "arrangement": "random", TEST_PART: QUERY if i < 3 else EVALUATION}
            for s in range(3) for t in range(6) for st in range(1, 7) for i in range(6)]
    frame = pd.DataFrame(rows)
    frame["emb_max"] = rng.normal(size=len(frame))
    query = frame[TEST_PART] == QUERY  # only the query instances fall with similarity
    frame["dloss"] = rng.normal(0, 0.2, len(frame)) - 0.3 * frame["emb_max"] * query
    found = chapter_data.instance_finding(frame)
    assert found.status == "agrees" and found.contrasts[0].estimate < -0.2
    assert found.evaluation.status != "agrees"
    assert abs(found.evaluation.contrasts[0].estimate) < 0.1
    assert found.details["n"].iloc[0] == query.sum()  # the chapter's table: the query rows

