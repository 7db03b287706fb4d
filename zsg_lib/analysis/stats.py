"""Statistics over seeds: means with 95% t-intervals and paired tests (arm comparisons with
their verdicts are :mod:`zsg_lib.analysis.compare`).

Input is the tidy score table the book works with (:func:`zsg_lib.study.experiment.run_many`): one
row per run × step × test instance with at least ``arrangement``, ``seed``, ``step`` and the
value (``loss`` by default).

**The unit of replication is the seed.** A seed re-samples the training and test data and
re-initialises LoRA, so two seeds are independent replicates of the whole experiment. The test
instances of one run are *not* independent of each other (they share one trained model), so
intervals and the default paired test treat the per-seed mean as one observation: the mean
over test instances (and over the steps of a window) for each seed, paired across arrangements
by seed (same seed ⇒ same data, only the order differs). With three seeds this test is
conservative; ``unit="instance"`` pairs seed × test instance instead (more power, but it
ignores that instances of one run are correlated), and is offered as a secondary view.

>>> import pandas as pd
>>> df = pd.DataFrame({"arrangement": ["a"] * 3 + ["b"] * 3, "seed": [0, 1, 2] * 2,
...                    "step": 4, "loss": [1.0, 1.2, 1.1, 2.0, 2.3, 2.1]})
>>> ci = mean_ci(df)
>>> ci[["arrangement", "step", "mean", "n"]].to_dict("records")[0]
{'arrangement': 'a', 'step': 4, 'mean': 1.1, 'n': 3}
>>> paired_test(df, "a", "b", window=(1, 4)).mean_diff
-1.0333333333333332
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t-interval ``(mean, lo, hi)``; the bounds are NaN for one value.

    >>> m, lo, hi = t_interval([1.0, 2.0, 3.0])
    >>> round(m, 3), round(lo, 3), round(hi, 3)
    (2.0, -0.484, 4.484)
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (float("nan"),) * 3
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(sps.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean, mean - half, mean + half


def minimum_detectable(lo: float, hi: float, level: float = 0.95, power: float = 0.80) -> float:
    """The smallest true difference a run with this ``level`` interval ``[lo, hi]`` detects
    with probability ``power``: ``(z_{1-α/2} + z_power) / z_{1-α/2} · h``, ``h`` the
    interval's half-width (≈ 2.80 / 1.96 · h for a 95% interval and 80% power).

    The rule assumes the estimate is roughly normal with standard error ``h / z_{1-α/2}``
    (normal approximation). A t-interval over a few seeds is wider than that, so the rule then
    overstates what the run would miss; a percentile interval is taken at its mean half-width.
    Read a claim that "does not agree" with it: a true difference this large or larger would
    most likely have shown; a smaller one could hide in the interval. NaN without an interval.

    >>> round(minimum_detectable(-1.96, 1.96), 3)  # standard error 1: 1.96 + 0.84
    2.802
    >>> import math; math.isnan(minimum_detectable(float("nan"), float("nan")))
    True
    """
    z_level = float(sps.norm.ppf(0.5 + level / 2))
    z_power = float(sps.norm.ppf(power))
    return (z_level + z_power) / z_level * (hi - lo) / 2


def seed_means(
    scores: pd.DataFrame, value: str = "loss", by: Sequence[str] = ("arrangement",)
) -> pd.DataFrame:
    """Mean of ``value`` over test instances for each ``by`` × seed × step (one row each)."""
    keys = [*by, "seed", "step"]
    return scores.groupby(keys, as_index=False, observed=True)[value].mean()


def mean_ci(
    scores: pd.DataFrame,
    value: str = "loss",
    by: Sequence[str] = ("arrangement",),
    level: float = 0.95,
) -> pd.DataFrame:
    """Per ``by`` × step: mean over seeds of the per-seed mean, with a t-interval.

    Columns: ``*by, step, mean, lo, hi, n`` (``n`` = number of seeds). Rows without a value
    (e.g. ROUGE at steps without generation) are dropped first.
    """
    per_seed = seed_means(scores.dropna(subset=[value]), value, by)
    rows = []
    for key, grp in per_seed.groupby([*by, "step"], observed=True):
        key = key if isinstance(key, tuple) else (key,)
        mean, lo, hi = t_interval(grp[value].to_numpy(), level)
        rows.append({**dict(zip([*by, "step"], key)), "mean": mean, "lo": lo, "hi": hi,
                     "n": int(grp[value].notna().sum())})
    return pd.DataFrame(rows, columns=[*by, "step", "mean", "lo", "hi", "n"])


def window_means(
    scores: pd.DataFrame,
    window: tuple[int, int],
    value: str = "loss",
    by: Sequence[str] = ("arrangement",),
    unit: str = "seed",
) -> pd.DataFrame:
    """Mean of ``value`` over the steps ``window[0] ≤ step ≤ window[1]``, per ``by`` × unit.

    ``unit="seed"``: one row per seed (mean over instances and steps); ``unit="instance"``:
    one row per seed × test instance (column ``id``).
    """
    lo, hi = window
    sel = scores[(scores["step"] >= lo) & (scores["step"] <= hi)].dropna(subset=[value])
    keys = [*by, "seed"] + (["id"] if unit == "instance" else [])
    if unit not in ("seed", "instance"):
        raise ValueError(f"unit must be 'seed' or 'instance', got {unit!r}")
    return sel.groupby(keys, as_index=False, observed=True)[value].mean()


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of ``a`` − ``b`` (negative ``mean_diff``: ``a`` is lower)."""

    a: str
    b: str
    window: tuple[int, int]
    unit: str
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    lo: float
    hi: float
    t: float
    p: float

    def __str__(self) -> str:
        return (
            f"{self.a} − {self.b} = {self.mean_diff:+.3f} "
            f"(95% CI {self.lo:+.3f} to {self.hi:+.3f}; paired t over {self.n} {self.unit}s, "
            f"t = {self.t:.2f}, p = {self.p:.3g})"
        )


