"""The glue the chapters call: profile → data → embeddings → arrangement → run → scores.

Chapters never compute anything themselves; they ask this module for a prepared experiment,
an arrangement or a table of scores (read from the run records by
:func:`zsg_lib.train.records.load_runs`), and hand tables to :mod:`zsg_lib.analysis` (through
:mod:`zsg_lib.study.chapter_data`) and :mod:`zsg_lib.pages.plots`.

* **Seeds** vary the sampled data (which training and test instances per task), the
  arrangement's own randomness and the LoRA initialisation; the task split is fixed by
  ``dataset.seed``.
* **Shared runs**: every run goes through :func:`zsg_lib.train.run.train_run`, whose run id hashes
  the training config, the model, the test set and the *ordered* training instances. The
  order handed to it is cut to what the run consumes (``max_steps × batch``), so two
  arrangements that start the same (e.g. ``rt`` and ``random`` at fine granularity, which are
  the same seeded shuffle) are one run, and a run asked for by two chapters is computed once
  for the whole book.
* Data, splits and embeddings are memoised per process; embeddings are also cached on disk.

A chapter's calls, in order (training runs are in the tests and chapters, not here)::

    P = checks.setup("cpu-demo", "03_similarity")  # profile and data checked before any work
    scores = run_many(P, P.arrangements("similarity"))  # arrangement × seed runs, shared
    stats.mean_ci(scores)                          # → plots.loss_curves(...)

>>> from zsg_lib.profiles.params import load_profile
>>> P = load_profile("tiny")
>>> [len(prepare(P, 0).test), len(arrangement(P, "nft", 0).ids)]
[9, 48]
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from .. import data, embed as embedding
from ..arrange import ARRANGEMENTS, Arrangement, OnlinePicker, arrange
from ..data import relatives
from ..data.split import EVALUATION, QUERY, TEST_PART
from ..errors import DataError, ParamsError
from ..paths import cache_dir
from ..profiles.params import Profile, check_split_tasks
from ..train import records, states
from ..train.config import TrainConfig
from ..train.records import RunRecord
from . import progress as events  # the build's per-run lines (no-op outside `zsg book`)
from .chapter_runs import planned_runs

# --------------------------------------------------------------------------- profile


def describe(profile: Profile) -> pd.DataFrame:
    """The profile's settings that shape results, as a two-column table for the book."""
    t = profile.train
    rows = {
        "profile": f"{profile.name} ({profile.source})",
        "model": profile.model or "embedded SmolLM2-135M-Instruct",
        "dataset": profile.dataset.kind + (f" ({profile.dataset.path})" if profile.dataset.path else ""),
        "instances per task (train / test)": f"{profile.train_per_task} / {profile.test_per_task}",
        "test instances per task": _split_text(profile),
        "training": f"{t.method} r={t.lora_r}, lr {t.learning_rate:g} ({t.schedule}), "
                    f"batch {t.batch_size}×{t.grad_accum}, {t.max_steps} steps",
        "precision on this machine": _precision(profile),
        "shared warm-up": (f"{profile.warmup.steps} steps on a seeded random draw from the "
                           "training pool; every comparison branches from it"
                           if profile.warmup.steps else "none (comparisons start at step 0)"),
        "test loss scored every": f"{t.eval_every} steps (chapter 1 also generates at steps {list(t.generate_at)})",
        "instances consumed per run": str(t.max_steps * t.instances_per_step),
        "seeds": ", ".join(map(str, profile.seeds)),
        "comparisons over": "steps {}–{} (sooner) and {}–{} (later)".format(
            *profile.judge.first_window, *profile.judge.last_window),
        "training runs for the whole book": f"{planned_runs(profile)} (shared between chapters)",
    }
    return pd.DataFrame({"setting": list(rows), "value": list(rows.values())})


def _split_text(profile: Profile) -> str:
    """The query split in words (issue #29): what arrangements read, what only scores."""
    n = profile.split.query_per_task
    if n is None:
        return (f"{profile.test_per_task if profile.has_tasks else 'all'}, every one a query "
                "instance: arranged toward and judged on the same instances (the paper's "
                "design; no split.query_per_task)")
    return (f"{n} query (arranged toward) + {profile.test_per_task - n} evaluation (never "
            "arranged toward); every run scores both")


