"""Probe designs (issue #28): which batches each design draws for a target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zsg_lib.arrange.probe_designs import DESIGNS, design_batches
from zsg_lib.errors import ArrangementError

RNG = np.random.default_rng(3)
N_POOL = 60
POOL_IDS = [f"p{i}" for i in range(N_POOL)]
POOL_TASKS = [f"train{i % 6}" for i in range(N_POOL)]
TEST_IDS = [f"x{i}" for i in range(6)]
TEST_TASKS = ["a", "a", "a", "b", "b", "b"]
EMB = (RNG.normal(size=(N_POOL, 5)), RNG.normal(size=(6, 5)))
GRAD = (RNG.normal(size=(N_POOL, 7)), RNG.normal(size=(6, 7)))
RELATIVES = {"a": {"train0", "train1"}, "b": {"train5"}}


def batches(**kw) -> pd.DataFrame:
    args = dict(embeddings=EMB, gradients=GRAD, relatives=RELATIVES, seed=0)
    return design_batches(POOL_IDS, POOL_TASKS, TEST_IDS, TEST_TASKS, 4, **{**args, **kw})


def cosine_to(target_rows, pair) -> np.ndarray:
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    return unit(pair[0]) @ unit(pair[1])[target_rows].mean(axis=0)


def test_each_design_draws_from_its_candidates():
    frame = batches()
    assert set(frame["design"]) == set(DESIGNS)
    assert (frame["ids"].map(len) == 4).all() and frame["ids"].map(lambda b: len(set(b)) == 4).all()
    row_of = {i: k for k, i in enumerate(POOL_IDS)}
    for target, rows in (("a", [0, 1, 2]), ("b", [3, 4, 5])):
        for design, pair, take in (("nearest-embedding", EMB, "top"),
                                   ("nearest-gradient", GRAD, "top"),
                                   ("farthest-embedding", EMB, "bottom")):
            sim = cosine_to(rows, pair)
            ranked = np.argsort(-sim if take == "top" else sim, kind="stable")[:16]
            part = frame[(frame["design"] == design) & (frame["target"] == target)]
            assert len(part) == 4 and part["replicate"].tolist() == [0, 1, 2, 3]
            drawn = {row_of[i] for b in part["ids"] for i in b}
            assert drawn <= set(ranked)
            assert part["n_candidates"].eq(16).all()
            want = [sim[[row_of[i] for i in b]].mean() for b in part["ids"]]
            np.testing.assert_allclose(part["similarity"], want, rtol=1e-6)
        same = frame[(frame["design"] == "same-label") & (frame["target"] == target)]
        tasks = {POOL_TASKS[row_of[i]] for b in same["ids"] for i in b}
        assert tasks <= RELATIVES[target] and same["label_share"].eq(1.0).all()
    nearest = frame[frame["design"] == "nearest-embedding"]["emb_sim"].mean()
    farthest = frame[frame["design"] == "farthest-embedding"]["emb_sim"].mean()
    assert nearest > farthest
    rand = frame[frame["design"] == "random"]
    assert rand["target"].isna().all() and len(rand) == 4


def test_draws_are_seeded_and_independent_of_other_designs():
    a, b = batches(), batches()
    pd.testing.assert_frame_equal(a, b)
    other = batches(seed=1)
    assert a["ids"].tolist() != other["ids"].tolist()
    alone = batches(designs=["nearest-gradient"], targets=["b"])
    mine = a[(a["design"] == "nearest-gradient") & (a["target"] == "b")]
    assert alone["ids"].tolist() == mine["ids"].tolist()
    assert len(batches(random_replicates=9).query("design == 'random'")) == 9


def test_a_single_test_instance_as_target():
    frame = batches(target_kind="instance", targets=["x4"], designs=["nearest-embedding"])
    sim = cosine_to([4], EMB)
    row_of = {i: k for k, i in enumerate(POOL_IDS)}
    top = set(np.argsort(-sim, kind="stable")[:16])
    assert {row_of[i] for b in frame["ids"] for i in b} <= top
    assert frame["target_task"].eq("b").all() and frame["target"].eq("x4").all()


def test_bad_input_is_named():
    with pytest.raises(ArrangementError, match="targets: 'c' is not a test task"):
        batches(targets=["c"])
    with pytest.raises(ArrangementError, match="targets: 'x9' is not a test instance"):
        batches(targets=["x9"], target_kind="instance")
    with pytest.raises(ArrangementError, match="design 'same-label' needs labels"):
        batches(relatives=None)
    with pytest.raises(ArrangementError, match="design 'nearest-gradient' needs gradient"):
        batches(gradients=None)
    with pytest.raises(ArrangementError, match="design 'same-label', target 'b': 0 candidate"):
        batches(relatives={"a": {"train0"}})
    skipped = batches(relatives={"a": {"train0"}}, on_short="skip")
    assert set(skipped.query("design == 'same-label'")["target"]) == {"a"}
    with pytest.raises(ArrangementError, match="candidates: 61 is more than the pool's 60"):
        batches(candidates=61)
    with pytest.raises(ArrangementError, match="candidates: 3 is fewer than batch_size 4"):
        batches(candidates=3)
    with pytest.raises(ArrangementError, match="designs: unknown 'closest'"):
        batches(designs=["closest"])
    with pytest.raises(ArrangementError, match="embeddings: 5 pool and 6 test rows"):
        batches(embeddings=(EMB[0][:5], EMB[1]))
