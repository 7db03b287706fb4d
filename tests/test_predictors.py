"""The instance-level test of issue #13 (zsg_lib.analysis.predictors, predictor_stats)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats as sps

from zsg_lib.analysis.predictor_stats import predictor_sentence, predictor_test, within
from zsg_lib.analysis.predictors import (
    batch_predictors,
    embedding_similarity,
    gradient_similarity,
    label_similarity,
    loss_deltas,
)

# ---------------------------------------------------------------------------- loss_deltas


def test_loss_deltas_per_run_and_instance_skipping_nan_losses():
    rows = [(s, a, "t", i, st, loss)
            for s, a in [(0, "nft"), (1, "nft"), (0, "fft")]
            for i, losses in [("j", [2.0, 1.5, np.nan, 1.0]), ("k", [np.nan] * 4)]
            for st, loss in zip([0, 2, 4, 6], losses)]
    scores = pd.DataFrame(rows, columns=["seed", "arrangement", "task", "id", "step", "loss"])
    d = loss_deltas(scores.sample(frac=1, random_state=0))  # order of rows must not matter
    assert list(d.columns) == ["seed", "arrangement", "task", "id", "step", "prev_step", "dloss"]
    assert set(d["id"]) == {"j"} and len(d) == 6  # k has no loss at all
    one = d[(d["seed"] == 0) & (d["arrangement"] == "nft")].sort_values("step")
    assert one[["prev_step", "step"]].to_numpy().tolist() == [[0, 2], [2, 6]]
    np.testing.assert_allclose(one["dloss"], [-0.5, -0.5])


def test_loss_deltas_errors():
    s = pd.DataFrame({"seed": 0, "arrangement": "a", "task": "t", "id": "j", "step": [1, 1],
                      "loss": [1.0, 2.0]})
    with pytest.raises(ValueError, match="scores: two rows for"):
        loss_deltas(s)
    with pytest.raises(ValueError, match=r"scores: missing column\(s\) \['loss'\]"):
        loss_deltas(s.drop(columns="loss"))


# ---------------------------------------------------------------------------- similarities


def test_embedding_and_gradient_similarity_match_dense_cosines():
    rng = np.random.default_rng(0)
    batch, test = rng.normal(size=(7, 5)), rng.normal(size=(4, 5))
    cos = (test / np.linalg.norm(test, axis=1, keepdims=True)) @ (
        batch / np.linalg.norm(batch, axis=1, keepdims=True)).T
    for fn in (embedding_similarity, gradient_similarity):
        mx, mean = fn(batch, test)
        np.testing.assert_allclose(mx, cos.max(axis=1), atol=1e-6)
        np.testing.assert_allclose(mean, cos.mean(axis=1), atol=1e-6)
    with pytest.raises(ValueError, match="test_feat: embedding dimension 3"):
        gradient_similarity(batch, test[:, :3])


def test_label_similarity():
    assert label_similarity(["a", "b", "a"], ["b", "c", "a"]).tolist() == [True, False, True]
    assert label_similarity([None, np.nan], ["a"]).tolist() == [False]
    with pytest.raises(ValueError, match="test_labels: test instance 1 has no label"):
        label_similarity(["a"], ["a", None])


# ---------------------------------------------------------------------------- batch_predictors


@pytest.fixture
def runs():
    rng = np.random.default_rng(1)
    train_ids = [f"u{i}" for i in range(12)]
    test_ids = ["j0", "j1", "j2"]
    log = pd.DataFrame([(s, "nft", st, [f"u{(4 * s + 2 * st + k) % 12}" for k in range(2)])
                        for s in (0, 1) for st in range(1, 7)],
                       columns=["seed", "arrangement", "step", "instance_ids"])
    scores = pd.DataFrame([(s, "nft", ["a", "a", "b"][j], tid, st, rng.normal())
                           for s in (0, 1) for j, tid in enumerate(test_ids)
                           for st in (0, 2, 6)],
                          columns=["seed", "arrangement", "task", "id", "step", "loss"])
    return {"train_ids": train_ids, "test_ids": test_ids, "log": log,
            "deltas": loss_deltas(scores),
            "train_emb": rng.normal(size=(12, 4)), "test_emb": rng.normal(size=(3, 4)),
            "train_feat": rng.normal(size=(12, 6)), "test_feat": rng.normal(size=(3, 6)),
            "train_labels": ["qa", "mt", "sum"] * 4, "test_labels": ["qa", "mt", "cls"]}


def test_batch_predictors_uses_the_steps_between_scored_steps(runs):
    out = batch_predictors(runs["deltas"], runs["log"], runs["train_ids"], runs["test_ids"],
                           embedding=(runs["train_emb"], runs["test_emb"]),
                           gradient=(runs["train_feat"], runs["test_feat"]),
                           labels=(runs["train_labels"], runs["test_labels"]))
    assert len(out) == len(runs["deltas"]) == 12
    log = runs["log"].set_index(["seed", "step"])["instance_ids"]
    for row in out.itertuples():
        ids = [i for st in range(row.prev_step + 1, row.step + 1) for i in log[(row.seed, st)]]
        rows = [runs["train_ids"].index(i) for i in ids]
        j = runs["test_ids"].index(row.id)
        mx, mean = embedding_similarity(runs["train_emb"][rows], runs["test_emb"][[j]])
        gmx, gmean = gradient_similarity(runs["train_feat"][rows], runs["test_feat"][[j]])
        assert (row.emb_max, row.emb_mean) == pytest.approx((mx[0], mean[0]), abs=1e-6)
        assert (row.grad_max, row.grad_mean) == pytest.approx((gmx[0], gmean[0]), abs=1e-6)
        labels = {runs["train_labels"][r] for r in rows}
        assert row.label == (runs["test_labels"][j] in labels)
    assert out["label"].dtype == bool and not out.loc[out["id"] == "j2", "label"].any()


def test_batch_predictors_only_the_kinds_given(runs):
    out = batch_predictors(runs["deltas"], runs["log"], runs["train_ids"], runs["test_ids"],
                           labels=(runs["train_labels"], runs["test_labels"]))
    assert "label" in out and not {"emb_max", "grad_max"} & set(out.columns)


def test_batch_predictors_errors(runs):
    args = (runs["deltas"], runs["log"], runs["train_ids"], runs["test_ids"])
    emb = (runs["train_emb"], runs["test_emb"])
    with pytest.raises(ValueError, match="labels: test instance 'j1' has no label"):
        batch_predictors(*args, labels=(runs["train_labels"], ["qa", None, "cls"]))
    with pytest.raises(ValueError, match="training id 'u5' .* is not in train_ids"):
        batch_predictors(runs["deltas"], runs["log"], [i for i in runs["train_ids"]
                                                       if i != "u5"] + ["zz"],
                         runs["test_ids"], embedding=emb)
    with pytest.raises(ValueError, match=r"no step\(s\) \[4\] between scored steps 2 and 6"):
        batch_predictors(runs["deltas"], runs["log"][runs["log"]["step"] != 4],
                         *args[2:], embedding=emb)
    with pytest.raises(ValueError, match="pass at least one of"):
        batch_predictors(*args)
    with pytest.raises(ValueError, match="embedding: 12 training and 2 test rows"):
        batch_predictors(*args, embedding=(runs["train_emb"], runs["test_emb"][:2]))
    with pytest.raises(ValueError, match="deltas: test instance 'j0' is not in test_ids"):
        batch_predictors(runs["deltas"], runs["log"], runs["train_ids"], ["x", "j1", "j2"],
                         embedding=emb)


# ---------------------------------------------------------------------------- predictor_test


def panel(rng, beta=(0.0,), n_tasks=8, n_seeds=3, n_steps=10, per_task=4, sd_x=2.0,
          cluster_sd=0.3, drop=0.1):
    """Synthetic dloss with task and step effects, a shared shock per task x seed, and
    predictors x0, x1, ... of true (raw) slopes ``beta``."""
    rows = pd.DataFrame([(f"t{t}", s, st, f"t{t}-{i}") for t in range(n_tasks)
                         for s in range(n_seeds) for st in range(n_steps)
                         for i in range(per_task)], columns=["task", "seed", "step", "id"])
    n = len(rows)
    task_fx = rng.normal(size=n_tasks)[rows["task"].str[1:].astype(int)]
    step_fx = -np.linspace(1, 0, n_steps)[rows["step"]]
    shock = rng.normal(scale=cluster_sd, size=(n_tasks, n_seeds))[
        rows["task"].str[1:].astype(int), rows["seed"]]
    rows["dloss"] = task_fx + step_fx + shock + rng.normal(size=n)
    for k, b in enumerate(beta):
        rows[f"x{k}"] = rng.normal(scale=sd_x, size=n) + 0.3 * step_fx  # x moves with step
        rows["dloss"] += b * rows[f"x{k}"]
    return rows.sample(frac=1 - drop, random_state=int(rng.integers(1 << 30)))  # unbalanced


def standardised(frame, cols):
    out = frame.copy()
    for c in cols:
        out[c] = (out[c] - out[c].mean()) / out[c].std(ddof=0)
    return out


def test_slopes_and_partial_r2_match_statsmodels_fixed_effects_ols():
    frame = panel(np.random.default_rng(2), beta=(-0.4, 0.1, 0.0))
    cols = ["x0", "x1", "x2"]
    table = predictor_test(frame, cols, n_resamples=50).set_index("predictor")
    z = standardised(frame, cols)
    fe = " + C(task) + C(step)"
    full = smf.ols("dloss ~ " + " + ".join(cols) + fe, z).fit()
    for c in cols:
        alone = smf.ols(f"dloss ~ {c}" + fe, z).fit()
        assert table.loc[c, "slope"] == pytest.approx(alone.params[c], rel=1e-8)
        assert table.loc[c, "joint_slope"] == pytest.approx(full.params[c], rel=1e-8)
        reduced = smf.ols("dloss ~ " + " + ".join(o for o in cols if o != c) + fe, z).fit()
        want = (reduced.ssr - full.ssr) / reduced.ssr
        assert want == pytest.approx((full.rsquared - reduced.rsquared)
                                     / (1 - reduced.rsquared))
        assert table.loc[c, "partial_r2"] == pytest.approx(want, rel=1e-6)
        assert table.loc[c, "spearman"] == pytest.approx(
            sps.spearmanr(frame[c], frame["dloss"]).statistic, rel=1e-12)


def test_within_is_the_residual_of_the_dummy_regression():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 5, size=60), rng.integers(0, 7, size=60)
    v = rng.normal(size=(60, 2))
    dummies = np.column_stack([np.eye(5)[a], np.eye(7)[b]])
    resid = v - dummies @ np.linalg.lstsq(dummies, v, rcond=None)[0]
    np.testing.assert_allclose(within(v, [a, b]), resid, atol=1e-9)


def test_intervals_are_the_documented_cluster_bootstrap():
    """Brute force: the same draws, the resampled rows written out, SciPy's Spearman and
    least squares on the once-demeaned rows; the percentiles must agree."""
    frame = panel(np.random.default_rng(4), beta=(-0.3, 0.2), n_tasks=4, n_seeds=2,
                  n_steps=5, per_task=3)
    frame["x1"] = frame["x1"].round()  # ties in a predictor
    cols, b_count, seed = ["x0", "x1"], 60, 7
    table = predictor_test(frame, cols, n_resamples=b_count, seed=seed).set_index("predictor")
    keys = frame[["task", "seed"]].drop_duplicates().sort_values(["task", "seed"])
    cluster = frame.merge(keys.reset_index(drop=True).reset_index(), on=["task", "seed"])[
        "index"].to_numpy()
    fixed = [frame.groupby(c).ngroup().to_numpy() for c in ("task", "step")]
    z = within(frame[["dloss", *cols]].to_numpy(), fixed)
    draws = np.random.default_rng(seed).integers(0, len(keys), size=(b_count, len(keys)))
    stats = {c: {"spearman": [], "slope": [], "joint_slope": [], "partial_r2": []}
             for c in cols}
    for d in draws:
        rows = np.concatenate([np.flatnonzero(cluster == c) for c in d])
        x, zz = frame[cols].to_numpy()[rows], z[rows]
        full = np.linalg.lstsq(zz[:, 1:], zz[:, 0], rcond=None)
        rss_full = np.sum((zz[:, 0] - zz[:, 1:] @ full[0]) ** 2)
        for j, c in enumerate(cols):
            sd = x[:, j].std()
            stats[c]["spearman"].append(sps.spearmanr(x[:, j], frame["dloss"].to_numpy()[rows])
                                        .statistic)
            stats[c]["slope"].append(zz[:, j + 1] @ zz[:, 0] / (zz[:, j + 1] @ zz[:, j + 1]) * sd)
            stats[c]["joint_slope"].append(full[0][j] * sd)
            other = zz[:, [2 - j]]
            rest = zz[:, 0] - other @ np.linalg.lstsq(other, zz[:, 0], rcond=None)[0]
            stats[c]["partial_r2"].append((rest @ rest - rss_full) / (rest @ rest))
    for c in cols:
        for stat, values in stats[c].items():
            lo, hi = np.quantile(values, [0.025, 0.975])
            assert table.loc[c, f"{stat}_lo"] == pytest.approx(lo, rel=1e-7, abs=1e-10), stat
            assert table.loc[c, f"{stat}_hi"] == pytest.approx(hi, rel=1e-7, abs=1e-10), stat


def test_intervals_cover_a_known_effect_and_zero():
    covered = {"effect": 0, "slope0": 0, "spearman0": 0}
    reps = 30
    for r in range(reps):
        frame = panel(np.random.default_rng(100 + r), beta=(-0.25, 0.0), sd_x=2.0)
        t = predictor_test(frame, ["x0", "x1"], n_resamples=400, seed=r).set_index("predictor")
        true = -0.25 * 2.0  # per SD of x0 (its SD is 2: the step term in x is tiny)
        covered["effect"] += t.loc["x0", "slope_lo"] <= true <= t.loc["x0", "slope_hi"]
        covered["slope0"] += t.loc["x1", "slope_lo"] <= 0 <= t.loc["x1", "slope_hi"]
        covered["spearman0"] += t.loc["x1", "spearman_lo"] <= 0 <= t.loc["x1", "spearman_hi"]
        assert t.loc["x0", "slope_hi"] < 0 and t.loc["x0", "spearman_hi"] < 0
    # nominal 95%; a few clusters (24) make the bootstrap a little narrow
    for what, n in covered.items():
        assert n >= 0.8 * reps, (what, n)


def test_partial_r2_interval_covers_its_population_value():
    rng = np.random.default_rng(5)
    frame = panel(rng, beta=(0.3, 0.0), n_tasks=20, per_task=5, sd_x=1.0, cluster_sd=0.0,
                  drop=0.0)
    t = predictor_test(frame, ["x0", "x1"], n_resamples=1000).set_index("predictor")
    var_x0 = 1.0  # x0 = N(0, 1) + a step term the step effects remove
    truth = 0.09 * var_x0 / (0.09 * var_x0 + 1.0)
    assert t.loc["x0", "partial_r2_lo"] <= truth <= t.loc["x0", "partial_r2_hi"]
    assert t.loc["x1", "partial_r2_hi"] < t.loc["x0", "partial_r2_lo"]
    assert t.loc["x1", "joint_slope_lo"] <= 0 <= t.loc["x1", "joint_slope_hi"]


def test_no_interval_without_two_clusters_and_for_a_constant_predictor():
    frame = panel(np.random.default_rng(6), beta=(-0.3,), n_tasks=1, n_seeds=1)
    t = predictor_test(frame, ["x0"], n_resamples=100).iloc[0]
    assert np.isfinite(t["slope"]) and np.isnan(t["slope_lo"]) and np.isnan(t["spearman_hi"])
    assert "1 cluster(s)" in t["why"] and t["n_clusters"] == 1
    frame = panel(np.random.default_rng(6), beta=(-0.3,))
    frame["flat"] = 1.0
    t = predictor_test(frame, ["x0", "flat"], n_resamples=100).set_index("predictor")
    assert np.isnan(t.loc["flat", ["spearman", "slope", "slope_lo"]].astype(float)).all()
    assert "does not vary" in t.loc["flat", "why"]
    assert np.isfinite(t.loc["x0", "slope_lo"]) and t.loc["x0", "why"] == ""


def test_predictor_test_input_errors():
    frame = panel(np.random.default_rng(7), beta=(0.1,))
    with pytest.raises(ValueError, match=r"frame: missing column\(s\) \['emb_max'\]"):
        predictor_test(frame, ["emb_max"])
    with pytest.raises(ValueError, match="predictors: expected distinct"):
        predictor_test(frame, ["x0", "x0"])
    with pytest.raises(ValueError, match="n_resamples: expected a positive integer"):
        predictor_test(frame, ["x0"], n_resamples=0)


# ---------------------------------------------------------------------------- the sentence


def test_sentence_from_a_computed_table():
    frame = panel(np.random.default_rng(8), beta=(-0.5, 0.0))
    frame = frame.rename(columns={"x0": "emb_max", "x1": "label"})
    frame["label"] = frame["label"] > 0
    table = predictor_test(frame, ["emb_max", "label"], n_resamples=300)
    text = predictor_sentence(table)
    assert text.startswith("emb_max predicts the loss change best")
    assert "interval excludes 0; more similar, larger drop" in text
    assert "label adds nothing detectable" in text


def test_sentence_cannot_say_without_intervals():
    frame = panel(np.random.default_rng(9), beta=(-0.5, 0.2), n_tasks=1, n_seeds=1)
    text = predictor_sentence(predictor_test(frame, ["x0", "x1"], n_resamples=50))
    assert "cannot say whether it differs from 0" in text
    assert "x1 cannot say whether it adds anything" in text
    assert predictor_sentence(pd.DataFrame({"spearman": [np.nan]})).startswith("Cannot say")


def test_cluster_columns_set_the_bootstrap_units():
    """Clustering by seed x step within one task: as many clusters as those pairs, and the
    same intervals as the default clustering on a frame whose task column *is* seed x step."""
    frame = panel(np.random.default_rng(8), beta=(-0.3,), n_tasks=1, n_seeds=3, n_steps=6)
    got = predictor_test(frame, ["x0"], n_resamples=200, cluster=("seed", "step")).iloc[0]
    assert got["n_clusters"] == frame[["seed", "step"]].drop_duplicates().shape[0] == 18
    relabelled = frame.assign(task=frame["seed"].astype(str) + "/" + frame["step"].astype(str),
                              seed=0)
    # task fixed effects then equal seed x step ones: only the point estimates of slope
    # change; the Spearman draws (no fixed effects) must be the same resamples
    want = predictor_test(relabelled, ["x0"], n_resamples=200).iloc[0]
    assert want["n_clusters"] == 18
    for stat in ("spearman", "spearman_lo", "spearman_hi"):
        assert got[stat] == pytest.approx(want[stat], rel=1e-12)
    with pytest.raises(ValueError, match="missing"):
        predictor_test(frame, ["x0"], cluster=("batch",))
