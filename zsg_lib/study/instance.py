"""The instance-level chapter's data: which similarity of a training batch to a test instance
predicts that instance's loss change (issue #13, :mod:`zsg_lib.analysis.predictors`).

The runs of ``attribution.arrangements`` (the shared random order after the warm-up) are
scored after every step of a stretch (step-resolved). Their batches are random, so how
similar a step's batch is to a test instance is not chosen by any arrangement: a clean test of
whether that similarity, by sentence embedding, by LoRA gradient or by task label, predicts
the instance's loss change at that step.

>>> from zsg_lib.profiles.params import load_profile
>>> PREDICTORS["label"]
'label'
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa

from ..analysis import predictor_stats, predictors as pr
from ..analysis.seen import consumed_order, seen_prefix
from ..data.relatives import category_of
from ..data.split import TEST_PART
from ..profiles.params import Profile, check_step_resolved
from ..schema import text_view
from ..train import records
from . import experiment as ex

#: Predictor columns of the test, by kind (see :func:`zsg_lib.analysis.predictors.batch_predictors`).
PREDICTORS = {"emb_max": "embedding", "emb_mean": "embedding", "grad_max": "gradient",
              "grad_mean": "gradient", "label": "label"}


def labels_of(profile: Profile, table: pa.Table) -> list[str | None] | None:
    """Each instance's label for the *label* predictor: its task family (demo), its first
    NIV2 category, or its ``category`` (NoRobots); ``None`` when the data has none."""
    split = ex.load_split(profile)
    if split.families is not None and "family" in split.families:
        family = dict(zip(split.families["task"], split.families["family"]))
        return [family.get(t) for t in table.column("task").to_pylist()]
    if "metadata" not in table.column_names:
        return None
    out = [category_of(meta) for meta in table.column("metadata").to_pylist()]
    return out if any(x is not None for x in out) else None


def resolved_runs(profile: Profile, seeds: Iterable[int] | None = None,
                  progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores (step-resolved rows included) and logs of the first of
    ``attribution.arrangements`` for every seed, cut to the step-resolved stretch."""
    check_step_resolved(profile)
    name = profile.attribution.arrangements[0]
    scores = ex.run_many(profile, [name], seeds, progress=progress, resolved=True)
    first, last = profile.warmup.steps, profile.warmup.steps + profile.attribution.steps
    scores = scores[(scores["step"] >= first) & (scores["step"] <= last)]
    runs = scores[["run_id", "seed", "arrangement"]].drop_duplicates()
    log = records.load_runs([ex.runs_root(profile) / r for r in runs["run_id"]]).log
    log = log.merge(runs, on="run_id")
    return scores, log[(log["step"] > first) & (log["step"] <= last)]


def predictor_frame(profile: Profile, seeds: Iterable[int] | None = None,
                    progress: bool = True) -> pd.DataFrame:
    """One row per seed × test instance × step of the stretch: ``dloss``, the predictors
    (:data:`PREDICTORS`; ``label`` only where the data has labels) and the instance's
    ``test_part`` (query or evaluation, by the study's split)."""
    scores, log = resolved_runs(profile, seeds, progress)
    deltas = pr.loss_deltas(scores)
    frames = []
    for seed, part in deltas.groupby("seed"):
        prep = ex.prepare(profile, int(seed))
        train_labels, test_labels = labels_of(profile, prep.train), labels_of(profile, prep.test)
        labels = (train_labels, test_labels) if test_labels is not None else None
        frames.append(pr.batch_predictors(
            part, log[log["seed"] == seed], prep.train.column("id").to_pylist(),
            prep.test.column("id").to_pylist(),
            embedding=(prep.train_emb, prep.test_emb),
            gradient=(ex.gradient_features(profile, int(seed), "train"),
                      ex.gradient_features(profile, int(seed), "test")),
            labels=labels))
    parts = scores[["seed", "id", TEST_PART]].drop_duplicates()
    return pd.concat(frames, ignore_index=True).merge(parts, on=["seed", "id"], how="left",
                                                      validate="m:1")


