"""The core claim by experiment (issue #28): from one saved state, steps on batches we chose
(:mod:`zsg_lib.arrange.probe_designs`, :mod:`zsg_lib.train.probes`); what each design did to
its target's test instances, against random batches from the same state.

* :func:`probe_frame`: the probes' Δloss (one row per probe × test instance) joined to the
  batches that made them (design, target, replicate).
* :func:`design_table`: per design, Δloss on the target's instances, on the other test tasks'
  instances, and their difference (target − others), each minus the same for random batches
  from the same state; 95% cluster-bootstrap intervals over target task × seed
  (:mod:`~zsg_lib.analysis.bootstrap`). Negative on the target: the design's batch lowered its
  target's loss more than a random batch did.
* :func:`random_predictors` and :func:`dose_response`: inside the random batches, each test
  instance's Δloss against the batch's embedding / gradient / label similarity to it, read by
  chapter 7's own test (:func:`~zsg_lib.analysis.predictor_stats.predictor_test`) with the
  probe in place of the step as fixed effect (every instance of a probe shares its batch).
* :func:`ranking_table` / :func:`ranking_sentence`: does the experiment rank the
  similarities as chapter 7's observation does?
* :func:`probe_finding`: the verdict, computed from the main contrast's interval
  (nearest-gradient − random, on the target), as the other findings are.

>>> rng = np.random.default_rng(0)
>>> frame = synthetic_frame(rng, effect=-0.3)
>>> table = design_table(frame, n_resamples=500)
>>> row = table.query("design == 'nearest-gradient' and measure == 'target'").iloc[0]
>>> bool(row["hi"] < 0), round(float(row["estimate"]), 1)
(True, -0.3)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import predictor_stats, predictors as pr
from .bootstrap import N_RESAMPLES, cluster_resamples, few_clusters, percentile_interval
from .compare import View
from .findings import CLAIMS, Finding, view_contrast

MEASURES = ("target", "others", "difference")
DESIGN_COLUMNS = ["design", "measure", "estimate", "lo", "hi", "n_clusters", "why",
                  "design_mean", "random_mean"]
#: What a design contrast measures (the forest plot's axis).
PROBE_DIFFERENCE = "Δ test loss after one step, design − random (nats; per target task × seed)"
DOSE_PREDICTORS = ("emb_max", "emb_mean", "grad_max", "grad_mean", "label")


def probe_frame(deltas: pd.DataFrame, batches: pd.DataFrame) -> pd.DataFrame:
    """``deltas`` (:attr:`ProbeSet.deltas <zsg_lib.train.probes.ProbeSet>`: ``probe, id, task,
    dloss``) with each probe's ``design, target, target_task, replicate`` from ``batches``
    (:func:`~zsg_lib.arrange.probe_designs.design_batches`), matched on ``probe`` (and
    ``seed`` when both have it).

    >>> d = pd.DataFrame({"probe": [0, 0], "id": ["x", "y"], "task": ["a", "b"],
    ...                   "dloss": [-0.2, 0.1]})
    >>> b = pd.DataFrame({"probe": [0], "design": ["random"], "target": [None],
    ...                   "target_task": [None], "replicate": [0]})
    >>> probe_frame(d, b)["design"].tolist()
    ['random', 'random']
    """
    pr._need(deltas, ["probe", "id", "task", "dloss"], "deltas")
    pr._need(batches, ["probe", "design", "target", "target_task", "replicate"], "batches")
    keys = ["seed", "probe"] if "seed" in deltas and "seed" in batches else ["probe"]
    cols = list(dict.fromkeys([*keys, "design", "target", "target_task", "replicate"]))
    out = deltas.merge(batches[cols], on=keys, how="left", validate="many_to_one")
    unknown = out["design"].isna()
    if unknown.any():
        raise ValueError(f"deltas: probe {out.loc[unknown, 'probe'].iloc[0]} has no batch in "
                         "batches")
    return out


def _per_probe(frame: pd.DataFrame, target_task: str, target: str) -> pd.DataFrame:
    """Per probe: mean Δloss on the target's instances (the task's, or the one instance) and
    on the other test tasks' instances."""
    on_target = (frame["task"] == target_task) if target == target_task else \
        (frame["id"] == target)
    others = frame["task"] != target_task
    grouped = lambda mask: frame[mask].groupby("probe")["dloss"].mean()  # noqa: E731
    return pd.DataFrame({"target": grouped(on_target), "others": grouped(others)})


