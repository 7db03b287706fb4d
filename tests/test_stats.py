"""Intervals, paired tests and verdicts against hand computations and scipy;
curve shapes and drop steps on synthetic curves with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from zsg_lib.analysis import stats, transitions


def frame(values: dict[str, list[float]], steps=(4,), n_instances: int = 1) -> pd.DataFrame:
    """Scores with one value per arrangement × seed (repeated over steps and instances)."""
    rows = []
    for arr, per_seed in values.items():
        for seed, v in enumerate(per_seed):
            for step in steps:
                for i in range(n_instances):
                    rows.append({"arrangement": arr, "seed": seed, "step": step, "id": f"t{i}",
                                 "loss": v})
    return pd.DataFrame(rows)


def test_t_interval_by_hand() -> None:
    x = [2.0, 4.0, 9.0]
    mean, lo, hi = stats.t_interval(x)
    sd = math.sqrt(((2 - 5) ** 2 + (4 - 5) ** 2 + (9 - 5) ** 2) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, df=2)
    assert mean == 5.0 and lo == pytest.approx(5 - half) and hi == pytest.approx(5 + half)


def test_t_interval_single_value_has_no_bounds() -> None:
    mean, lo, hi = stats.t_interval([3.0])
    assert mean == 3.0 and math.isnan(lo) and math.isnan(hi)


def test_mean_ci_averages_instances_before_seeds() -> None:
    # seed 0: instances 1 and 3 (mean 2); seed 1: 4 and 6 (mean 5); seed 2: 8 (mean 8)
    df = pd.DataFrame({
        "arrangement": "a", "step": 0,
        "seed": [0, 0, 1, 1, 2], "id": ["x", "y", "x", "y", "x"], "loss": [1, 3, 4, 6, 8.0],
    })
    row = stats.mean_ci(df).iloc[0]
    m, lo, hi = stats.t_interval([2.0, 5.0, 8.0])
    assert (row["mean"], row["lo"], row["hi"], row["n"]) == (pytest.approx(m), pytest.approx(lo),
                                                              pytest.approx(hi), 3)


def test_paired_test_matches_scipy() -> None:
    a, b = [1.0, 2.0, 2.5, 3.1], [1.5, 2.9, 2.6, 4.0]
    res = stats.paired_test(frame({"a": a, "b": b}, steps=(1, 2, 3)), "a", "b", (1, 3))
    ref = sps.ttest_rel(a, b)
    assert res.n == 4 and res.t == pytest.approx(ref.statistic) and res.p == pytest.approx(ref.pvalue)
    assert res.mean_diff == pytest.approx(np.mean(np.subtract(a, b)))
    assert res.lo < res.mean_diff < res.hi


def test_paired_test_window_excludes_steps_outside() -> None:
    df = pd.concat([frame({"a": [1, 2, 3], "b": [2, 3, 4.5]}, steps=(2,)),
                    frame({"a": [9, 9, 9], "b": [0, 0, 0.0]}, steps=(10,))])
    assert stats.paired_test(df, "a", "b", (1, 4)).mean_diff < 0
    assert stats.paired_test(df, "a", "b", (5, 10)).mean_diff > 0


def test_paired_test_by_instance_pairs_seed_and_instance() -> None:
    df = frame({"a": [1, 2, 3], "b": [2, 3, 5]}, n_instances=4)
    res = stats.paired_test(df, "a", "b", (0, 10), unit="instance")
    assert res.n == 12 and res.unit == "instance"


def test_early_share_and_stability() -> None:
    df = pd.DataFrame({"seed": [0] * 3 + [1] * 3, "step": [0, 4, 8] * 2,
                       "loss": [4, 2, 2, 4, 3, 2.0], "rouge1": [0.1, 0.5, 0.2, 0.1, 0.1, 0.6]})
    share = stats.early_share(df, 4)
    assert share["share"].tolist() == [1.0, 0.5]
    st = stats.metric_stability(df, ("loss", "rouge1")).set_index("metric")
    assert st.loc["loss", "noise_to_signal"] < st.loc["rouge1", "noise_to_signal"]


def test_metrics_ci_stacks_metrics_at_their_steps() -> None:
    df = pd.DataFrame({"seed": [0, 0, 1, 1], "step": [0, 4] * 2, "loss": [3, 2, 3, 1.0],
                       "rouge1": [0.1, np.nan, 0.2, np.nan]})
    out = stats.metrics_ci(df, ("loss", "rouge1"))
    assert out.groupby("metric")["step"].apply(list).to_dict() == {"loss": [0, 4], "rouge1": [0]}


# ------------------------------------------------------------------ transitions

STEPS = list(range(0, 44, 4))


@pytest.mark.parametrize("drop_at", [8, 20, 36])
def test_sudden_drop_found_at_known_step(drop_at: int) -> None:
    rng = np.random.default_rng(drop_at)
    y = np.array([3.0 if s < drop_at else 1.5 for s in STEPS]) + rng.normal(0, 0.03, len(STEPS))
    shape = transitions.classify_curve(STEPS, y)
    assert shape.kind == "sudden drop"
    assert shape.drop_step == drop_at and shape.prev_step == drop_at - 4


def test_steady_rise_flat_curves() -> None:
    rng = np.random.default_rng(0)
    steady = np.linspace(3, 1.5, len(STEPS)) + rng.normal(0, 0.02, len(STEPS))
    assert transitions.classify_curve(STEPS, steady).kind == "steady fall"
    assert transitions.classify_curve(STEPS, np.linspace(1.5, 2.5, len(STEPS))).kind == "rise"
    flat = 2.0 + rng.normal(0, 0.01, len(STEPS))
    assert transitions.classify_curve(STEPS, flat).kind == "flat"


def test_noisy_curve_without_drop_is_not_sudden() -> None:
    rng = np.random.default_rng(3)
    y = np.linspace(3, 2.0, len(STEPS)) + rng.normal(0, 0.25, len(STEPS))
    assert transitions.classify_curve(STEPS, y).kind != "sudden drop"


def test_classify_tasks_and_arrivals() -> None:
    rows = []
    for task, drop_at in (("t1", 8), ("t2", None)):
        for s in STEPS:
            loss = 3.0 - (1.5 if drop_at is not None and s >= drop_at else 0) - 0.001 * s
            rows.append({"arrangement": "cluster", "seed": 0, "task": task, "step": s, "loss": loss})
    shapes = transitions.classify_tasks(pd.DataFrame(rows)).set_index("task")
    assert shapes.loc["t1", "kind"] == "sudden drop" and shapes.loc["t1", "drop_step"] == 8
    assert shapes.loc["t2", "kind"] != "sudden drop"
    # batch 2: steps 5..8 consume positions 8..15
    order = pd.DataFrame({"position": range(20), "task": ["a"] * 8 + ["b"] * 6 + ["c"] * 6})
    arr = transitions.arrivals(order, 4, 8, 2)
    assert arr.to_dict("records") == [{"task": "b", "count": 6}, {"task": "c", "count": 2}]


def test_from_step_skips_the_universal_first_fall() -> None:
    # every task falls 6 -> 3 in the first interval; t1 also drops at step 16
    rows = []
    for task in ("t1", "t2"):
        for s in (0, 4, 8, 12, 16, 20):
            loss = 6.0 if s == 0 else 3.0 - 0.02 * s - (1.2 if task == "t1" and s >= 16 else 0)
            rows.append({"arrangement": "cluster", "seed": 0, "task": task, "step": s, "loss": loss})
    df = pd.DataFrame(rows)
    whole = transitions.classify_tasks(df).set_index("task")
    assert whole.loc["t1", "drop_step"] == 4 and whole.loc["t2", "kind"] == "sudden drop"
    later = transitions.classify_tasks(df, from_step=4).set_index("task")
    assert later.loc["t1", "kind"] == "sudden drop" and later.loc["t1", "drop_step"] == 16
    assert later.loc["t2", "kind"] != "sudden drop"


def test_arrivals_accepts_steps_read_from_a_float_column() -> None:
    # classify_tasks returns drop steps as floats when some task has no drop (NaN).
    order = pd.DataFrame({"position": range(8), "task": list("aabbccdd")})
    as_float = transitions.arrivals(order, 1.0, 2.0, 2)
    assert as_float.to_dict("records") == transitions.arrivals(order, 1, 2, 2).to_dict("records")
    assert as_float.to_dict("records") == [{"task": "b", "count": 2}]


def test_drop_relatives_reads_the_arrived_tasks_as_data() -> None:
    """A task name holding ", " or " (" is one name: the list is read, not text parsed."""
    from zsg_lib.analysis.findings import drop_relatives

    families = pd.DataFrame({"task": ["t1", "t2"], "relatives": ["odd (name)", "u"]})
    drops = pd.DataFrame({"task": ["t1", "t2", "t2"],
                          "kind": ["sudden drop", "sudden drop", "gradual"],
                          "arrived": [["odd (name)"], ["x, u"], []]})
    assert drop_relatives(drops, families)["relative_arrived"].tolist() == [True, False]
    assert drop_relatives(drops, None)["relative_arrived"].isna().all()
