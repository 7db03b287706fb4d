"""Arm comparisons: the three views, the cluster bootstrap, the verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zsg_lib.analysis import findings
from zsg_lib.analysis.compare import cluster_view, compare, heaviest_task, per_task, verdict, worst


def simulate(rng, effect=0.0, tasks=8, seeds=3, per=10, task_sd=0.3, noise=0.05,
             scale=None) -> pd.DataFrame:
    """Scores of arms a and b at the branch (step 0) and one later step; ``a − b`` is
    ``effect`` plus a random effect shared by each task × seed cluster."""
    rows = []
    for s in range(seeds):
        for t in range(tasks):
            shift = rng.normal(0, task_sd)
            size = 1.0 if scale is None else scale[t]
            for i in range(per):
                base = size * (2.0 + rng.normal(0, 0.1))
                later = base - 0.5 * size
                rows += [
                    {"arrangement": "a", "seed": s, "task": f"t{t}", "id": f"t{t}-{i}",
                     "step": 0, "loss": base},
                    {"arrangement": "b", "seed": s, "task": f"t{t}", "id": f"t{t}-{i}",
                     "step": 0, "loss": base},
                    {"arrangement": "a", "seed": s, "task": f"t{t}", "id": f"t{t}-{i}",
                     "step": 4, "loss": later + effect + shift + rng.normal(0, noise)},
                    {"arrangement": "b", "seed": s, "task": f"t{t}", "id": f"t{t}-{i}",
                     "step": 4, "loss": later + rng.normal(0, noise)},
                ]
    return pd.DataFrame(rows)


def test_cluster_bootstrap_covers_the_truth_where_an_instance_bootstrap_does_not():
    """With task × seed random effects and no true difference, the cluster interval covers 0
    about 95% of the time; treating instances as independent covers it far less often."""
    rng = np.random.default_rng(0)
    covered, naive = [], []
    for _ in range(60):
        c = compare(simulate(rng), "a", "b", (1, 4), n_resamples=2000, seed=1)
        v = c.views["instance"]
        covered.append(v.lo <= 0 <= v.hi)
        pairs = c.pairs.assign(task=c.pairs["id"], seed=c.pairs["seed"])  # each its own cluster
        w = cluster_view(pairs, "d", balanced=False, n_resamples=2000, seed=1)
        naive.append(w.lo <= 0 <= w.hi)
    assert np.mean(covered) >= 0.85
    assert np.mean(naive) <= 0.6


def test_views_and_verdicts_follow_the_intervals():
    rng = np.random.default_rng(1)
    lower = compare(simulate(rng, effect=-0.4, task_sd=0.05), "a", "b", (1, 4))
    assert lower.status == "agrees" and lower.views_agree
    assert all(v.hi < 0 for v in lower.views.values())
    higher = compare(simulate(rng, effect=+0.4, task_sd=0.05), "a", "b", (1, 4))
    assert higher.status == "opposite, significantly"
    row = lower.row()
    assert row["verdict"] == "agrees" and "seeds" in row["seed-level paired t"]


def test_task_balanced_view_is_not_dominated_by_one_task():
    """One task with tenfold losses (and all of the difference) moves the instance mean and
    the task-balanced mean differently; the relative view divides by each instance's size."""
    rng = np.random.default_rng(2)
    df = simulate(rng, effect=0.0, task_sd=0.0, noise=0.0, tasks=4,
                  scale=[10.0, 1.0, 1.0, 1.0])
    big = (df["task"] == "t0") & (df["arrangement"] == "a") & (df["step"] == 4)
    df.loc[big, "loss"] -= 1.0  # a is lower on the big task only
    c = compare(df, "a", "b", (1, 4))
    assert c.views["instance"].estimate == pytest.approx(-0.25)
    assert c.views["task-balanced"].estimate == pytest.approx(-0.25)  # equal-size clusters
    assert c.views["relative"].estimate == pytest.approx(-1.0 / 20.0 / 4, rel=0.05)
    uneven = df[~((df["task"] == "t0") & df["id"].str.endswith(("-1", "-2", "-3", "-4")))]
    u = compare(uneven, "a", "b", (1, 4))
    assert u.views["task-balanced"].estimate == pytest.approx(-0.25)
    assert u.views["instance"].estimate > -0.25  # fewer instances of t0 weigh less


def test_the_heaviest_task_is_the_one_that_makes_the_instance_mean():
    """One task with tenfold losses holds all of the difference: it is named, it makes the
    whole mean, the mean without it is 0, and its branch-point loss stands beside the median."""
    rng = np.random.default_rng(2)
    df = simulate(rng, effect=0.0, task_sd=0.0, noise=0.0, tasks=4, scale=[1.0, 10.0, 1.0, 1.0])
    big = (df["task"] == "t1") & (df["arrangement"] == "a") & (df["step"] == 4)
    df.loc[big, "loss"] -= 1.0
    c = compare(df, "a", "b", (1, 4))
    h = heaviest_task(c.pairs)
    assert h["task"] == "t1"
    assert h["part"] == pytest.approx(h["mean"]) == pytest.approx(-0.25)
    assert h["without"] == pytest.approx(0.0, abs=1e-12)
    assert h["base"] == pytest.approx(20.0, rel=0.05) and h["median_base"] < 5
    line = findings.heaviest_tasks(findings.Finding("x", "c", "m", "agrees", pd.DataFrame(),
                                                    (c,)))
    assert line.startswith("a − b: t1 moves the instance mean most (-0.250 of -0.250")


