"""Exact-Match normalisation and ROUGE against hand-computed values."""

from __future__ import annotations

import pytest

from zsg_lib.train.metrics import exact_match, generation_metrics, normalize_answer, rouge_scores


@pytest.mark.parametrize(
    ("pred", "ref", "em"),
    [
        ("Paris", "paris", 1.0),
        ("The Paris.", "paris", 1.0),
        ("  an   apple ", "Apple!", 1.0),
        ("Paris, France", "Paris", 0.0),
        ("", "", 1.0),
        ("theatre", "atre", 0.0),  # articles are removed as words, not substrings
    ],
)
def test_exact_match(pred, ref, em):
    assert exact_match(pred, ref) == em


def test_normalize():
    assert normalize_answer("A Tale, of THE Two cities!") == "tale of two cities"


def test_rouge_hand_values():
    # ref 6 tokens, pred 6 tokens, 5 unigrams shared -> P = R = F = 5/6
    s = rouge_scores("the cat sat on the mat", "the cat is on the mat")
    assert s["rouge1"] == pytest.approx(5 / 6)
    # LCS of "a b c d" and "a c b d" is 3 -> F = 3/4
    s = rouge_scores("a b c d", "a c b d")
    assert s["rougeL"] == pytest.approx(0.75) and s["rouge1"] == pytest.approx(1.0)


def test_generation_metrics_empty_prediction():
    m = generation_metrics("", "forty two")
    assert m == {"exact_match": 0.0, "rouge1": 0.0, "rougeL": 0.0}
