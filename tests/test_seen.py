"""The seen-prefix distance (zsg_lib.analysis.seen)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zsg_lib.analysis.seen import consumed_order, seen_prefix
from zsg_lib.similarity import kl_distance


def test_tiny_known_case():
    # two training rows at step 1 along x, then one along y at step 3; test tasks x and y
    order = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    test = np.array([[1.0, 0.0], [0.0, 3.0], [0.0, 1.0]])
    sp = seen_prefix(order, [1, 1, 3], test, ["x", "y", "y"], steps=[0, 2, 3]).set_index(
        ["step", "task"])
    c = np.sqrt(0.5)
    assert sp.loc[(0, "x"), "n_seen"] == 0 and sp.loc[(0, "x")][["min", "kl"]].isna().all()
    assert sp.loc[(2, "x"), "n_seen"] == 2
    assert sp.loc[(2, "x"), ["min", "mean", "max"]].tolist() == pytest.approx(
        [-1, -(1 + c) / 2, -c])
    # task y at step 2: cosines (0, c) for both of its instances
    assert sp.loc[(2, "y"), ["min", "mean", "max"]].tolist() == pytest.approx([-c, -c / 2, 0])
    # centroid of the seen rows (1 + c, c) / 2 against y's centroid (0, 1)
    cen = c / np.hypot(1 + c, c)
    assert sp.loc[(2, "y"), "centroid"] == pytest.approx(-cen)
    assert sp.loc[(3, "y"), ["min", "max"]].tolist() == pytest.approx([-1, 0])
    assert sp.loc[(3, "y"), "mean"] == pytest.approx(-(0 + c + 1) / 3)


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_matches_the_dense_definitions_for_any_chunking(chunk):
    rng = np.random.default_rng(chunk)
    order, test = rng.normal(size=(23, 4)), rng.normal(size=(7, 4))
    tasks = list("aabbbcc")
    seen_at = np.sort(rng.integers(1, 9, size=23))
    words = list("pqrstu")
    order_texts = [" ".join(rng.choice(words, size=rng.integers(1, 6))) for _ in range(23)]
    test_texts = [" ".join(rng.choice(words, size=rng.integers(2, 6))) for _ in range(7)]
    steps = [8, 0, 3, 5, 3]
    sp = seen_prefix(order, seen_at, test, tasks, steps, order_texts, test_texts,
                     chunk_size=chunk)
    assert sp["step"].tolist() == [s for s in steps for _ in "abc"]
    on = order / np.linalg.norm(order, axis=1, keepdims=True)
    tn = test / np.linalg.norm(test, axis=1, keepdims=True)
    for row in sp.itertuples():
        k = int((seen_at <= row.step).sum())
        assert row.n_seen == k
        if k == 0:
            assert np.isnan([row.min, row.mean, row.max, row.centroid, row.kl]).all()
            continue
        cols = [j for j, t in enumerate(tasks) if t == row.task]
        d = -(on[:k] @ tn[cols].T)
        ca, cb = on[:k].mean(axis=0), tn[cols].mean(axis=0)
        assert [row.min, row.mean, row.max] == pytest.approx([d.min(), d.mean(), d.max()],
                                                             abs=1e-6)
        assert row.centroid == pytest.approx(-ca @ cb / np.linalg.norm(ca) / np.linalg.norm(cb),
                                             abs=1e-6)
        seen_texts = order_texts[:k]
        if sum(len(t.split()) - 1 for t in seen_texts if len(t.split()) > 1) == 0:
            assert np.isnan(row.kl)
        else:
            want = kl_distance(seen_texts, [test_texts[j] for j in cols]).total
            assert row.kl == pytest.approx(want, rel=1e-9)


def test_large_eps_takes_the_exact_path():
    # eps large enough that the authors' floor on p / (q + eps) can bind
    texts = ["a b c d", "e f g h"]
    sp = seen_prefix(np.eye(2), [1, 2], np.eye(2), ["x", "y"], [2], texts, ["a b", "e f"],
                     eps=0.3)
    for task, t in zip("xy", ["a b", "e f"]):
        want = kl_distance(texts, [t], eps=0.3).total
        assert sp.set_index("task").loc[task, "kl"] == pytest.approx(want, rel=1e-12)


def test_without_texts_kl_is_nan():
    sp = seen_prefix(np.eye(2), [1, 2], np.eye(2), ["x", "y"], [2])
    assert sp["kl"].isna().all() and sp["min"].notna().all()


def test_consumed_order_feeds_seen_prefix():
    log = pd.DataFrame({"step": [1, 2], "instance_ids": [["b", "a"], ["c"]]})
    ids, seen_at = consumed_order(log)
    assert ids == ["b", "a", "c"] and seen_at.tolist() == [1, 1, 2]
    with pytest.raises(ValueError, match="step 1 appears twice"):
        consumed_order(pd.concat([log, log]))


@pytest.mark.parametrize("change, match", [
    ({"seen_at": [2, 1, 3]}, "seen_at: must be nondecreasing.*row 1"),
    ({"seen_at": [1, 2]}, "seen_at: expected 3 integer steps"),
    ({"test_tasks": ["x"]}, "test_tasks: 1 tasks for 2 rows"),
    ({"test_tasks": ["x", None]}, "test_tasks: test instance 1 has task None"),
    ({"steps": []}, "steps: expected a non-empty"),
    ({"order_texts": ["a b"] * 3}, "test_texts: needed with order_texts"),
    ({"order_texts": ["a b"] * 2, "test_texts": ["a b"] * 2}, "order_texts: 2 texts for 3"),
    ({"order_texts": ["a b"] * 3, "test_texts": ["a b", "c"]},
     "test_texts of task y: no word n-grams"),
])
def test_bad_inputs_name_the_parameter(change, match):
    args = {"order_emb": np.eye(3)[:, :2] + 0.1, "seen_at": [1, 1, 3], "test_emb": np.eye(2),
            "test_tasks": ["x", "y"], "steps": [1, 3]}
    with pytest.raises(ValueError, match=match):
        seen_prefix(**{**args, **change})