def test_no_interval_without_two_clusters_and_windows_after_the_branch():
    rng = np.random.default_rng(3)
    one = simulate(rng, tasks=1, seeds=1)
    c = compare(one, "a", "b", (1, 4))
    assert "at least 2" in c.views["instance"].why and np.isnan(c.views["instance"].lo)
    assert "no interval" in c.views["instance"].shown()
    assert c.status == "does not agree"
    with pytest.raises(ValueError, match="branch point"):
        compare(one, "a", "b", (4, 8), branch_step=4)
    with pytest.raises(KeyError, match="'c'"):
        compare(one, "a", "c", (1, 4))


def test_per_task_rows_and_worst():
    rng = np.random.default_rng(4)
    c = compare(simulate(rng, effect=-0.2, tasks=3), "a", "b", (1, 4))
    t = per_task(c.pairs)
    assert list(t["task"]) == ["t0", "t1", "t2"] and (t["n"] == 30).all()
    assert (t["lo"] <= t["mean"]).all() and (t["mean"] <= t["hi"]).all()
    assert worst(["agrees", "opposite, significantly", "does not agree"]) == \
        "opposite, significantly"
    assert verdict([]) == "does not agree"


def test_an_ordering_claim_holds_as_far_as_its_weakest_pair():
    rng = np.random.default_rng(5)
    judge = findings.Judge(max_steps=4, eval_every=4, first_n_steps=4)

    def arms(effects: dict[str, float]) -> pd.DataFrame:
        base = simulate(rng, task_sd=0.02)
        frames = []
        for name, effect in effects.items():
            arm = base[base["arrangement"] == "b"].copy()
            later = arm["step"] == 4
            arm.loc[later, "loss"] += effect + rng.normal(0, 0.01, later.sum())
            frames.append(arm.assign(arrangement=name))
        return pd.concat(frames, ignore_index=True)

    clear = findings.ordering("x", judge, arms({"nft": -0.3, "rt": 0.0, "fft": 0.3}),
                              "nft < rt < fft", "claim")
    assert clear.status == "agrees" and len(clear.comparisons) == 2
    assert "task-balanced" in clear.measured and "views agree" in clear.measured
    assert list(clear.details["verdict"]) == ["agrees", "agrees"]
    half = findings.ordering("x", judge, arms({"nft": -0.3, "rt": 0.0, "fft": 0.0}),
                             "nft < rt < fft", "claim")
    assert half.status in {"does not agree", "agrees in direction only"}
    wrong = findings.ordering("x", judge, arms({"nft": 0.3, "rt": 0.0, "fft": 0.3}),
                              "nft < rt < fft", "claim")
    assert wrong.status == "opposite, significantly"
    missing = findings.ordering("x", judge, arms({"nft": 0.0}), "nft < rt", "claim")
    assert missing.status == "not measured"


def test_minimum_detectable_difference_is_found_with_80_percent_power():
    """A true difference of the rule's size, estimated with standard error se, gives a 95%
    interval that excludes zero in 80% of runs (normal estimates)."""
    from zsg_lib.analysis.stats import minimum_detectable

    se = 0.37
    mdd = minimum_detectable(-1.96 * se, 1.96 * se)
    assert mdd == pytest.approx(2.8016 * se, rel=1e-3)
    estimates = np.random.default_rng(3).normal(mdd, se, 40_000)
    found = (estimates - 1.96 * se > 0) | (estimates + 1.96 * se < 0)
    assert found.mean() == pytest.approx(0.80, abs=0.01)
    # shifting the interval moves nothing: only its width counts
    assert minimum_detectable(5 - 1.96 * se, 5 + 1.96 * se) == pytest.approx(mdd)


def test_an_ordering_finding_carries_each_pair_as_a_contrast():
    rng = np.random.default_rng(4)
    scores = simulate(rng, effect=-0.4, task_sd=0.05)
    judge = findings.Judge(max_steps=4, eval_every=4, first_n_steps=4)
    found = findings.ordering("3. similarity", judge, scores, "a < b", "a is lower")
    (c,) = found.contrasts
    view = found.comparisons[0].views["instance"]
    assert (c.label, c.claimed, c.status) == ("a − b", "below", found.status)
    assert (c.estimate, c.lo, c.hi) == (view.estimate, view.lo, view.hi)
    assert 0 < c.detectable < abs(c.estimate)  # an effect this clear is far above it