def paired_test(
    scores: pd.DataFrame,
    a: str,
    b: str,
    window: tuple[int, int],
    value: str = "loss",
    unit: str = "seed",
    level: float = 0.95,
) -> PairedTest:
    """Paired t-test (``scipy.stats.ttest_rel``) of the window mean of ``a`` against ``b``.

    Pairs are seeds (default) or seed × test instance; see the module docstring for why the
    seed is the default unit. Only units present under both arrangements are paired.
    """
    means = window_means(scores, window, value, ("arrangement",), unit)
    keys = ["seed"] + (["id"] if unit == "instance" else [])
    wide = means.pivot_table(index=keys, columns="arrangement", values=value, observed=True)
    for name in (a, b):
        if name not in wide.columns:
            raise KeyError(f"no scores for arrangement {name!r} in steps {window}")
    pair = wide[[a, b]].dropna()
    diff = (pair[a] - pair[b]).to_numpy()
    mean_d, lo, hi = t_interval(diff, level)
    if len(diff) >= 2 and np.std(diff) > 0:
        res = sps.ttest_rel(pair[a], pair[b])
        t, p = float(res.statistic), float(res.pvalue)
    else:
        t, p = float("nan"), float("nan")
    return PairedTest(a, b, tuple(window), unit, len(diff), float(pair[a].mean()),
                      float(pair[b].mean()), mean_d, lo, hi, t, p)


def early_share(scores: pd.DataFrame, upto: int, value: str = "loss") -> pd.DataFrame:
    """Per seed: share of the total fall of mean ``value`` (step 0 → last) reached by ``upto``.

    1.0 means the whole fall happened by step ``upto``; columns ``seed, share``.

    >>> df = pd.DataFrame({"seed": 0, "arrangement": "r", "step": [0, 4, 8],
    ...                    "loss": [4.0, 1.5, 1.0]})
    >>> early_share(df, 4)["share"].tolist()
    [0.8333333333333334]
    """
    per_seed = seed_means(scores, value, ())
    rows = []
    for seed, grp in per_seed.groupby("seed"):
        grp = grp.sort_values("step")
        start, end = grp[value].iloc[0], grp[value].iloc[-1]
        at = grp.loc[grp["step"] <= upto, value].iloc[-1]
        total = start - end
        rows.append({"seed": seed, "share": float((start - at) / total) if total else np.nan})
    return pd.DataFrame(rows, columns=["seed", "share"])


def metric_stability(
    scores: pd.DataFrame, metrics: Sequence[str] = ("loss", "rouge1", "rougeL", "exact_match")
) -> pd.DataFrame:
    """How noisy each metric is across seeds, relative to how much it moves.

    ``noise``: mean over steps of the standard deviation across seeds of the per-seed mean;
    ``signal``: |last − first| of the mean curve; ``noise_to_signal`` = noise / signal (lower
    is steadier). Metrics absent from ``scores`` are skipped.
    """
    rows = []
    for metric in metrics:
        if metric not in scores or scores[metric].notna().sum() == 0:
            continue
        per_seed = seed_means(scores.dropna(subset=[metric]), metric, ())
        by_step = per_seed.groupby("step")[metric]
        curve = by_step.mean().sort_index()
        noise = float(by_step.std(ddof=1).mean())
        signal = float(abs(curve.iloc[-1] - curve.iloc[0]))
        rows.append({"metric": metric, "steps": len(curve), "noise": noise, "signal": signal,
                     "noise_to_signal": noise / signal if signal else float("inf")})
    return pd.DataFrame(rows, columns=["metric", "steps", "noise", "signal", "noise_to_signal"])


