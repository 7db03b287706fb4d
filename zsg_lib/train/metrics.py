"""Generation metrics: Exact-Match (NIV2/SQuAD normalisation), ROUGE-1 and ROUGE-L.

Scores are in [0, 1] per instance (the paper reports them ×100, averaged over instances).

>>> normalize_answer("  The Answer: Paris!  ")
'answer paris'
>>> exact_match("the Allemagne.", "Allemagne")
1.0
>>> s = rouge_scores("the cat sat on the mat", "the cat is on the mat")
>>> round(s["rouge1"], 3), round(s["rougeL"], 3)
(0.833, 0.833)
>>> generation_metrics("", "anything")
{'exact_match': 0.0, 'rouge1': 0.0, 'rougeL': 0.0}
"""

from __future__ import annotations

import functools
import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and English articles, collapse whitespace (as NIV2 does)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised prediction equals the normalised reference, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


@functools.lru_cache(maxsize=1)
def _scorer():  # building the scorer costs more than scoring a short pair
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=False)


def rouge_scores(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1 and ROUGE-L F-measures (rouge-score's default tokeniser, no stemming)."""
    scores = _scorer().score(reference, prediction)
    return {"rouge1": float(scores["rouge1"].fmeasure), "rougeL": float(scores["rougeL"].fmeasure)}


def generation_metrics(prediction: str, reference: str) -> dict[str, float]:
    """Exact-Match, ROUGE-1 and ROUGE-L of one prediction against one reference."""
    return {"exact_match": exact_match(prediction, reference), **rouge_scores(prediction, reference)}