def _precision(profile: Profile) -> str:
    """The base weights' precision and autocast the runs use here (bf16 only where the
    device computes it natively, :mod:`zsg_lib.train.hardware`)."""
    from ..train.hardware import default_device, resolve  # torch: only when a chapter describes

    cfg = resolve(profile.run_config(profile.seeds[0]))
    autocast = "bf16 autocast" if cfg.bf16_autocast else "no autocast"
    return f"{cfg.resolved_precision} base weights, {autocast} ({default_device(cfg.device)})"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataSplit(data.TaskSplit):
    """All instances of the training and test tasks (before per-seed sampling)."""

    #: each task's relatives among the training tasks (task, family, split, relatives,
    #: helpful, mirror, relatives_kind): the demo's families, or the categories the data
    #: names (:mod:`zsg_lib.data.relatives`); ``None`` where the data names neither
    families: pd.DataFrame | None
    #: what a relative is on this data, in words (``None`` without ``families``)
    relatives_basis: str | None = None


@functools.lru_cache(maxsize=4)
def load_split(profile: Profile) -> DataSplit:
    """Load the profile's dataset and split it into training and test tasks, by the one
    split policy (:func:`zsg_lib.data.choose_split`): explicit task lists (``split.*_tasks``)
    win; otherwise the dataset's own split where it has one; otherwise a seeded random split.
    A split the data cannot give is a :class:`ParamsError` naming the profile.
    """
    ds, sp = profile.dataset, profile.split
    options = {o: getattr(ds, o) for o in data.DATASETS[ds.kind].options}  # e.g. NIV2's track
    loaded = data.load(ds.kind, ds.path, **options)
    table, own = loaded.table, loaded.own_split
    if not profile.has_tasks:
        if sp.n_test_instances >= table.num_rows:  # named in the profile, not the loader
            raise ParamsError(f"{profile.source}: split.n_test_instances: "
                              f"{sp.n_test_instances} held-out conversations asked, but "
                              f"{ds.path} holds {table.num_rows}; at most "
                              f"{table.num_rows - 1} (the rest train)")
        split = data.split_instances(table, sp.n_test_instances, seed=ds.seed)
        return DataSplit(split.train, split.test, (), (), None, None)
    # a listed task missing from the data: name it in the profile
    check_split_tasks(profile, pc.unique(table.column("task")).drop_null().to_pylist())
    try:
        split = data.choose_split(
            table, own=(own.train_tasks, own.test_tasks) if own is not None else None,
            train_tasks=sp.train_tasks, test_tasks=sp.test_tasks,
            n_train_tasks=sp.n_train_tasks, n_test_tasks=sp.n_test_tasks, seed=ds.seed)
    except DataError as exc:
        raise ParamsError(f"{profile.source}: split: {exc}") from None
    check_query_split(profile, split.test)
    families, basis = loaded.families, relatives.DEMO_BASIS
    if families is None:  # real data: the training tasks of a test task's category
        families = relatives.category_table(table, split.train_tasks, split.test_tasks)
        basis = relatives.CATEGORY_BASIS if families is not None else None
    return DataSplit(split.train, split.test, split.train_tasks, split.test_tasks, families,
                     basis)


def check_query_split(profile: Profile, test: pa.Table) -> None:
    """ParamsError naming ``split.query_per_task`` and the test task when a task of ``test``
    (every instance of the test tasks) has too few instances for a query and an evaluation
    instance in its test sample (``test_per_task`` at most: a task may hold fewer). The
    profile's own bounds are checked when it loads (:mod:`zsg_lib.profiles.params`)."""
    n = profile.split.query_per_task
    if n is None:
        return
    counts = pc.value_counts(test.column("task")).to_pylist()
    for row in sorted(counts, key=lambda r: r["values"]):
        drawn = min(row["counts"], profile.test_per_task)
        if n >= drawn:
            raise ParamsError(
                f"{profile.source}: split.query_per_task: {n} query instances leave test task "
                f"{row['values']!r} no evaluation instance (it has {row['counts']} instance(s), "
                f"so {drawn} in its test sample); at most {drawn - 1}, or leave the task out")


