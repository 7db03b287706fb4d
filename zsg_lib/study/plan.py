"""What the book will cost with a profile, before any run: ``zsg plan --profile P``.

For every chapter (in reading order) the runs it asks for
(:func:`zsg_lib.study.chapter_runs.chapter_jobs`, the calls the chapters make through
:mod:`zsg_lib.study.experiment`) and for each run its training steps, training
tokens (the tokens of every batch it trains on, as the run's log counts them), scoring passes
and tokens, and generations; then FLOPs (:mod:`zsg_lib.train.cost`), the peak memory of one
run and the time, on this machine from GEMM rates measured here, on an H100 from its bf16
peak at a stated utilisation (an estimate, never a measurement).

* **Exact where the data allows**: each seed's sampled training and test instances are
  tokenized with the model's tokenizer and every arrangement is computed (cheap: no training;
  sentence embeddings are cached on disk, as the book caches them), so runs, steps and tokens
  are the run records' own numbers. A run that two chapters (or two arrangement names: ``rt``
  and ``random`` at fine granularity are one seeded shuffle) ask for is one run, identified
  as :func:`zsg_lib.train.run.train_run` identifies it: config, ordered ids, test set and
  branch point.
* **Estimated**: arrangements ordered by LoRA gradient features (``grad-nft``) depend on the
  trained warm-up, so their tokens are the consumed count at the sample's mean length (with
  the bounds); an online arrangement (``online-nft``) picks as it trains, so its run is its
  budget's steps and its tokens the budget at the pool's mean length (with the bounds); ``without_data=True`` (no dataset at hand) takes every instance at
  ``max_source_len + max_target_len`` tokens (an upper bound) or at an assumed length.

>>> p = plan(load_profile("tiny"))
>>> p.total.runs == planned_runs(p.profile), p.total.steps <= planned_steps(p.profile)
(True, True)
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..arrange import ARRANGEMENTS
from ..errors import ParamsError
from ..profiles.chapters import CHAPTERS
from ..profiles.params import Profile, load_profile
from ..train import cost
from ..train.config import TrainConfig
from .chapter_runs import Job, chapter_jobs, planned_runs, planned_steps, run_steps  # noqa: F401

# --------------------------------------------------------------------------- one run's cost


@dataclass(frozen=True)
class RunCost:
    """One distinct run: steps and tokens (``exact``: as its record will hold them)."""

    key: str
    label: str
    steps: int
    tokens: float
    response_tokens: float
    score_passes: int
    score_tokens: int  # per pass
    score_response: int
    generations: int
    prompt_tokens: int  # per generation pass
    new_tokens: int  # per generation pass, at max_new_tokens (an upper bound)
    n_test: int
    micro_tokens: int  # the largest micro-batch, for memory
    micro_response: int
    exact: bool = True
    tokens_bounds: tuple[float, float] | None = None


def _scored_steps(cfg: TrainConfig, first: int, end: int) -> tuple[int, int]:
    """Scoring passes and generations of a run training steps ``first + 1 … end`` (a
    branched run's first scores are copied from its warm-up)."""
    from ..train.loop import _eval_steps  # the loop's own rule: one source of truth

    steps, _ = _eval_steps(cfg, first, end)
    computed = steps - ({first} if first else set())
    return len(computed), len([s for s in cfg.generate_at if s in computed])


class Counter:
    """Token lengths of instances, encoded as a run encodes them (cached by id)."""

    def __init__(self, profile: Profile, tokenizer: Any) -> None:
        self.cfg, self.tok = profile.train, tokenizer
        self.lengths: dict[str, tuple[int, int]] = {}

    def __call__(self, table: Any, ids: Iterable[str]) -> list[tuple[int, int]]:
        from ..train.prompts import encode_many

        ids = list(ids)
        todo = [i for i in dict.fromkeys(ids) if i not in self.lengths]
        if todo:
            row = {i: k for k, i in enumerate(table.column("id").to_pylist())}
            msgs = table.column("messages")
            enc, _ = encode_many(self.tok, todo, [msgs[row[i]].as_py() for i in todo],
                                 self.cfg.max_source_len, self.cfg.max_target_len,
                                 self.cfg.template, self.cfg.system_prompt)
            self.lengths.update({i: (len(e.input_ids), e.n_target) for i, e in enc.items()})
        return [self.lengths[i] for i in ids]


def _config(profile: Profile, seed: int, steps: int, generate: bool, branched: bool,
            resolved: bool) -> TrainConfig:
    cfg = profile.run_config(seed, steps, generate,
                             resolved_from=profile.warmup.steps if resolved else None)
    if branched:  # one schedule over warm-up + comparison, as experiment._train sets it
        cfg = dataclasses.replace(cfg, schedule_steps=profile.warmup.steps
                                  + profile.train.max_steps)
    return cfg


def _key(cfg: TrainConfig, order: Any, test: Any, branch: str | None) -> str:
    return json.dumps([cfg.to_dict(), list(order), list(test), branch], sort_keys=True)


def _batches(lengths: list[tuple[int, int]], per_step: int, batch: int) -> dict[str, int]:
    """Training tokens of ``lengths`` consumed in order, and the largest micro-batch."""
    micro = [lengths[k:k + batch] for k in range(0, len(lengths), batch)]
    biggest = max(micro, key=lambda m: sum(t for t, _ in m)) if micro else []
    return {"tokens": sum(t for t, _ in lengths), "response": sum(r for _, r in lengths),
            "micro_tokens": sum(t for t, _ in biggest),
            "micro_response": sum(r for _, r in biggest)}


class DataCosts:
    """Runs costed from the profile's data: the real orders, test sets and token lengths."""

    def __init__(self, profile: Profile, tokenizer: Any) -> None:
        self.profile, self.count = profile, Counter(profile, tokenizer)

    def test(self, seed: int) -> tuple[list[str], int, int, int]:
        from . import experiment as ex

        test = ex.prepare(self.profile, seed).test
        ids = test.column("id").to_pylist()
        lengths = self.count(test, ids)
        return ids, sum(t for t, _ in lengths), sum(r for _, r in lengths), len(ids)

    def run(self, job: Job) -> RunCost:
        from . import experiment as ex

        p, seed = self.profile, job.seed
        per_step, t = p.train.instances_per_step, p.train
        prep = ex.prepare(p, seed)
        branched = job.kind != "warmup" and job.branch and p.warmup.steps > 0
        test_ids, test_tokens, test_resp, n_test = self.test(seed)
        exact, bounds = True, None
        online = job.kind == "arrangement" and ARRANGEMENTS[job.name].online
        if job.kind == "warmup":
            table, order = prep.warmup, prep.warmup.column("id").to_pylist()
            steps, label, name = p.warmup.steps, f"warmup-seed{seed}", "warmup"
            cfg = dataclasses.replace(_config(p, seed, steps, False, False, False),
                                      keep_final_state=True,
                                      schedule_steps=p.warmup.steps + t.max_steps)
        else:
            if job.kind == "window":
                windows = ex.check_windows(p, seed)
                arr = ex.window_arrangement(p, job.start, seed)
                ids = arr.ids[: min(len(w.ids) for w in windows)]
                table, name, label = prep.pool, arr.name, f"tma-window{job.start}-seed{seed}"
            elif ARRANGEMENTS[job.name].features == "gradient":  # ordered by the trained warm-up
                table, name, label = prep.train, job.name, f"{job.name}-seed{seed}"
                ids = None
            elif online:  # picked as it trains: its budget from the pool
                ex.online_source(p, job.name, seed)  # the pool holds the budget
                table, name, label = prep.pool, job.name, f"{job.name}-seed{seed}"
                ids = None
            else:
                arr = ex.arrangement(p, job.name, seed)
                table, name, label = ex.train_table(p, job.name, seed), arr.name, f"{job.name}-seed{seed}"
                ids = arr.ids
            n = (len(ids) if ids is not None else
                 min(p.tma.budget, table.num_rows) if online else table.num_rows)
            steps = min(t.max_steps, math.ceil(n / per_step))
            if steps == 0:
                raise ParamsError(f"{p.source}: arrangement {name!r} selected no instances")
            unbranched = not job.branch or p.warmup.steps == 0
            generate = job.generate or (name in p.generate_for and unbranched)
            resolved = name in p.attribution.arrangements and branched
            cfg = _config(p, seed, steps, generate, branched, resolved)
            if ids is None:
                order = None
                consumed = min(n, steps * per_step)
                lengths = self.count(table, table.column("id").to_pylist())
                # the whole sample, in an order known only after training; an online run's
                # instances too are known only then
                exact = consumed == n and not online
                by_size = sorted(lengths)
                mean_t = sum(x for x, _ in lengths) / n
                mean_r = sum(r for _, r in lengths) / n
                bounds = (float(sum(x for x, _ in by_size[:consumed])),
                          float(sum(x for x, _ in by_size[-consumed:])))
                longest = by_size[-t.batch_size:]
                b = {"tokens": consumed * mean_t, "response": consumed * mean_r,
                     "micro_tokens": sum(x for x, _ in longest),
                     "micro_response": sum(r for _, r in longest)}
            else:
                order = list(ids[: steps * per_step])
        if order is not None:
            b = _batches(self.count(table, order), per_step, t.batch_size)
        first = p.warmup.steps if branched else 0
        passes, gens = _scored_steps(cfg, first, first + steps)
        branch_key = self.run(Job("warmup", "warm-up", seed)).key if branched else None
        key = (_key(cfg, order, test_ids, branch_key) if order is not None
               else json.dumps(["adaptive-order", name, seed, cfg.to_dict(), branch_key]))
        return RunCost(key, label, steps, b["tokens"], b["response"], passes, test_tokens,
                       test_resp, gens, test_tokens - test_resp,
                       n_test * (cfg.max_new_tokens or max(cfg.max_target_len, 1)), n_test,
                       b["micro_tokens"], b["micro_response"], exact,
                       None if exact else bounds)


class BoundCosts:
    """Runs costed from the profile alone (no data at hand): every instance at
    ``tokens_per_instance`` tokens (default: ``max_source_len + max_target_len``, an upper
    bound), every run its full ``max_steps``, the test set at ``n_test_tasks`` (or the
    listed test tasks) ``× test_per_task`` instances; runs are identified by name, seed and settings."""

    def __init__(self, profile: Profile, tokens_per_instance: int | None = None) -> None:
        t = profile.train
        self.profile = profile
        self.per_instance = tokens_per_instance or t.max_source_len + t.max_target_len
        self.response = min(t.max_target_len, self.per_instance)
        sp = profile.split
        n_tasks = sp.n_test_tasks or len(sp.test_tasks or ())
        n_test = (n_tasks * profile.test_per_task if profile.has_tasks
                  else sp.n_test_instances)
        if not n_test:
            raise ParamsError(f"{profile.source}: split.n_test_tasks: planning without the "
                              "data needs the number of test tasks (or the data itself)")
        self.n_test = n_test

    def run(self, job: Job) -> RunCost:
        p, t, seed = self.profile, self.profile.train, job.seed
        per_step = t.instances_per_step
        branched = job.kind != "warmup" and job.branch and p.warmup.steps > 0
        if job.kind == "warmup":
            steps, generate, resolved, name = p.warmup.steps, False, False, "warmup"
        else:
            steps = run_steps(p, job)
            name = "random" if job.name == "rt" else job.name  # one seeded shuffle
            unbranched = not job.branch or p.warmup.steps == 0
            generate = job.generate or (job.name in p.generate_for and unbranched)
            resolved = job.name in p.attribution.arrangements and branched
        cfg = _config(p, seed, steps, generate, branched, resolved)
        first = p.warmup.steps if branched else 0
        passes, gens = _scored_steps(cfg, first, first + steps)
        n = steps * per_step
        test_tokens, test_resp = self.n_test * self.per_instance, self.n_test * self.response
        key = json.dumps([name, job.start, seed, branched, generate, resolved])
        label = f"{job.name}{job.start if job.kind == 'window' else ''}-seed{seed}"
        return RunCost(key, label, steps, n * self.per_instance, n * self.response, passes,
                       test_tokens, test_resp, gens, test_tokens - test_resp,
                       self.n_test * (cfg.max_new_tokens or max(t.max_target_len, 1)),
                       self.n_test, t.batch_size * self.per_instance, t.batch_size * self.response,
                       exact=False)


# --------------------------------------------------------------------------- the plan


@dataclass
class Tally:
    """Sums over runs (and gradient-feature passes) of one chapter or of the book."""

    runs: int = 0
    used: int = 0
    steps: int = 0
    train_tokens: float = 0.0
    train_response: float = 0.0
    score_tokens: float = 0.0
    score_response: float = 0.0
    prompt_tokens: float = 0.0
    new_tokens: float = 0.0
    feature_tokens: float = 0.0  # gradient features (chapter 7): one backward per instance
    feature_response: float = 0.0
    probes: int = 0  # chapter 8's one-step probes (not runs: their steps are not in ``steps``)
    probe_steps: int = 0
    exact: bool = True

    def add(self, r: RunCost) -> None:
        self.runs += 1
        self.steps += r.steps
        self.train_tokens += r.tokens
        self.train_response += r.response_tokens
        self.score_tokens += r.score_passes * r.score_tokens
        self.score_response += r.score_passes * r.score_response
        self.prompt_tokens += r.generations * r.prompt_tokens
        self.new_tokens += r.generations * r.new_tokens
        self.exact &= r.exact

    def __iadd__(self, other: Tally) -> Tally:
        for f in dataclasses.fields(self):
            if f.name == "exact":
                self.exact &= other.exact
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


@dataclass
class Plan:
    """The book's cost with one profile: per chapter, in total, per run."""

    profile: Profile
    shape: cost.ModelShape
    chapters: dict[str, Tally]
    runs: dict[str, RunCost]
    total: Tally
    with_data: bool
    notes: list[str] = field(default_factory=list)


def _feature_tally(profile: Profile, costs: Any) -> Tally:
    """Chapter 7's gradient features: a forward and backward per sampled training and test
    instance, per seed (from the warm-up's state), and under a query split per query
    instance too (the arrangements' features are a pass of their own, so evaluation text
    never reaches them: :func:`zsg_lib.study.experiment.gradient_features`)."""
    out = Tally()
    for seed in profile.seeds:
        if isinstance(costs, DataCosts):
            from . import experiment as ex

            prep = ex.prepare(profile, seed)
            for table in (prep.train, prep.test, *([prep.query] if prep.has_split else [])):
                lengths = costs.count(table, table.column("id").to_pylist())
                out.feature_tokens += sum(t for t, _ in lengths)
                out.feature_response += sum(r for _, r in lengths)
        else:
            sp = profile.split
            n = (sp.n_train_tasks or 0) * profile.train_per_task + costs.n_test
            if sp.query_per_task is not None:
                n += costs.n_test // profile.test_per_task * sp.query_per_task
            out.feature_tokens += n * costs.per_instance
            out.feature_response += n * costs.response
            out.exact = False
    return out


def _probe_tally(profile: Profile, costs: Any, features_counted: bool) -> Tally:
    """Chapter 8's probes (:mod:`zsg_lib.study.probes`), per seed: each design × target ×
    replicate with a batch of candidates and ``probes.random`` random batches, each
    ``probes.steps`` step(s) of one batch and a scoring pass of the instances its probe set
    scores (a design's: its target's and the seed's sample of the others; random: the whole
    test set), plus each set's scoring of the state itself. The batches are drawn after the
    warm-up (nearest by gradient needs its state), so training tokens are estimated at the
    sample's mean length; the scoring is exact. ``features_counted``: chapter 7's gradient
    features (which ``nearest-gradient`` reads) are already in the plan."""
    from . import probes as chapter

    pp, out = profile.probes, Tally()
    per_step = profile.train.instances_per_step
    if "nearest-gradient" in pp.designs and not features_counted:
        out += _feature_tally(profile, costs)
    for seed in profile.seeds:
        if isinstance(costs, DataCosts):
            from . import experiment as ex

            prep = ex.prepare(profile, seed)
            train_len = costs.count(prep.train, prep.train.column("id").to_pylist())
            per_instance = (sum(t for t, _ in train_len) / len(train_len),
                            sum(r for _, r in train_len) / len(train_len))
            test_ids = prep.test.column("id").to_pylist()
            tokens = dict(zip(test_ids, costs.count(prep.test, test_ids)))
            targets = chapter.targets(profile, prep.test)
            sample = chapter.others_sample(profile, prep.test, seed)
            relatives = chapter.relatives(profile) if "same-label" in pp.designs else None
            train_tasks = prep.train.column("task").to_pylist()

            def scored(target: str | None) -> tuple[int, int]:
                ids = (test_ids if target is None or sample is None
                       else chapter.scored_ids(profile, prep.test, target, sample))
                return (sum(tokens[i][0] for i in ids), sum(tokens[i][1] for i in ids))

            def has_batch(design: str, target: str) -> bool:
                if design != "same-label":
                    return True  # check_probe_data: the candidates hold a batch
                rel = (relatives or {}).get(target, set())
                return sum(t in rel for t in train_tasks) >= per_step
        else:
            out.exact = False
            per_instance = (costs.per_instance, costs.response)
            sp = profile.split
            targets = list(pp.targets or sp.test_tasks or
                           [f"task {k}" for k in range(sp.n_test_tasks or 0)])
            whole = (costs.n_test * costs.per_instance, costs.n_test * costs.response)
            k = pp.others_per_task
            part = ((profile.test_per_task + k * (len(targets) - 1)) if k is not None
                    else costs.n_test)
            own = (part * costs.per_instance, part * costs.response)

            def scored(target: str | None) -> tuple[int, int]:
                return whole if target is None else own

            def has_batch(design: str, target: str) -> bool:
                return True  # no data: every target counted (an upper bound)
        sets = [(None, pp.random)] + [
            (t, pp.replicates * sum(has_batch(d, t) for d in pp.designs)) for t in targets]
        if isinstance(costs, DataCosts) and sample is None:  # one set scores everything
            sets = [(None, sum(n for _, n in sets))]
        for target, n in sets:
            if not n:
                continue
            tok, resp = scored(target)
            out.probes += n
            out.probe_steps += n * pp.steps
            out.train_tokens += n * pp.steps * per_step * per_instance[0]
            out.train_response += n * pp.steps * per_step * per_instance[1]
            out.score_tokens += (n + 1) * tok  # each probe's pass, and the state's own
            out.score_response += (n + 1) * resp
    out.exact = False  # the batches are drawn from the trained warm-up
    return out


def plan(profile: Profile, tokenizer: Any = None, shape: cost.ModelShape | None = None,
         without_data: bool = False, tokens_per_instance: int | None = None) -> Plan:
    """Cost every chapter's runs with ``profile`` (see the module docstring). ``tokenizer``
    and ``shape`` default to the profile model's (:mod:`zsg_lib.train.shapes`). No timing
    here: :mod:`zsg_lib.study.plan_report` turns the counts into FLOPs, memory and time."""
    from ..train import shapes

    if shape is None:
        config, src = shapes.model_config(profile.model)
        shape = shapes.shape_of(config, profile.train.target_modules, src)
    if without_data:
        costs: Any = BoundCosts(profile, tokens_per_instance)
    else:
        costs = DataCosts(profile, tokenizer if tokenizer is not None
                          else shapes.load_tokenizer(profile.model))
    from ..profiles.params import chapter_refusal

    runs: dict[str, RunCost] = {}
    chapters: dict[str, Tally] = {}
    notes, features = [], False
    for chapter, spec in CHAPTERS.items():
        refused = chapter_refusal(profile, chapter)
        if refused:  # the chapter would stop at its first cell: no runs
            notes.append(f"{chapter} cannot run with this profile ({refused}); its runs are "
                         "not counted")
        tally, used = Tally(), set()
        for job in chapter_jobs(profile, chapter):
            r = costs.run(job)
            used.add(r.key)
            if r.key not in runs:
                runs[r.key] = r
                tally.add(r)
        tally.used = len(used)
        if spec.step_resolved and chapter_jobs(profile, chapter):
            tally += _feature_tally(profile, costs)
            features = True
        if spec.probes and not refused:
            tally += _probe_tally(profile, costs, features)
            notes.append(f"{chapter}: {tally.probes} probes of {profile.probes.steps} step(s) "
                         "each from the warm-up states are not runs: their tokens and time "
                         "are in the chapter's row, their steps are not in its steps column")
        chapters[chapter] = tally
    total = Tally()
    for tally in chapters.values():
        total += tally
    total.used = len(runs)
    return Plan(profile, shape, chapters, runs, total, not without_data, notes=notes)


def load(profile_name: str, overrides: dict[str, Any] | None = None,
         without_data: bool = False) -> Profile:
    """The profile, checked as ``zsg book`` checks it (data path included unless
    ``without_data``)."""
    from ..profiles.params import check_runnable

    profile = load_profile(profile_name, overrides, check_paths=not without_data)
    check_runnable(profile)
    return profile


