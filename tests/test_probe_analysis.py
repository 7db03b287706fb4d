"""The probes' analysis (issue #28) against known cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zsg_lib.analysis import probes as an
from zsg_lib.analysis.predictor_stats import predictor_test


def test_design_contrasts_recover_a_known_effect():
    frame = an.synthetic_frame(np.random.default_rng(1), effect=-0.3)
    table = an.design_table(frame, n_resamples=1000).set_index(["design", "measure"])
    near = table.loc["nearest-gradient"]
    assert near.loc["target", "estimate"] == pytest.approx(-0.3, abs=0.03)
    assert near.loc["target", "hi"] < 0 and near.loc["difference", "hi"] < 0
    assert near.loc["others", "lo"] < 0 < near.loc["others", "hi"]  # no effect elsewhere
    far = table.loc["farthest-embedding"]
    assert far.loc["target", "lo"] < 0 < far.loc["target", "hi"]
    assert (table["n_clusters"] == 12).all()  # 6 target tasks × 2 seeds
    # the contrast is the difference of the levels it reports
    np.testing.assert_allclose(table["estimate"], table["design_mean"] - table["random_mean"])
    found = an.probe_finding(table.reset_index())
    assert found.status == "agrees" and found.contrasts[0].hi < 0
    assert f"nearest-gradient: target {near.loc['target', 'estimate']:+.3g} [" in found.measured


def test_the_verdict_follows_the_interval():
    null = an.design_table(an.synthetic_frame(np.random.default_rng(2), effect=0.0),
                           n_resamples=500)
    assert an.probe_finding(null).status != "agrees"
    harm = an.design_table(an.synthetic_frame(np.random.default_rng(2), effect=0.3),
                           n_resamples=500)
    assert an.probe_finding(harm).status == "opposite, significantly"
    assert an.probe_finding(harm, design="same-label").status == "not measured"


def test_instance_targets_count_the_one_instance():
    frame = an.synthetic_frame(np.random.default_rng(3), effect=-0.3)
    # target one instance of each task: the others of its task are neither target nor others
    frame = frame.assign(target=frame["target"].map(lambda t: None if t is None else f"{t}-0"))
    frame.loc[(frame["design"] == "nearest-gradient") & (frame["id"] != frame["target"])
              & (frame["task"] == frame["target_task"]), "dloss"] += 5.0
    table = an.design_table(frame, n_resamples=200).set_index(["design", "measure"])
    assert table.loc[("nearest-gradient", "target"), "estimate"] == pytest.approx(-0.3, abs=0.05)


def test_dose_response_finds_the_similarity_that_moves_the_loss():
    rng = np.random.default_rng(4)
    n_train, tasks = 200, [f"t{k}" for k in range(6)]
    test_ids = [f"{t}-{i}" for t in tasks for i in range(5)]
    test_tasks = [i.split("-")[0] for i in test_ids]
    emb = (rng.normal(size=(n_train, 8)), rng.normal(size=(len(test_ids), 8)))
    grad = (rng.normal(size=(n_train, 8)), rng.normal(size=(len(test_ids), 8)))
    train_ids = [f"p{i}" for i in range(n_train)]
    frames, batches = [], []
    for seed in (0, 1):
        picks = [rng.choice(n_train, 4, replace=False) for _ in range(12)]
        b = pd.DataFrame({"probe": np.arange(12) + 100 * seed, "design": "random",
                          "target": None, "target_task": None, "replicate": np.arange(12),
                          "ids": [[train_ids[k] for k in p] for p in picks], "seed": seed})
        unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
        rows = []
        for probe, p in zip(b["probe"], picks):
            sim = (unit(emb[1]) @ unit(emb[0][p]).T).max(axis=1)
            for j, i in enumerate(test_ids):  # the fall follows the embedding only
                rows.append({"seed": seed, "probe": probe, "id": i, "task": test_tasks[j],
                             "dloss": -0.5 * sim[j] + rng.normal(0, 0.05)})
        frame = an.probe_frame(pd.DataFrame(rows), b)
        frames.append(an.random_predictors(frame, b, train_ids, test_ids, embedding=emb,
                                           gradient=grad))
        batches.append(b)
    both = pd.concat(frames, ignore_index=True)
    assert {"emb_max", "grad_max", "emb_mean"} <= set(both) and "label" not in both
    table = an.dose_response(both, n_resamples=500).set_index("predictor")
    assert table.loc["emb_max", "slope_hi"] < 0
    assert table.loc["grad_max", "slope_lo"] < 0 < table.loc["grad_max", "slope_hi"]
    # chapter 7's ranking beside it: the experiment puts emb_max first
    obs = predictor_test(both, ["emb_max", "grad_max"], n_resamples=200)
    ranks = an.ranking_table(table.reset_index(), obs.assign(slope=[-0.1, -0.2]))
    assert ranks.loc[0, "predictor"] == "emb_max"
    assert "differ" in an.ranking_sentence(ranks)
    assert "the same order" in an.ranking_sentence(an.ranking_table(table.reset_index(),
                                                                    table.reset_index()))


def test_bad_frames_are_named():
    frame = an.synthetic_frame(np.random.default_rng(5), effect=-0.3)
    with pytest.raises(ValueError, match="seed 0 has no random probes"):
        an.design_table(frame[frame["design"] != "random"])
    with pytest.raises(ValueError, match="no probes of a design other than random"):
        an.design_table(frame[frame["design"] == "random"])
    with pytest.raises(ValueError, match="probe 7 has no batch"):
        an.probe_frame(pd.DataFrame({"probe": [7], "id": ["x"], "task": ["a"], "dloss": [0.1]}),
                       pd.DataFrame({"probe": [0], "design": ["random"], "target": [None],
                                     "target_task": [None], "replicate": [0]}))


def test_a_design_scoring_a_subset_is_compared_with_random_on_that_subset():
    """A design's probes may score their target and a sample of the others (chapter 8's
    ``probes.others_per_task``); random scores every instance. Random's instances the design
    did not score must not enter its contrast: here they move by +1, the sample by 0."""
    frame = an.synthetic_frame(np.random.default_rng(2), effect=-0.3, noise=0.0)
    frame["dloss"] = 0.0
    frame.loc[(frame["design"] == "nearest-gradient") & (frame["task"] == frame["target"]),
              "dloss"] = -0.3
    sampled = frame["id"].str.endswith("-0")  # one instance of each task: the others' sample
    unscored = (frame["design"] != "random") & (frame["task"] != frame["target"]) & ~sampled
    frame = frame[~unscored].copy()
    frame.loc[(frame["design"] == "random") & ~sampled, "dloss"] = 1.0
    table = an.design_table(frame, n_resamples=200).set_index(["design", "measure"])
    assert table.loc[("nearest-gradient", "others"), "estimate"] == pytest.approx(0.0)
    # on the target, random is read on every target instance it scored (+1 off the sample)
    assert table.loc[("farthest-embedding", "target"), "random_mean"] == pytest.approx(
        frame[(frame["design"] == "random") & (frame["task"] == "t0")]["dloss"].mean())
    assert table.loc[("nearest-gradient", "target"), "estimate"] == pytest.approx(
        -0.3 - table.loc[("nearest-gradient", "target"), "random_mean"])