def predictor_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The predictor test (:func:`zsg_lib.analysis.predictor_stats.predictor_test`) on every
    predictor ``frame`` holds, with each predictor's kind."""
    names = [p for p in PREDICTORS if p in frame and frame[p].notna().any()]
    table = predictor_stats.predictor_test(frame, names)
    table.insert(1, "kind", table["predictor"].map(PREDICTORS))
    return table


def per_task_table(frame: pd.DataFrame, relatives: dict[str, str] | None = None,
                   predictors: Iterable[str] = ("emb_max", "grad_mean")) -> pd.DataFrame:
    """Is the pooled result carried by a few test tasks? The predictor test within each test
    task (step fixed effects; clusters: seed × step, since a task's instances share each
    step's batch). Columns: ``task, predictor, kind, relatives`` and the test's columns;
    ``relatives``: the kind of relatives each task has (``—`` when unknown)."""
    names = [p for p in predictors if p in frame and frame[p].notna().any()]
    if not names:
        raise ValueError(f"frame: none of the predictors {list(predictors)} was measured")
    parts = []
    for task, part in frame.groupby("task", sort=True, observed=True):
        table = predictor_stats.predictor_test(part, names, cluster=("seed", "step"))
        table.insert(0, "task", task)
        parts.append(table)
    out = pd.concat(parts, ignore_index=True)
    out.insert(2, "kind", out["predictor"].map(PREDICTORS))
    out.insert(3, "relatives", out["task"].map(relatives or {}).fillna("—"))
    return out


def per_task_sentence(table: pd.DataFrame) -> str:
    """How many test tasks carry each predictor's pooled sign, from a :func:`per_task_table`.

    >>> t = pd.DataFrame({"predictor": ["g"] * 3, "slope": [-0.2, -0.1, 0.05],
    ...                   "slope_lo": [-0.3, -0.2, -0.02], "slope_hi": [-0.1, 0.01, 0.1]})
    >>> per_task_sentence(t)
    'g: slope below 0 in 2 of 3 test tasks (interval below 0 in 1, above 0 in 0).'
    """
    out = []
    for name, part in table.groupby("predictor", sort=False):
        known = part.dropna(subset=["slope"])
        below = int((known["slope"] < 0).sum())
        sig_below = int((known["slope_hi"] < 0).sum())
        sig_above = int((known["slope_lo"] > 0).sum())
        out.append(f"{name}: slope below 0 in {below} of {len(known)} test tasks (interval "
                   f"below 0 in {sig_below}, above 0 in {sig_above}).")
    return " ".join(out)


def seen_distance(profile: Profile, name: str, seed: int) -> pd.DataFrame:
    """Per scored step × test task of one run: the task's mean test loss and the distance
    from the training instances seen so far to the task (min / mean / centroid negative
    cosine, and the authors' bigram KL; :func:`zsg_lib.analysis.seen.seen_prefix`)."""
    rec = ex.run(profile, name, seed)
    prep = ex.prepare(profile, seed)
    table = ex.train_table(profile, name, seed)
    ids, seen_at = consumed_order(rec.log)
    row = {i: k for k, i in enumerate(table.column("id").to_pylist())}
    emb = (prep.pool_emb if table is prep.pool else prep.train_emb)[[row[i] for i in ids]]
    view = profile.embedding.view
    texts = text_view(table, view)
    scores = records.without_step_resolved(rec.scores)
    steps = sorted(scores["step"].unique())
    seen = seen_prefix(emb, seen_at, prep.test_emb, ex.tasks_or_ids(prep.test),
                       steps, order_texts=[texts[row[i]] for i in ids],
                       test_texts=text_view(prep.test, view))
    scores = scores.assign(task=scores["task"].where(scores["task"].notna(), scores["id"]))
    loss = scores.groupby(["step", "task"], as_index=False)["loss"].mean()
    return seen.merge(loss, on=["step", "task"], how="left")