def tasks_or_ids(table: pa.Table) -> list[str]:
    """Each instance's task, or its id where it has none: on data without tasks each
    held-out conversation is its own cluster (as :func:`run_many`'s scores name it)."""
    return [t if t is not None else i for t, i in
            zip(table.column("task").to_pylist(), table.column("id").to_pylist())]


@dataclass(frozen=True)
class Prepared:
    """One seed's data: the warm-up draw, sampled train/test instances and their embeddings.

    ``warmup`` holds the instances of the shared warm-up (empty without one); ``pool`` is
    every other instance of the training tasks (TMA selects from it, PAPER.md §5), and
    ``train`` is sampled from the pool, so no instance is seen twice. ``test`` is what every
    run scores; ``query`` the test instances arrangements may read and ``evaluation`` the
    rest (``split.query_per_task``, issue #29; without a split ``query`` *is* ``test`` and
    ``evaluation`` is empty). ``pool_emb`` / ``test_emb_tma`` / ``query_emb_tma`` use the TMA
    text view and are computed on first use.
    """

    profile: Profile
    seed: int
    split: DataSplit
    warmup: pa.Table
    pool: pa.Table
    train: pa.Table
    test: pa.Table
    train_emb: np.ndarray
    test_emb: np.ndarray
    query: pa.Table
    evaluation: pa.Table
    query_emb: np.ndarray

    @property
    def has_split(self) -> bool:
        """Whether some test instances are evaluation instances (``split.query_per_task``)."""
        return self.query is not self.test

    @functools.cached_property
    def pool_emb(self) -> np.ndarray:
        return embed(self.profile, self.pool, self.profile.embedding.tma_view)

    @functools.cached_property
    def test_emb_tma(self) -> np.ndarray:
        return embed(self.profile, self.test, self.profile.embedding.tma_view)

    @functools.cached_property
    def query_emb_tma(self) -> np.ndarray:
        if not self.has_split:
            return self.test_emb_tma
        return embed(self.profile, self.query, self.profile.embedding.tma_view)


def embed(profile: Profile, table: pa.Table, view: str) -> np.ndarray:
    """Sentence embeddings of ``table`` under ``view`` (cached on disk by :mod:`zsg_lib.embed`)."""
    return embedding.embed_instances(table, view=view, model=profile.embedding.model,
                                     progress=False)


def warmup_draw(profile: Profile, pool: pa.Table, seed: int) -> np.ndarray:
    """Row indices of the warm-up instances: a seeded random draw from ``pool``, in the
    order they are trained (the same for every arm of the seed)."""
    n = profile.warmup.steps * profile.train.instances_per_step
    if n > pool.num_rows // 2:
        raise ParamsError(f"{profile.source}: warmup.steps: {profile.warmup.steps} steps need "
                          f"{n} instances, but the training pool holds {pool.num_rows} (keep "
                          "at least half of it for the comparisons)")
    # its own stream (seed, 1): the draw does not shift the sampling or the arrangements
    return np.random.default_rng([seed, 1]).choice(pool.num_rows, size=n, replace=False)


def draw_test_set(profile: Profile, split: DataSplit, seed: int) -> pa.Table:
    """This seed's test set: ``test_per_task`` instances of each test task; without tasks, the
    held-out conversations (seeds vary training only)."""
    if not profile.has_tasks:
        return split.test
    return data.sample_per_task(split.test, profile.test_per_task, seed=seed, at_most=True)


def split_test_set(profile: Profile, test: pa.Table, seed: int) -> tuple[pa.Table, pa.Table]:
    """``(query, evaluation)`` of this seed's test set: ``split.query_per_task`` of each test
    task's instances by a seeded draw (its own stream ``[seed, 2]``, so the draws before it
    do not shift), the rest evaluation; without a split ``(test, empty)``."""
    n = profile.split.query_per_task
    if n is None:
        return test, test.slice(0, 0)
    try:
        return data.query_split(test, n, seed=[seed, 2])
    except DataError as exc:  # load_split checks this first; a Profile built by hand may not
        raise ParamsError(f"{profile.source}: split.query_per_task: {exc}") from None