def cluster_contrasts(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per design × cluster (target task × seed): the design's mean Δloss on the
    target and on the others (over its replicates, and over its targets in the cluster),
    random's on the same instances (over every random probe of the seed; only the instances
    the design's probes scored, when they scored a subset), and the three
    contrasts ``target``, ``others``, ``difference`` (design minus random)."""
    pr._need(frame, ["id", "task", "dloss", "probe", "design", "target", "target_task"],
             "frame")
    if "seed" not in frame:
        frame = frame.assign(seed=0)
    rows = []
    for seed, part in frame.groupby("seed", sort=True):
        rand = part[part["design"] == "random"]
        if rand.empty:
            raise ValueError(f"frame: seed {seed} has no random probes to compare with")
        chosen = part[part["design"] != "random"]
        for (design, target, target_task), own in chosen.groupby(
                ["design", "target", "target_task"], sort=True):
            mine = _per_probe(own, target_task, target).mean()
            # random on the same instances: a design's probe may score a subset of the test
            # set (its target's instances and a sample of the others'); random scores all
            base = _per_probe(rand[rand["id"].isin(set(own["id"]))], target_task,
                              target).mean()
            rows.append({"design": design, "seed": seed, "target": target,
                         "target_task": target_task, "design_target": mine["target"],
                         "design_others": mine["others"], "random_target": base["target"],
                         "random_others": base["others"]})
    per = pd.DataFrame(rows)
    if per.empty:
        raise ValueError("frame: no probes of a design other than random")
    per = per.groupby(["design", "target_task", "seed"], as_index=False).mean(numeric_only=True)
    per["target"] = per["design_target"] - per["random_target"]
    per["others"] = per["design_others"] - per["random_others"]
    per["difference"] = per["target"] - per["others"]
    return per


def design_table(frame: pd.DataFrame, n_resamples: int = N_RESAMPLES,
                 seed: int = 0) -> pd.DataFrame:
    """Per design × measure (``target``, ``others``, ``difference``): the mean over clusters
    (target task × seed) of the design's Δloss minus random's, with its 95% cluster-bootstrap
    interval (the three measures resampled together); ``design_mean`` / ``random_mean``: the
    levels the contrast is the difference of. Fewer than two clusters: no interval, ``why``
    says so. ``frame``: :func:`probe_frame` (with ``seed`` for several states)."""
    per = cluster_contrasts(frame)
    out = []
    for design, part in per.groupby("design", sort=False):
        values = tuple(part[m].to_numpy(dtype=np.float64) for m in MEASURES)
        n = len(part)
        why = few_clusters(n)
        if not why:
            resampled = cluster_resamples(
                lambda *v, axis=-1: np.stack([x.mean(axis=axis) for x in v]), values,
                n_resamples, seed)
        levels = {"target": ("design_target", "random_target"),
                  "others": ("design_others", "random_others")}
        for k, measure in enumerate(MEASURES):
            lo, hi, reason = ((np.nan, np.nan, why) if why
                              else percentile_interval(resampled[k]))
            if measure in levels:
                d_mean, r_mean = (part[c].mean() for c in levels[measure])
            else:
                d_mean = (part["design_target"] - part["design_others"]).mean()
                r_mean = (part["random_target"] - part["random_others"]).mean()
            out.append({"design": design, "measure": measure,
                        "estimate": float(values[k].mean()), "lo": lo, "hi": hi,
                        "n_clusters": n, "why": reason, "design_mean": float(d_mean),
                        "random_mean": float(r_mean)})
    return pd.DataFrame(out, columns=DESIGN_COLUMNS)


# --------------------------------------------------------------------------- dose-response


def random_predictors(frame: pd.DataFrame, batches: pd.DataFrame, train_ids: Sequence[str],
                      test_ids: Sequence[str],
                      embedding: tuple[np.ndarray, np.ndarray] | None = None,
                      gradient: tuple[np.ndarray, np.ndarray] | None = None,
                      labels: tuple[Sequence[object], Sequence[object]] | None = None,
                      ) -> pd.DataFrame:
    """The random probes of one state (one seed) with each test instance's similarity to the
    probe's batch: chapter 7's predictors (:func:`~zsg_lib.analysis.predictors.batch_predictors`:
    ``emb_max``, ``emb_mean``, ``grad_max``, ``grad_mean``, ``label``), and ``step`` set to
    the probe (the fixed effect :func:`dose_response` removes). ``train_ids`` / ``test_ids``
    name the rows of each pair's arrays, as there."""
    pr._need(frame, ["probe", "id", "task", "dloss", "design"], "frame")
    pr._need(batches, ["probe", "ids"], "batches")
    if "seed" in frame and frame["seed"].nunique() > 1:
        raise ValueError("frame: one state (seed) at a time: its arrays are that seed's")
    rand = frame[frame["design"] == "random"]
    if rand.empty:
        raise ValueError("frame: no random probes")
    seed = rand["seed"].iloc[0] if "seed" in rand else 0
    deltas = rand.assign(seed=seed, arrangement=rand["probe"].map(lambda p: f"probe-{p}"),
                         step=1, prev_step=0)
    wanted = batches[batches["probe"].isin(set(rand["probe"]))]
    log = pd.DataFrame({"seed": seed, "arrangement": wanted["probe"].map(lambda p: f"probe-{p}"),
                        "step": 1, "instance_ids": wanted["ids"].map(list)})
    out = pr.batch_predictors(deltas, log, train_ids, test_ids, embedding=embedding,
                              gradient=gradient, labels=labels)
    return out.assign(step=out["probe"]).drop(columns=["arrangement", "prev_step"])


def dose_response(frame: pd.DataFrame, predictors: Sequence[str] | None = None,
                  n_resamples: int = N_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Chapter 7's test (:func:`~zsg_lib.analysis.predictor_stats.predictor_test`) inside the
    random probes (:func:`random_predictors`, seeds concatenated): per predictor the Spearman
    correlation, the slope of Δloss per SD of similarity with task and *probe* fixed effects,
    the joint slope and partial R², with 95% cluster-bootstrap intervals over test task ×
    seed. Probe ids must differ across seeds (``step`` is the probe)."""
    names = [p for p in (predictors or DOSE_PREDICTORS) if p in frame and frame[p].notna().any()]
    if not names:
        raise ValueError(f"frame: none of the predictors {list(predictors or DOSE_PREDICTORS)} "
                         "was measured")
    if "seed" in frame and frame.groupby("step")["seed"].nunique().gt(1).any():
        frame = frame.assign(step=frame.groupby(["seed", "step"]).ngroup())
    return predictor_stats.predictor_test(frame, names, n_resamples=n_resamples, seed=seed)


# --------------------------------------------------------------------------- rankings


def ranking_table(experiment: pd.DataFrame, observational: pd.DataFrame,
                  by: str = "slope") -> pd.DataFrame:
    """The similarities ranked by the experiment (:func:`dose_response`) beside chapter 7's
    observation (its :func:`~zsg_lib.analysis.predictor_stats.predictor_test` table): one row
    per predictor in both, ``by`` (default the fixed-effects slope per SD) with its interval
    in each, and each one's rank (1: the most negative, the largest fall per SD).

    >>> exp = pd.DataFrame({"predictor": ["emb_max", "grad_max"], "slope": [-0.1, -0.3],
    ...                     "slope_lo": [-0.2, -0.4], "slope_hi": [0.0, -0.2]})
    >>> obs = exp.assign(slope=[-0.2, -0.1])
    >>> ranks = ranking_table(exp, obs)
    >>> ranks[["predictor", "experiment_rank", "observation_rank"]].values.tolist()
    [['grad_max', 1, 2], ['emb_max', 2, 1]]
    """
    cols = ["predictor", by, f"{by}_lo", f"{by}_hi"]
    pr._need(experiment, cols, "experiment")
    pr._need(observational, cols, "observational")
    both = experiment[cols].merge(observational[cols], on="predictor",
                                  suffixes=("_experiment", "_observation"))
    if both.empty:
        raise ValueError("experiment / observational: no predictor in both tables")
    for side in ("experiment", "observation"):
        both[f"{side}_rank"] = both[f"{by}_{side}"].rank(method="min").astype("Int64")
    if "kind" in observational:
        both.insert(1, "kind", both["predictor"].map(dict(zip(observational["predictor"],
                                                              observational["kind"]))))
    return both.sort_values(["experiment_rank", "predictor"]).reset_index(drop=True)


def ranking_sentence(table: pd.DataFrame, by: str = "slope") -> str:
    """Whether the experiment and the observation rank the similarities alike, from a
    :func:`ranking_table`. A similarity without a slope on either side (one that does not
    vary, e.g. task labels when no training task shares a test task's) is named, not ranked.

    >>> t = pd.DataFrame({"predictor": ["g", "e", "label"], "experiment_rank": [1, 2, None],
    ...                   "observation_rank": [2, 1, None]}).astype({"experiment_rank": "Int64",
    ...                                                               "observation_rank": "Int64"})
    >>> print(ranking_sentence(t))
    By the slope per SD, the experiment ranks g, e (largest fall first); the observation \
ranks e, g: they differ in order and in which comes first. Not ranked (no slope on one side): label.
    """
    ranked = table.dropna(subset=["experiment_rank", "observation_rank"])
    unranked = table.loc[~table.index.isin(ranked.index), "predictor"].tolist()
    left = f" Not ranked (no slope on one side): {', '.join(unranked)}." if unranked else ""
    if ranked.empty:
        return f"No similarity has a {by} per SD on both sides to rank.{left}"
    exp = ranked.sort_values(["experiment_rank", "predictor"])["predictor"].tolist()
    obs = ranked.sort_values(["observation_rank", "predictor"])["predictor"].tolist()
    if exp == obs:
        agree = "the same order"
    elif exp[0] == obs[0]:
        agree = f"the same first ({exp[0]}), another order after it"
    else:
        agree = "they differ in order and in which comes first"
    return (f"By the {by} per SD, the experiment ranks {', '.join(exp)} (largest fall first); "
            f"the observation ranks {', '.join(obs)}: {agree}.{left}")


# --------------------------------------------------------------------------- the verdict


def probe_finding(table: pd.DataFrame, design: str = "nearest-gradient",
                  measure: str = "target", section: str = "8. probes") -> Finding:
    """The claim by experiment, judged on ``design`` − random on ``measure`` (a
    :func:`design_table` row; claimed below 0: the design's batch lowers its target's loss
    more than a random batch does); the measured sentence gives every design's three
    contrasts. ``section``: the chapter's label in the findings table (the book passes its
    catalog's)."""
    claim = CLAIMS["probes"]
    row = table[(table["design"] == design) & (table["measure"] == measure)]
    if row.empty:
        return Finding(section, claim, f"design {design!r} was not probed", "not measured",
                       table)
    r = row.iloc[0]
    why = r["why"] if isinstance(r["why"], str) else ""
    view = View(r["estimate"], r["lo"], r["hi"], int(r["n_clusters"]), why)
    contrast = view_contrast(f"{design} − random, {measure}", view, "below", PROBE_DIFFERENCE)
    parts = []
    for name, part in table.groupby("design", sort=False):
        shown = "; ".join(f"{m} {_shown(part[part['measure'] == m].iloc[0])}"
                          for m in MEASURES if (part["measure"] == m).any())
        parts.append(f"{name}: {shown}")
    measured = (f"One step from the same state, against a random batch (Δ test loss, design − "
                f"random; 95% cluster bootstrap over {int(r['n_clusters'])} target task × "
                f"seed): " + " | ".join(parts) + ".")
    return Finding(section, claim, measured, contrast.status, table, contrasts=(contrast,))


def _shown(row: pd.Series) -> str:
    if isinstance(row["why"], str) and row["why"]:
        return f"{row['estimate']:+.3g} (no interval: {row['why']})"
    return f"{row['estimate']:+.3g} [{row['lo']:+.3g}, {row['hi']:+.3g}]"


# --------------------------------------------------------------------------- a known case


def synthetic_frame(rng: np.random.Generator, effect: float, n_tasks: int = 6,
                    n_seeds: int = 2, per_task: int = 5, replicates: int = 4,
                    noise: float = 0.05) -> pd.DataFrame:
    """A :func:`probe_frame` whose answer is known: every probe moves every test instance by
    noise around a per-seed shift, and a ``nearest-gradient`` batch moves its target task's
    instances by ``effect`` more (``farthest-embedding`` by none), so the design's target
    contrast is ``effect``, its others contrast 0 and its difference ``effect``."""
    tasks = [f"t{k}" for k in range(n_tasks)]
    ids = [(t, f"{t}-{i}") for t in tasks for i in range(per_task)]
    rows, probe = [], 0
    for seed in range(n_seeds):
        shift = rng.normal(0, 0.1)
        designs = [("random", None)] * replicates + [
            (d, t) for d in ("nearest-gradient", "farthest-embedding") for t in tasks
            for _ in range(replicates)]
        counts: dict = {}
        for design, target in designs:
            rep = counts[(design, target)] = counts.get((design, target), -1) + 1
            batch_shift = rng.normal(0, noise)
            for task, i in ids:
                moved = effect if design == "nearest-gradient" and task == target else 0.0
                rows.append({"seed": seed, "probe": probe, "design": design, "target": target,
                             "target_task": target, "replicate": rep, "id": i, "task": task,
                             "dloss": shift + batch_shift + moved + rng.normal(0, noise)})
            probe += 1
    return pd.DataFrame(rows)
