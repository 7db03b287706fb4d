"""The KL-based measure (the authors' word-bigram KL) of zsg_lib.similarity."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats as sps

from zsg_lib.errors import ArrangementError
from zsg_lib.similarity import kl_distance, ngram_codes


def authors_kl(train_texts, test_texts, n=2, epsilon=1e-10):
    """The authors' script (src/calculate_dataset_similarity_per_task_kl.py), with its
    vector over *distinct* n-grams (the script's list repeats each one per occurrence)."""
    def grams(texts):
        out = []
        for s in texts:
            w = s.split()
            out.extend(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
        return out

    def distribution(texts):
        counts = Counter(grams(texts))
        total = sum(counts.values())
        return {g: c / total for g, c in counts.items()}

    vocab = list(dict.fromkeys(grams(train_texts) + grams(test_texts)))
    p_d, q_d = distribution(train_texts), distribution(test_texts)
    p = np.array([p_d.get(g, 0) for g in vocab])
    q = np.array([q_d.get(g, 0) for g in vocab])
    q_smoothed = q + epsilon
    return np.sum(p * np.log(np.clip(p / q_smoothed, epsilon, None)))


def test_hand_computed_case():
    # p = (1/2, 1/2) over (a b), (c d); q = (1, 0): KL = 1/2 log(1/2 / (1 + eps)) + 1/2 log(1/2 / eps)
    kd = kl_distance(["a b", "c d"], ["a b"])
    eps = 1e-10
    want = 0.5 * np.log(0.5 / (1 + eps)) + 0.5 * np.log(0.5 / eps)
    assert kd.total == pytest.approx(want, rel=1e-12)
    # each instance holds half of p: its share is 2 * (1/2) * its term
    np.testing.assert_allclose(kd.per_train, [np.log(0.5 / (1 + eps)), np.log(0.5 / eps)])


def test_matches_the_authors_formula_and_shares_add_up():
    rng = np.random.default_rng(3)
    words = list("abcdefg")
    train = [" ".join(rng.choice(words, size=rng.integers(1, 9))) for _ in range(40)]
    test = [" ".join(rng.choice(words[:5], size=rng.integers(2, 9))) for _ in range(7)]
    kd = kl_distance(train, test)
    assert kd.total == pytest.approx(authors_kl(train, test), rel=1e-12)
    assert kd.per_train.mean() == pytest.approx(kd.total, rel=1e-12)
    # one-word texts have no bigram: no share
    assert all(s == 0 for t, s in zip(train, kd.per_train) if len(t.split()) < 2)


def test_equals_scipy_entropy_when_the_test_set_covers_every_training_bigram():
    train = ["a b c", "b c a b", "c a"]
    test = ["a b c a", "b c", "c a b b c"]
    kd = kl_distance(train, test)
    vocab = {}
    codes = ngram_codes(train + test, vocab)
    p = np.bincount(np.concatenate(codes[:3]), minlength=len(vocab))
    q = np.bincount(np.concatenate(codes[3:]), minlength=len(vocab))
    assert kd.total == pytest.approx(sps.entropy(p, q), abs=1e-8)  # eps shifts q by 1e-10


def test_identical_sets_are_at_zero_and_farther_text_is_farther():
    texts = ["the cat sat", "on the mat"]
    assert kl_distance(texts, texts).total == pytest.approx(0.0, abs=1e-8)
    near = kl_distance(["the cat sat"], texts).total
    far = kl_distance(["a dog ran"], texts).total
    assert 0 < near < far


def test_higher_order_ngrams():
    kd = kl_distance(["a b c"], ["a b c"], n=3)
    assert kd.total == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ArrangementError, match="train_texts: no word n-grams"):
        kl_distance(["a b"], ["a b c"], n=3)


@pytest.mark.parametrize("kwargs, match", [
    ({"train_texts": "a b", "test_texts": ["a b"]}, "train_texts: expected a sequence"),
    ({"train_texts": [], "test_texts": ["a b"]}, "train_texts: empty"),
    ({"train_texts": ["a b"], "test_texts": ["a", None]}, "test_texts: text 1 is NoneType"),
    ({"train_texts": ["a b"], "test_texts": ["b"]}, "test_texts: no word n-grams"),
    ({"train_texts": ["a b"], "test_texts": ["a b"], "n": 0}, "n: expected an n-gram order"),
    ({"train_texts": ["a b"], "test_texts": ["a b"], "eps": 0.0}, "eps: expected a positive"),
])
def test_bad_inputs_name_the_parameter(kwargs, match):
    with pytest.raises(ArrangementError, match=match):
        kl_distance(**kwargs)