def query_ids(profile: Profile, seed: int) -> list[str] | None:
    """This seed's query instance ids (in the identity and record of every run whose order
    reads them), ``None`` without a split (run ids stay what they were)."""
    prep = prepare(profile, seed)
    return prep.query.column("id").to_pylist() if prep.has_split else None


@functools.lru_cache(maxsize=8)
def prepare(profile: Profile, seed: int) -> Prepared:
    """Draw this seed's warm-up, sample its training and test instances, embed them."""
    split = load_split(profile)
    drawn = warmup_draw(profile, split.train, seed)
    keep = np.ones(split.train.num_rows, bool)
    keep[drawn] = False
    warm, pool = split.train.take(drawn), split.train.filter(keep)
    train = (data.sample_per_task(pool, profile.train_per_task, seed=seed, at_most=True)
             if profile.has_tasks else pool)
    test = draw_test_set(profile, split, seed)
    query, evaluation = split_test_set(profile, test, seed)
    view = profile.embedding.view
    test_emb = embed(profile, test, view)
    query_emb = test_emb if query is test else embed(profile, query, view)
    return Prepared(profile, seed, split, warm, pool, train, test, embed(profile, train, view),
                    test_emb, query, evaluation, query_emb)


@functools.lru_cache(maxsize=16)
def gradient_features(profile: Profile, seed: int, part: str) -> np.ndarray:
    """Projected LoRA gradient features (:mod:`zsg_lib.train.gradients`) of this seed's
    training sample (``part="train"``), test set (``"test"``) or query instances
    (``"query"``: the test set without a split), taken at the branch point: the adapter as
    the shared warm-up left it (as LESS takes its features from a short warm-up), or freshly
    initialised without one. Cached on disk, keyed by that state."""
    from ..train.gradient_cache import features_for  # torch: only when features are asked for

    prep = prepare(profile, seed)
    if part == "query" and not prep.has_split:
        return gradient_features(profile, seed, "test")
    table = {"train": prep.train, "test": prep.test, "query": prep.query}[part]
    warm = branch_point(profile, seed)
    state = states.load_final_state(warm.path)["trainable"] if warm is not None else None
    label, computed = f"gradient features ({part}) seed {seed}", []

    def announce(n: int) -> None:  # a cache miss: minutes of work the build should name
        computed.append(f"{n} instances")
        events.work_started(label, computed[0])

    feats = features_for(profile.run_config(seed), table, state,
                         dim=profile.attribution.gradient_dim, seed=seed, on_compute=announce)
    if computed:
        events.work_finished(label, computed[0])
    return feats


# --------------------------------------------------------------------------- arrangements


def online_source(profile: Profile, name: str, seed: int, **params: Any) -> OnlinePicker:
    """The batch source of an online arrangement's run (:mod:`zsg_lib.arrange.online`): this
    seed's pool and the query instances, under ``tma.budget`` (``params``: ``budget``,
    ``lagging``). ParamsError naming ``tma.budget`` when the pool holds fewer instances."""
    prep = prepare(profile, seed)
    _check_online_budget(profile, name, prep)
    params.setdefault("budget", profile.tma.budget)
    return OnlinePicker(prep.pool, prep.pool_emb, prep.query_emb_tma,
                        prep.query.column("id").to_pylist(), seed=seed, **params)


def _check_online_budget(profile: Profile, name: str, prep: Prepared) -> None:
    """ParamsError naming ``tma.budget`` when the seed's pool holds fewer instances: an
    online arrangement picks each instance once."""
    if profile.tma.budget > prep.pool.num_rows:
        raise ParamsError(f"{profile.source}: tma.budget: {profile.tma.budget} instances, but "
                          f"seed {prep.seed}'s training pool holds {prep.pool.num_rows}; "
                          f"{name!r} picks each instance once")


