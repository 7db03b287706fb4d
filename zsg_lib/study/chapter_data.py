"""A profile's data handed to the analyses: what the chapters call after their runs.

The analyses themselves (:mod:`zsg_lib.analysis`) take plain arrays and tables; each function
here fetches a seed's prepared data or arrangement from :mod:`zsg_lib.study.experiment` and
passes it on. :func:`collect_findings` gathers every finding of the paper for the summary.

>>> from zsg_lib.profiles.params import load_profile
>>> drop_from_step(load_profile("tiny"))  # the first evaluation after the 2-step warm-up
4
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa

from ..analysis import beyond, findings
from ..analysis.compare import Comparison, per_task
from ..analysis.findings import Finding
from ..analysis.maps import embedding_map_frame
from ..analysis.transitions import arrivals, classify_tasks
from ..arrange import ARRANGEMENTS
from ..data.demo import relatives_of
from ..errors import ParamsError
from ..profiles.chapters import CHAPTERS
from ..profiles.params import Profile, chapter_refusal, check_chapter, check_step_resolved
from ..schema import text_view
from ..similarity import distance_stats
from . import experiment as ex


def drop_from_step(profile: Profile) -> int:
    """Where per-task curve shapes start: the first evaluation after the branch point (the
    first interval is the universal early fall, see
    :func:`zsg_lib.analysis.transitions.classify_tasks`)."""
    return profile.judge.drop_from


def consumed(profile: Profile) -> int:
    """Training instances one run consumes (``max_steps`` x instances per step)."""
    return profile.train.max_steps * profile.train.instances_per_step


def relatives_gap(profile: Profile) -> str | None:
    """Why this profile's data has no relatives to count, as a sentence for the page (the
    section that counts them is skipped), or ``None`` when some test task has one.

    Relatives are the demo's families, or the training tasks of a test task's category on
    data that names categories (:attr:`DataSplit.relatives_basis`).

    >>> from zsg_lib.profiles.params import load_profile
    >>> relatives_gap(load_profile("tiny")) is None  # the demo knows its relatives
    True
    """
    split = ex.load_split(profile)
    kind = profile.dataset.kind
    if not profile.has_tasks:
        return (f"This dataset ({kind}) has no tasks, so no test task has relatives among "
                "training tasks.")
    if split.families is None:
        return (f"This dataset ({kind}) names no task families or categories, so a test "
                "task's relatives among the training tasks are unknown.")
    fam = split.families.set_index("task")
    test = [t for t in split.test_tasks if t in fam.index]
    if not any(fam.loc[t, "helpful"] or fam.loc[t, "mirror"] for t in test):
        return (f"Relatives here are {split.relatives_basis}; none of the {len(test)} test "
                "tasks has one among the training tasks (a split that holds out whole "
                "categories, as NIV2's default split does, leaves none).")
    return None


def relatives_fed(profile: Profile, names: Iterable[str], steps: int,
                  seeds: Iterable[int] | None = None) -> pd.DataFrame:
    """What each arm fed each test task: per arrangement × seed × test task, how many of the
    instances of its first ``steps`` steps after the branch point come from the task's
    ``helpful`` and ``mirror`` relatives (the demo's families; on data with categories, the
    training tasks of its category, all counted as helpful).

    Read a per-task difference against it: an arm cannot help a test task it never feeds.
    Raises :class:`~zsg_lib.errors.ParamsError` on data without families or categories
    (:func:`relatives_gap` says so in a sentence instead).
    """
    families = ex.load_split(profile).families
    if families is None:
        raise ParamsError(f"{profile.source}: dataset.kind {profile.dataset.kind!r} names "
                          "no task families or categories, so no relatives to count")
    helpful_of, mirror_of = relatives_of(families, "helpful"), relatives_of(families, "mirror")
    test_tasks = sorted(set(ex.prepare(profile, profile.seeds[0]).test.column("task")
                            .to_pylist()))
    n = steps * profile.train.instances_per_step
    relatives = relatives_kinds(profile)
    rows = []
    for seed in (profile.seeds if seeds is None else seeds):
        for name in names:
            fed = ex.arrangement(profile, name, seed).table["task"].iloc[:n].value_counts()
            for task in test_tasks:
                rows.append({"arrangement": name, "seed": seed, "task": task,
                             "relatives": relatives.get(task, "—"),
                             "helpful": int(fed.reindex(list(helpful_of.get(task, ()))).sum()),
                             "mirror": int(fed.reindex(list(mirror_of.get(task, ()))).sum()),
                             "of": n})
    return pd.DataFrame(rows)


def fed_against_differences(fed: pd.DataFrame, differences: Iterable[pd.DataFrame],
                            ) -> tuple[pd.DataFrame, str]:
    """Per pair ``a − b`` × test task: the per-task loss difference (:func:`task_differences`
    tables, one per pair) next to how many more helpful relatives ``a`` fed the
    task than ``b`` (mean over seeds, from :func:`relatives_fed`), and a sentence with their
    Spearman correlation over every pair × task (SciPy; the tasks share runs, so read its p as
    descriptive).

    >>> fed = pd.DataFrame({"arrangement": ["x", "y"] * 3, "seed": 0,
    ...                     "task": ["t1", "t1", "t2", "t2", "t3", "t3"],
    ...                     "helpful": [9, 0, 0, 4, 2, 2], "mirror": 0, "of": 12})
    >>> diffs = pd.DataFrame({"pair": "x − y", "task": ["t1", "t2", "t3"],
    ...                       "mean": [-0.3, 0.2, 0.0]})
    >>> table, sentence = fed_against_differences(fed, [diffs])
    >>> table["helpful_more"].tolist()
    [9.0, -4.0, 0.0]
    >>> sentence.split(";")[0]
    'Spearman ρ(helpful relatives a fed beyond b, loss difference a − b) = -1.00 over 3 pair × task cells'
    """
    from scipy import stats as sps

    means = fed.groupby(["arrangement", "task"])["helpful"].mean()
    rows = []
    for row in pd.concat(list(differences), ignore_index=True).itertuples(index=False):
        a, b = str(row.pair).split(" − ")
        rows.append({"pair": row.pair, "task": row.task, "difference": row.mean,
                     "helpful_more": float(means.get((a, row.task), float("nan"))
                                           - means.get((b, row.task), float("nan")))})
    table = pd.DataFrame(rows).dropna()
    if len(table) < 3 or table["helpful_more"].nunique() < 2:
        return table, "too few pair × task cells with a difference in what was fed to correlate"
    rho, p = sps.spearmanr(table["helpful_more"], table["difference"])
    return table, (f"Spearman ρ(helpful relatives a fed beyond b, loss difference a − b) = "
                   f"{rho:+.2f} over {len(table)} pair × task cells; p = {p:.2g}, descriptive "
                   "(the cells share runs); below 0: feeding a task's relatives lowers its loss")


def sudden_drops(
    profile: Profile, scores: pd.DataFrame, name: str, seeds: Iterable[int] | None = None
) -> pd.DataFrame:
    """Per seed × test task under arrangement ``name``: curve shape, drop step and the training
    tasks that arrived between the evaluation before the drop and the drop: ``arrived`` (their
    names, a list) and ``arrivals`` (the same as text with counts, ``task (n), ...``, to read).

    Curves are classified from the first evaluation after step 0 on (:func:`drop_from_step`).
    """
    seeds = tuple(profile.seeds if seeds is None else seeds)
    sel = scores[(scores["arrangement"] == name) & (scores["seed"].isin(seeds))]
    shapes = classify_tasks(sel, from_step=drop_from_step(profile))
    texts, arrived = [], []
    for row in shapes.itertuples():
        if row.kind != "sudden drop":
            texts.append("")
            arrived.append([])
            continue
        table = ex.arrangement(profile, name, int(row.seed)).table
        # Steps come back as floats (the column holds NaN where there is no drop).
        w = profile.warmup.steps  # arrangement positions count from the branch point
        arr = arrivals(table, int(row.prev_step) - w, int(row.drop_step) - w,
                       profile.train.instances_per_step)
        texts.append(", ".join(f"{t} ({c})" for t, c in zip(arr["task"], arr["count"])))
        arrived.append(list(arr["task"]))
    shapes["arrivals"] = texts
    shapes["arrived"] = arrived
    return shapes


def distances(profile: Profile, seed: int) -> pd.DataFrame:
    """AD / MD / WSD of every sampled training instance to the test set (PAPER.md §3): to its
    query instances, what the arrangements read (the whole test set without a query split)."""
    prep = ex.prepare(profile, seed)
    st = distance_stats(prep.train_emb, prep.query_emb)
    return pd.DataFrame({"id": prep.train.column("id").to_pylist(),
                         "task": prep.train.column("task").to_pylist(),
                         "ad": st.ad, "md": st.md, "wsd": st.wsd})


def embedding_map(profile: Profile, name: str, seed: int) -> pd.DataFrame:
    """UMAP map of this seed's training + test instances, coloured by ``name``'s positions
    (training instances past what a run consumes get no position). The test instances are
    the query instances, what the arrangement saw (all of them without a query split)."""
    prep = ex.prepare(profile, seed)
    arr = ex.arrangement(profile, name, seed)
    return embedding_map_frame(
        prep.train.column("id").to_pylist(), prep.train.column("task").to_pylist(),
        text_view(prep.train, "all_turns"), prep.train_emb,
        prep.query.column("task").to_pylist(), text_view(prep.query, "all_turns"),
        prep.query_emb, arr.ids, consumed=consumed(profile), seed=seed,
    )


def examples(table: pa.Table) -> dict[str, str]:
    """The first instance text of each task, for tooltips."""
    out: dict[str, str] = {}
    for task, text in zip(table.column("task").to_pylist(), text_view(table, "all_turns")):
        out.setdefault(task or "(no task)", text)
    return out


def ot_vs_wsd(profile: Profile, seed: int) -> pd.DataFrame:
    """Per sampled training instance: WSD and its optimal-transport cost share, with ranks
    (to the query instances, as :func:`distances`)."""
    prep = ex.prepare(profile, seed)
    return beyond.ot_vs_wsd(distances(profile, seed), prep.train_emb, prep.query_emb)


def nearest_relatives(profile: Profile, seed: int, k: int = 5) -> pd.DataFrame:
    """Per query instance (every test instance without a query split): the tasks of its
    ``k`` nearest training instances in the pool, and how many are the same family / a
    relative (demo data; absent elsewhere)."""
    prep = ex.prepare(profile, seed)
    pool_emb = ex.embed(profile, prep.pool, profile.embedding.view)
    return beyond.nearest_relatives(prep.pool.column("task").to_pylist(), pool_emb,
                                    prep.query.column("task").to_pylist(), prep.query_emb,
                                    ex.load_split(profile).families, k)


def similarity_vs_gain(profile: Profile, scores: pd.DataFrame,
                       name: str = "random") -> pd.DataFrame:
    """Per seed × test instance under ``name``: the minimum distance to the training instances
    the run consumed, and the fall in loss from its first scored step (0, or the branch
    point) to the last."""
    frames = []
    per_step = profile.train.instances_per_step
    runs = scores[scores["arrangement"] == name]
    for seed in sorted(runs["seed"].unique()):
        sel = runs[runs["seed"] == seed]
        steps = sel["step"].max() - sel["step"].min()  # from the first scored step on
        seen = set(ex.arrangement(profile, name, int(seed)).ids[: steps * per_step])
        prep = ex.prepare(profile, int(seed))
        gain = beyond.similarity_vs_gain(
            sel, prep.train.column("id").to_pylist(), prep.train_emb, seen,
            prep.test.column("id").to_pylist(), prep.test.column("task").to_pylist(),
            prep.test_emb)
        frames.append(gain.assign(seed=int(seed)))
    out = pd.concat(frames, ignore_index=True)
    return out[["seed", *[c for c in out.columns if c != "seed"]]]


def judged(name: str, judge: findings.Judge, scores: pd.DataFrame) -> Finding:
    """The finding of :mod:`zsg_lib.analysis.findings` function ``name`` on ``scores``: on
    the query and the evaluation instances for a test-centric claim
    (:data:`~zsg_lib.analysis.findings.BY_PART`), on all test instances for the others."""
    judge_fn = getattr(findings, name)
    if name in findings.BY_PART:
        return findings.by_part(judge_fn, judge, scores)
    return judge_fn(judge, scores)


def instance_finding(frame: pd.DataFrame) -> Finding:
    """Chapter 7's finding from its predictor frame
    (:func:`zsg_lib.study.instance.predictor_frame`): the predictor test on the query
    instances, and on the evaluation instances where the frame has them; its
    :attr:`~zsg_lib.analysis.findings.Finding.details` is the query instances' table."""
    from . import instance

    return findings.on_parts(
        lambda rows: findings.instance_level(instance.predictor_table(rows)), frame)