def trend_test(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman rank correlation ``(rho, p)`` of ``y`` with ``x`` (e.g. loss vs window start).

    >>> trend_test([0, 1, 2, 3], [1.0, 1.5, 1.7, 2.0])[0]
    1.0
    """
    res = sps.spearmanr(np.asarray(x, float), np.asarray(y, float))
    return float(res.statistic), float(res.pvalue)


def metrics_ci(
    scores: pd.DataFrame,
    metrics: Sequence[str] = ("loss", "rouge1", "rougeL", "exact_match"),
    level: float = 0.95,
) -> pd.DataFrame:
    """:func:`mean_ci` over seeds for several metrics, stacked (column ``metric``).

    A metric only scored at generation steps contributes rows at those steps only.
    """
    frames = []
    for m in metrics:
        if m in scores and scores[m].notna().any():
            ci = mean_ci(scores.assign(_all="all"), m, ("_all",), level).drop(columns="_all")
            frames.append(ci.assign(metric=m))
    cols = ["metric", "step", "mean", "lo", "hi", "n"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def window_summary(
    scores: pd.DataFrame,
    window: tuple[int, int],
    value: str = "loss",
    by: Sequence[str] = ("arrangement",),
    level: float = 0.95,
) -> pd.DataFrame:
    """Per ``by``: mean over seeds of the window mean of ``value``, with a t-interval.

    >>> df = pd.DataFrame({"arrangement": "a", "seed": [0, 1], "step": 2, "loss": [1.0, 3.0]})
    >>> window_summary(df, (1, 2))[["arrangement", "mean", "n"]].to_dict("records")
    [{'arrangement': 'a', 'mean': 2.0, 'n': 2}]
    """
    per_seed = window_means(scores, window, value, by, "seed")
    rows = []
    for key, grp in per_seed.groupby(list(by), sort=False, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        mean, lo, hi = t_interval(grp[value].to_numpy(), level)
        rows.append({**dict(zip(by, key)), "mean": mean, "lo": lo, "hi": hi, "n": len(grp)})
    return pd.DataFrame(rows, columns=[*by, "mean", "lo", "hi", "n"])


LOSS_PARTS = ("first token", "end token", "content")


def loss_parts(scores: pd.DataFrame, by: Sequence[str] = ("seed",)) -> pd.DataFrame:
    """The mean test loss split into what its first response token, its end-of-response
    token and the tokens between contribute, per ``by`` × step (rows: ``part``, ``value``).

    An instance's loss is the mean over its ``n`` response tokens, so its first token adds
    ``first_loss / n`` and its end token ``end_loss / n`` (a one-token response is its end
    token only); the parts sum to the paper's measure. Instances without an end token (cut
    by truncation) are left out.

    >>> df = pd.DataFrame({"seed": 0, "step": [0, 0], "id": ["a", "b"], "loss": [3.0, 2.0],
    ...                    "n_tokens": [3, 1], "first_loss": [6.0, 2.0],
    ...                    "end_loss": [2.0, 2.0]})
    >>> loss_parts(df).set_index("part")["value"].to_dict()
    {'content': 0.1666..., 'end token': 1.3333..., 'first token': 1.0}
    """
    df = scores.dropna(subset=["loss", "end_loss"]).copy()
    n = df["n_tokens"].astype(float)
    first = np.where(df["n_tokens"] >= 2, df["first_loss"], 0.0) / n
    end = df["end_loss"] / n
    df["first token"], df["end token"] = first, end
    df["content"] = df["loss"] - first - end
    keys = [*by, "step"]
    means = df.groupby(keys, observed=True)[list(LOSS_PARTS)].mean().reset_index()
    return means.melt(id_vars=keys, var_name="part", value_name="value").sort_values(
        [*keys, "part"], ignore_index=True)


def fall_shares(parts: pd.DataFrame, by: Sequence[str] = ("seed",)) -> pd.DataFrame:
    """Per ``by``: the fall of the mean test loss from its first to its last scored step, and
    the share of that fall each part of :func:`loss_parts` makes.

    >>> parts = pd.DataFrame({"seed": 0, "step": [0, 0, 0, 9, 9, 9],
    ...                       "part": ["first token", "end token", "content"] * 2,
    ...                       "value": [2.0, 2.0, 2.0, 1.0, 0.5, 1.5]})
    >>> fall_shares(parts).round(3).to_dict("records")
    [{'seed': 0, 'fall': 3.0, 'first token': 0.333, 'end token': 0.5, 'content': 0.167}]
    """
    rows = []
    for key, grp in parts.groupby(list(by), observed=True):
        key = key if isinstance(key, tuple) else (key,)
        wide = grp.pivot_table(index="step", columns="part", values="value")
        drop = wide.iloc[0] - wide.iloc[-1]
        fall = float(drop.sum())
        rows.append({**dict(zip(by, key)), "fall": fall,
                     **{p: float(drop[p] / fall) if fall else np.nan for p in LOSS_PARTS}})
    return pd.DataFrame(rows, columns=[*by, "fall", *LOSS_PARTS])