def arrangement(profile: Profile, name: str, seed: int, **params: Any) -> Arrangement:
    """The named arrangement of this seed's data.

    Arrangements that order (permutations, fine/coarse NFT/FFT/RT) order the sampled training
    set; those that select (``tma-*``) select from the whole ``pool`` under ``tma.budget``
    (override with ``budget=``), as the catalog says (``draws_from``). Every arrangement that
    reads the test set reads its query instances only (``prep.query``: the whole test set
    without ``split.query_per_task``). ``params`` go to :func:`zsg_lib.arrange.arrange`. An
    online arrangement's order is known only as its run trains (:func:`online_source`):
    here, its preview (the picks if no loss moved).
    """
    prep = prepare(profile, seed)
    spec = ARRANGEMENTS[name]
    if spec.online:
        _check_online_budget(profile, name, prep)
        params.setdefault("budget", profile.tma.budget)
        params.setdefault("size", profile.train.instances_per_step)
        params.setdefault("stretch", profile.train.eval_every)
        a = arrange(name, prep.pool, prep.pool_emb, prep.query_emb_tma, seed=seed, **params)
    elif spec.features == "gradient":
        a = arrange(name, prep.train, gradient_features(profile, seed, "train"),
                    gradient_features(profile, seed, "query"), seed=seed, **params)
    elif spec.draws_from == "pool":
        params.setdefault("budget", profile.tma.budget)
        params.setdefault("within_round", profile.tma.within_round)
        a = arrange(name, prep.pool, prep.pool_emb, prep.query_emb_tma, seed=seed, **params)
    else:
        a = arrange(name, prep.train, prep.train_emb, prep.query_emb, seed=seed, **params)
    return dataclasses.replace(a, name=name)


@functools.lru_cache(maxsize=32)
def window_arrangement(profile: Profile, start: int, seed: int,
                       size: int | None = None) -> Arrangement:
    """TMA turn window: the nearest-pick rounds ``[start, start + size)`` (PAPER.md §5), toward
    the query instances. Memoised: the chapter's check and every window run of a seed ask
    for all windows."""
    prep = prepare(profile, seed)
    return arrange("tma-window", prep.pool, prep.pool_emb, prep.query_emb_tma, start=start,
                   size=size or profile.tma.window_size, within_round=profile.tma.within_round,
                   seed=seed)


def train_table(profile: Profile, name: str, seed: int) -> pa.Table:
    """The table an arrangement's ids come from (the pool or the sample, see the catalog)."""
    prep = prepare(profile, seed)
    return prep.pool if ARRANGEMENTS[name].draws_from == "pool" else prep.train


# --------------------------------------------------------------------------- runs


def runs_root(profile: Profile) -> Path:
    """Where run records go: ``profile.runs_root`` or ``$ZSG_HOME/runs``."""
    return Path(profile.runs_root).expanduser() if profile.runs_root else cache_dir("runs")


def branch_point(profile: Profile, seed: int, progress: bool = False) -> RunRecord | None:
    """The shared warm-up run of ``seed`` (``None`` without one): trained once, its final
    state kept so every comparison of the seed branches from it."""
    if profile.warmup.steps == 0:
        return None
    prep = prepare(profile, seed)
    cfg = profile.run_config(seed, start="warmup")
    return _trained(profile, cfg, prep.warmup, prep.test, prep.warmup.column("id").to_pylist(),
                    f"warmup-seed{seed}", progress)


def _train(profile: Profile, arr: Arrangement | OnlinePicker, table: pa.Table,
           test: pa.Table, seed: int, label: str, progress: bool, generate: bool = False,
           branch: bool = True) -> RunRecord:
    """Train ``arr``: a fixed order (cut to what the run consumes), or an online source
    (its budget's steps, at most ``train.max_steps``)."""
    n = len(arr.ids) if isinstance(arr, Arrangement) else len(arr)
    if not n:
        raise ParamsError(f"{profile.source}: arrangement {arr.name!r} selected no instances")
    per_step = profile.train.instances_per_step
    start = branch_point(profile, seed, progress) if branch else None
    # step-resolved scoring after the branch point, for the instance-level chapter
    resolved = (profile.warmup.steps if arr.name in profile.attribution.arrangements
                and start is not None else None)
    cfg = profile.run_config(seed, math.ceil(n / per_step), generate,
                             resolved_from=resolved,
                             start="branch" if start is not None else "zero")
    # only what the run consumes: shared ids
    order = list(arr.ids[: cfg.max_steps * per_step]) if isinstance(arr, Arrangement) else arr
    # the query ids an order read are part of its run (an order that read none, e.g. a
    # shuffle, is the same run under any split: its scores get their part from the study)
    query = query_ids(profile, seed) if ARRANGEMENTS[arr.name].reads_test else None
    return _trained(profile, cfg, table, test, order, label, progress, start, query=query)


