"""A score table's two parts under a query split (issue #29), for the analyses.

With a query split (``split.query_per_task``) each test task's instances are *query* instances,
the only ones an arrangement may look at, and *evaluation* instances, scored by every run and
never arranged toward. Score tables name each row's part in the ``test_part`` column
(:data:`zsg_lib.data.split.TEST_PART`). A test-centric claim is judged on each part by the
same statistic; only its input rows differ. Without a split every test instance is a query
instance (the paper's design), and a table without the column is read that way.

>>> import pandas as pd
>>> s = pd.DataFrame({"id": ["a", "b", "c"], "test_part": ["query", "evaluation", "query"]})
>>> {part: rows["id"].tolist() for part, rows in by_part(s).items()}
{'query': ['a', 'c'], 'evaluation': ['b']}
>>> list(by_part(s.drop(columns="test_part")))  # no column: every instance is a query one
['query']
>>> has_evaluation(s), query(s)["id"].tolist()
(True, ['a', 'c'])
"""

from __future__ import annotations

import pandas as pd

from ..data.split import EVALUATION, QUERY, TEST_PART, TEST_PARTS

#: How a page names each part (a verdict's heading, a table's column).
PART_NAMES = {QUERY: "query instances (arranged toward)",
              EVALUATION: "evaluation instances (never arranged toward)"}

#: What a page says where a test-centric claim has no evaluation verdict.
NO_EVALUATION = ("No evaluation instances: this profile arranges toward and judges on the same "
                 "test instances (`split.query_per_task` unset), as the paper does.")


def by_part(scores: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``scores`` split by the ``test_part`` column: the parts it holds, query first. A table
    without the column (no split, or runs from before it) is all query instances, returned
    as it is. A value other than ``query`` or ``evaluation`` is an error naming it."""
    if TEST_PART not in scores.columns:
        return {QUERY: scores}
    part = scores[TEST_PART]
    unknown = sorted(set(part.dropna().astype(str)) - set(TEST_PARTS)) + (
        ["a missing value"] if part.isna().any() else [])
    if unknown:
        raise ValueError(f"scores: column {TEST_PART!r} holds {unknown}; each row is one of "
                         f"{list(TEST_PARTS)}")
    found = {p: scores[part == p] for p in TEST_PARTS}
    return {p: rows for p, rows in found.items() if len(rows) or p == QUERY}


def query(scores: pd.DataFrame) -> pd.DataFrame:
    """The rows of the query instances (every row without a split): what a chapter's charts
    show, as the paper does."""
    return by_part(scores)[QUERY]


def has_evaluation(scores: pd.DataFrame) -> bool:
    """Whether ``scores`` holds evaluation instances (a query split was run)."""
    return EVALUATION in by_part(scores)
