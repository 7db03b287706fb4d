"""Issue 10 in the arrangements: an argument of the wrong type or shape is an
ArrangementError naming it (never a TypeError from inside NumPy), and a non-finite WSD weight
is refused instead of silently keeping the input order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zsg_lib.arrange import ARRANGEMENTS, arrange, by_similarity, random_order, tma, tma_window
from zsg_lib.arrange.multiturn import tma_rounds
from zsg_lib.errors import ArrangementError
from zsg_lib.schema import instances_from_records
from zsg_lib.similarity import distance_stats

MSGS = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def table(n: int, ids=None):
    ids = ids or [f"x{i}" for i in range(n)]
    return instances_from_records(
        [{"id": i, "task": f"t{k % 2}", "messages": MSGS} for k, i in enumerate(ids)])


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    return table(6), rng.normal(size=(6, 4)), rng.normal(size=(2, 4))


def raises(match: str):
    return pytest.raises(ArrangementError, match=match)


# --------------------------------------------------------------------------- budget


@pytest.mark.parametrize("budget", [3.0, 2.5, "3", True])
def test_budget_of_the_wrong_type_names_budget(inputs, budget):
    train, e_train, e_test = inputs
    with raises(r"^budget: expected a whole number >= 1 \(an int\) \(or None\), got "):
        tma(train, e_train, e_test, "nft", budget=budget)
    with raises(r"^budget: expected a whole number"):
        arrange("tma-max-min", train, e_train, e_test, budget=budget)


def test_budget_below_one_and_numpy_ints(inputs):
    train, e_train, e_test = inputs
    with raises(r"^budget: must be >= 1, got 0"):
        tma(train, e_train, e_test, "nft", budget=0)
    assert len(tma(train, e_train, e_test, "nft", budget=np.int64(3)).ids) == 3
    with raises(r"^max_rounds: expected a whole number"):
        tma_rounds(e_train, e_test, max_rounds=1.5)
    with raises(r"^k: expected a whole number"):
        tma_rounds(e_train, e_test, k="8")


# --------------------------------------------------------------------------- seed


@pytest.mark.parametrize("name", ["random", "round-robin", "cluster", "nft", "coarse-rt",
                                  "tma-rt"])
@pytest.mark.parametrize("seed", [1.0, "0", None, -1])
def test_seed_not_a_non_negative_int_names_seed(inputs, name, seed):
    train, e_train, e_test = inputs
    emb = (e_train, e_test) if ARRANGEMENTS[name].needs_embeddings else ()
    with raises(r"^seed: (expected a whole number >= 0|must be >= 0)"):
        arrange(name, train, *emb, seed=seed)


def test_numpy_int_seed_gives_the_same_order(inputs):
    train = inputs[0]
    assert random_order(train, seed=np.int32(4)).ids == random_order(train, seed=4).ids


# --------------------------------------------------------------------------- embeddings


def test_plain_list_of_embeddings_names_the_argument(inputs):
    train, e_train, e_test = inputs
    with raises(r"^train_emb: expected a NumPy array \(n, dim\), got list; pass np.asarray"):
        by_similarity(train, e_train.tolist(), e_test)
    with raises(r"^test_emb: expected a NumPy array \(n, dim\), got list"):
        by_similarity(train, e_train, e_test.tolist())
    with raises(r"^train_emb: expected a NumPy array"):
        tma(train, e_train.tolist(), e_test, budget=2)
    with raises(r"^test_emb: expected a NumPy array"):
        tma(train, e_train, [list(r) for r in e_test], budget=2)


def test_embeddings_whose_rows_do_not_match_the_table(inputs):
    train, e_train, e_test = inputs
    for fn in (lambda e: by_similarity(train, e, e_test),
               lambda e: tma(train, e, e_test, budget=2),
               lambda e: tma_window(train, e, e_test, start=0)):
        with raises(r"^train_emb: expected 6 rows \(one per training instance\), got shape "
                    r"\(5, 4\)"):
            fn(e_train[:5])


def test_embeddings_of_strings_or_one_dimension_are_refused(inputs):
    train, e_train, e_test = inputs
    with raises(r"^train_emb: expected real numbers \(a float array\), got dtype <U"):
        by_similarity(train, e_train.astype(str), e_test)
    with raises(r"^test_emb: expected a 2-D \(n, dim\) array"):
        by_similarity(train, e_train, e_test[0])


# --------------------------------------------------------------------------- the table


def test_duplicate_ids_name_the_id_and_both_rows():
    train = table(4, ids=["a", "b", "c", "b"])
    with raises(r"^train: id 'b' appears twice \(rows 1 and 3\)"):
        random_order(train)
    df = pd.DataFrame({"id": ["p", "p"], "task": ["t", "t"]})
    with raises(r"train: id 'p' appears twice \(rows 0 and 1\)"):
        arrange("cluster", df)


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize("w", [float("nan"), float("inf"), -np.inf, "1.0"])
def test_non_finite_w_avg_raises_naming_w_avg(inputs, w):
    train, e_train, e_test = inputs
    with raises(r"^w_avg: expected a finite number"):
        by_similarity(train, e_train, e_test, "nft", w_avg=w)
    with raises(r"^w_avg: expected a finite number"):
        distance_stats(e_train, e_test, w_avg=w)


def test_w_min_must_be_finite_and_a_finite_w_avg_still_works(inputs):
    _, e_train, e_test = inputs
    with raises(r"^w_min: expected a finite number"):
        distance_stats(e_train, e_test, w_min=float("nan"))
    st = distance_stats(e_train, e_test, w_avg=np.float32(0.5))
    assert st.w_avg == 0.5 and np.isfinite(st.wsd).all()


def test_coarse_order_refuses_nan_w_avg_too(inputs):
    train, e_train, e_test = inputs
    with raises(r"^w_avg"):
        by_similarity(train, e_train, e_test, "fft", "coarse", w_avg=float("nan"))


# --------------------------------------------------------------------------- windows, sizes


@pytest.mark.parametrize("kw, match", [
    ({"start": 1.0}, r"^start \(the window's first round\): expected a whole number"),
    ({"start": 0, "size": "2"}, r"^size \(rounds in the window\): expected a whole number"),
    ({"start": 0, "farthest": "yes"}, r"^farthest: expected True or False"),
    ({"start": 0, "chunk_size": 0}, r"^chunk_size: must be >= 1"),
])
def test_window_arguments_name_themselves(inputs, kw, match):
    train, e_train, e_test = inputs
    with raises(match):
        tma_window(train, e_train, e_test, **kw)


def test_chunk_size_of_the_wrong_type(inputs):
    train, e_train, e_test = inputs
    with raises(r"^chunk_size: expected a whole number >= 1"):
        by_similarity(train, e_train, e_test, chunk_size=2.0)