def _trained(profile: Profile, cfg: TrainConfig, table: pa.Table, test: pa.Table,
             order: list[str] | OnlinePicker, label: str, progress: bool,
             start_from: RunRecord | None = None,
             query: list[str] | None = None) -> RunRecord:
    """Train (or read back) one run, telling the book build when it starts and ends.
    ``query``: the query instance ids its order read under a query split (part of the run's
    identity and record), ``None`` without a split or for an order that read none."""
    from ..train.run import train_run  # transformers + peft: only when a run is asked for

    steps = cfg.max_steps or 0
    record = train_run(
        cfg, table, test, order, runs_root=runs_root(profile), run_name=label,
        progress=progress, start_from=start_from, query_ids=query,
        on_start=lambda run_id, ready: events.run_started(label, steps, profile=profile.name,
                                                          run_id=run_id, ready=ready))
    events.run_finished(label, steps, record.reused, record.run_id, profile=profile.name)
    return record


def run(profile: Profile, name: str, seed: int, progress: bool = False, generate: bool = False,
        branch: bool = True, **arr_params: Any) -> RunRecord:
    """Arrange and train one run; a finished run with the same parameters is read back.

    ``branch``: start from the seed's shared warm-up (:func:`branch_point`), as every
    comparison does; chapter 1 measures from step 0 (``branch=False``). ``generate``: also
    score greedy generations (ROUGE-1/ROUGE-L/EM) at ``train.generate_at`` (always on for
    the arrangements in ``generate_for`` when the run starts at step 0).
    """
    unbranched = not branch or profile.warmup.steps == 0
    generate = generate or (name in profile.generate_for and unbranched)
    arr = (online_source(profile, name, seed, **arr_params) if ARRANGEMENTS[name].online
           else arrangement(profile, name, seed, **arr_params))
    prep = prepare(profile, seed)
    return _train(profile, arr, train_table(profile, name, seed), prep.test, seed,
                  f"{name}-seed{seed}", progress, generate, branch)


def online_picks(profile: Profile, name: str = "online-nft",
                 seeds: Iterable[int] | None = None) -> pd.DataFrame:
    """Every pick of an online arrangement's runs with its reason
    (:data:`~zsg_lib.train.records.PICKS_SCHEMA`) and the seed; the runs are trained, or read
    back when finished (as :func:`run_many` left them)."""
    seeds = tuple(profile.seeds if seeds is None else seeds)
    return pd.concat([run(profile, name, s).picks.assign(seed=s) for s in seeds],
                     ignore_index=True)


def check_windows(profile: Profile, seed: int) -> list[Arrangement]:
    """Every turn window of ``seed``; ParamsError naming ``tma.window_starts[i]`` when a
    window starts past the rounds this seed's training pool has."""
    windows = [window_arrangement(profile, w, seed) for w in profile.tma.window_starts]
    for i, (w, win) in enumerate(zip(profile.tma.window_starts, windows)):
        if not win.ids:
            raise ParamsError(
                f"{profile.source}: tma.window_starts[{i}]: round {w} does not exist: the "
                f"training pool of seed {seed} has {win.params['rounds_available']} TMA rounds")
    return windows


def run_window(profile: Profile, start: int, seed: int, progress: bool = False) -> RunRecord:
    """One TMA turn-window run (rounds ``[start, start + window_size)``), cut to as many
    instances as the smallest window of the seed has, so windows are compared at equal
    lengths."""
    windows = check_windows(profile, seed)
    arr = window_arrangement(profile, start, seed)
    arr = dataclasses.replace(arr, ids=arr.ids[: min(len(win.ids) for win in windows)])
    prep = prepare(profile, seed)
    return _train(profile, arr, prep.pool, prep.test, seed, f"tma-window{start}-seed{seed}",
                  progress)