def online_arrangements(profile: Profile, chapter: str = "05_tma") -> list[str]:
    """The online arrangements (issue #29) a chapter's profile key lists."""
    return [n for n in profile.arrangements(chapter) if ARRANGEMENTS[n].online]


def with_random(profile: Profile, scores: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
    """``scores`` and the ``random`` runs' (trained, or read back), as the online finding
    compares it against both ``tma-nft`` and random order."""
    return pd.concat([scores, ex.run_many(profile, ["random"], progress=progress)],
                     ignore_index=True)


def collect_findings(profile: Profile,
                     progress: bool = False) -> tuple[list[Finding], pd.DataFrame]:
    """Every finding for ``profile``, from the run records (runs not on disk are trained).

    Returns the findings and the combined score table of the arrangement runs (both parts of
    the test instances under a query split). Chapters that need task labels are reported
    ``not measured`` on data without tasks; test-centric claims are judged on each part
    (:func:`judged`).
    """
    judge = profile.judge

    why: dict[str, str] = {}

    def runs(chapter: str, **kw) -> pd.DataFrame | None:
        refused = chapter_refusal(profile, chapter)
        if refused:  # e.g. no task labels, or nothing listed to compare
            why[chapter] = refused.split(": ", 1)[-1]
            return None
        return ex.run_many(profile, profile.arrangements(chapter), progress=progress, **kw)

    out: list[Finding] = []
    frames = []
    early_scores = runs("01_early_generalization", generate=True, branch=False)
    if early_scores is None:
        out.append(Finding(CHAPTERS["01_early_generalization"].section,
                           findings.CLAIMS["early"], why["01_early_generalization"],
                           "not measured"))
    else:
        out += [findings.early(profile.early_judge, early_scores),
                findings.steadiest_metric(profile.early_judge, early_scores)]
    for chapter, spec in CHAPTERS.items():
        if spec.judge is None:
            continue
        scores = runs(chapter)
        if scores is None:
            out.append(Finding(spec.section, findings.CLAIMS[spec.key], why[chapter],
                               "not measured"))
            continue
        out.append(judged(spec.judge, judge, scores))
        frames.append(scores)
        if online_arrangements(profile, chapter):  # chapter 5's order that follows the model
            out.append(judged("online", judge, with_random(profile, scores, progress)))
    windows = (ex.run_windows(profile, progress=progress) if profile.tma.window_starts
               else pd.DataFrame({"window_start": []}))  # none: "fewer than two windows"
    out.append(judged("windows", judge, windows))
    out += instance_findings(profile, progress)
    out.append(probe_finding(profile, progress))
    combined = pd.concat(frames, ignore_index=True).drop_duplicates(
        ["arrangement", "seed", "step", "id"]) if frames else pd.DataFrame()
    return out, combined


def instance_findings(profile: Profile, progress: bool = False) -> list[Finding]:
    """Chapter 7's findings: the instance-level predictor test and grad-nft against nft
    (``not measured`` where the profile scores no step-resolved stretch)."""
    from . import instance

    try:
        check_step_resolved(profile)
    except ParamsError as exc:
        return [Finding(CHAPTERS["07_instance_level"].section, findings.CLAIMS["instance"],
                        str(exc), "not measured")]
    found = instance_finding(instance.predictor_frame(profile, progress=progress))
    scores = ex.run_many(profile, profile.arrangements("instance"), progress=progress)
    return [found, judged("gradient_order", profile.judge, scores)]


def probe_finding(profile: Profile, progress: bool = False) -> Finding:
    """Chapter 8's finding: the claim by experiment (``not measured`` where the profile asks
    for no probes or its data cannot give them, with the reason)."""
    from . import probes

    spec = CHAPTERS["08_probes"]
    try:
        check_chapter(profile, "08_probes")
        probes.check_probe_data(profile)
    except ParamsError as exc:
        return Finding(spec.section, findings.CLAIMS["probes"], str(exc).split(": ", 1)[-1],
                       "not measured")
    return probes.finding(probes.design_table(probes.probe_runs(profile, progress=progress)))


def relatives_kinds(profile: Profile) -> dict[str, str]:
    """Each test task's kind of relatives among the training tasks (demo data: ``helpful``,
    ``helpful + mirror``, ``mirror only``, ``none``; data with categories: ``same
    category``, ``none``; empty for data with neither)."""
    families = ex.load_split(profile).families
    return (dict(zip(families["task"], families["relatives_kind"]))
            if families is not None else {})


def task_differences(profile: Profile, comparison: Comparison) -> pd.DataFrame:
    """Per test task of ``comparison``: the mean difference ``a − b`` with its interval
    (:func:`zsg_lib.analysis.compare.per_task`), and the kind of relatives the task has among
    the training tasks (demo data: ``helpful``, ``helpful + mirror``, ``mirror only``,
    ``none``; ``—`` elsewhere)."""
    table = per_task(comparison.pairs)
    table["relatives"] = table["task"].map(relatives_kinds(profile)).fillna("—")
    return table.assign(pair=f"{comparison.a} − {comparison.b}")