def instance_parts(profile: Profile, seeds: Iterable[int]) -> pd.DataFrame:
    """Each seed's test instances and their part (``seed, id, test_part``): the study's one
    split (:func:`split_test_set`); every instance a query one without a split."""
    frames = []
    for seed in dict.fromkeys(seeds):
        prep = prepare(profile, seed)
        query = set(prep.query.column("id").to_pylist())
        ids = prep.test.column("id").to_pylist()
        frames.append(pd.DataFrame({"seed": seed, "id": ids,
                                    TEST_PART: [QUERY if i in query else EVALUATION
                                                for i in ids]}))
    return pd.concat(frames, ignore_index=True)


def _runs(profile: Profile, jobs: list[tuple[dict, Callable[[], RunRecord]]], desc: str,
          progress: bool, resolved: bool = False) -> pd.DataFrame:
    """Run (or read back) each job, then read the score tables of all of them from the run
    records, one copy per label (two labels can name one shared run), each row's
    ``test_part`` by the study's split (a shuffle's run is shared across splits, so its
    record does not say). Without ``resolved`` the rows of step-resolved scoring are left
    out, so every arm has the same steps."""
    labels = []
    # Not in the site build: the terminal gets one line a run (study.progress), and a widget
    # bar would make the page load Jupyter's widget manager from a CDN. (An explicit
    # disable=False would override the TQDM_DISABLE the build sets for other bars.)
    for label, job in tqdm(jobs, desc=desc, disable=not progress or events.site_mode()):
        record = job()
        labels.append({**label, "run_id": record.run_id, "path": record.path})
    runs = pd.DataFrame(labels)
    scores = records.load_runs(list(runs["path"])).scores
    if not resolved:
        scores = records.without_step_resolved(scores)
    # Data without tasks: each held-out conversation is its own cluster (the analyses group
    # and resample by test task × seed, and would drop rows without a task).
    scores["task"] = scores["task"].where(scores["task"].notna(), scores["id"])
    out = runs.drop(columns="path").merge(scores.drop(columns=TEST_PART), on="run_id",
                                          how="left", validate="m:m")
    return out.merge(instance_parts(profile, runs["seed"]), on=["seed", "id"], how="left",
                     validate="m:1")


def run_many(
    profile: Profile, names: Iterable[str], seeds: Iterable[int] | None = None,
    progress: bool = True, generate: bool = False, branch: bool = True,
    resolved: bool = False,
) -> pd.DataFrame:
    """Scores of every arrangement × seed: one row per run × step × test instance.

    Columns: ``arrangement, seed, run_id, step, id, task, loss, first_loss, end_loss, ...``
    (the metrics where generation ran) and ``test_part`` (:data:`~zsg_lib.data.split.TEST_PART`:
    ``"query"`` or ``"evaluation"`` by the study's split, :func:`instance_parts`; ``"query"``
    for every instance without ``split.query_per_task``). Runs already on disk are read back, not retrained.
    ``branch``: from the shared warm-up (see :func:`run`). ``resolved``: keep the rows of
    step-resolved scoring (``attribution.arrangements``), which comparisons leave out.
    """
    seeds = tuple(profile.seeds if seeds is None else seeds)
    jobs = [({"arrangement": n, "seed": s},
             functools.partial(run, profile, n, s, generate=generate, branch=branch))
            for n in names for s in seeds]
    return _runs(profile, jobs, "runs", progress, resolved)


def run_windows(
    profile: Profile, seeds: Iterable[int] | None = None, progress: bool = True
) -> pd.DataFrame:
    """Scores of every TMA turn window × seed (column ``window_start``)."""
    seeds = tuple(profile.seeds if seeds is None else seeds)
    jobs = [({"arrangement": f"window {w}", "window_start": w, "seed": s},
             functools.partial(run_window, profile, w, s))
            for w in profile.tma.window_starts for s in seeds]
    return _runs(profile, jobs, "windows", progress)
