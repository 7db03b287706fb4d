"""The probes chapter's data (issue #28): from each seed's shared warm-up state, a step on a
batch *chosen* by a design, the test set scored, the state restored; what each design did to
its target against random batches from the same state.

Per seed, the profile's ``probes:`` section drives the library's three stages:
:func:`~zsg_lib.arrange.probe_designs.design_batches` draws the batches from the seed's
training sample (which already leaves out the warm-up's instances), by embedding, by
gradient features at the warm-up state (chapter 7's, cached), by the target's relatives;
:func:`~zsg_lib.train.probes.run_probes` runs them from the warm-up's final state with the
branches' own config; :func:`~zsg_lib.analysis.probes.probe_frame` joins Δloss to the design.

With ``probes.others_per_task`` a design's probes score only their target's test instances
and a seeded sample of the other test tasks' (the same sample for every probe of a seed), one
probe set per target; random probes score the whole test set, the control of every target
(the analysis compares each design with random on the instances the design scored). Probes
are records on disk like runs: a rerun reads them back without loading a model.

>>> from zsg_lib.profiles.params import load_profile
>>> P = load_profile("tiny")
>>> prep = ex.prepare(P, 0)
>>> sample = others_sample(P, prep.test, 0)
>>> len(sample), len(scored_ids(P, prep.test, "list_sort_descending", sample))
(3, 5)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ..analysis import probes as analysis
from ..arrange.probe_designs import RANKS, design_batches
from ..data.demo import relatives_of
from ..errors import ParamsError
from ..profiles.chapters import CHAPTERS
from ..profiles.params import Profile, check_probes
from . import experiment as ex, progress as events

#: The probe-set label of the random batches (they have no target).
RANDOM = "random"


# --------------------------------------------------------------------------- inputs


def relatives(profile: Profile) -> dict[str, set[str]] | None:
    """Each test task's helpful relatives among the training tasks (the demo's families, or
    the training tasks of its NIV2 category); ``None`` where the data names neither."""
    families = ex.load_split(profile).families
    return relatives_of(families, "helpful") if families is not None else None


def targets(profile: Profile, test: pa.Table) -> list[str]:
    """The probes' targets: ``probes.targets``, else every test task in test-set order."""
    listed = profile.probes.targets
    return list(listed) if listed is not None else list(
        dict.fromkeys(test.column("task").to_pylist()))


def others_sample(profile: Profile, test: pa.Table, seed: int) -> list[str] | None:
    """The test instances a design's probe scores besides its target's: ``others_per_task``
    of each test task, a seeded draw (its own stream, ``[seed, 28]``) the same for every probe
    of the seed; ``None`` when probes score the whole test set."""
    k = profile.probes.others_per_task
    if k is None:
        return None
    rng = np.random.default_rng([seed, 28])
    ids, tasks = test.column("id").to_pylist(), test.column("task").to_pylist()
    out = []
    for task in dict.fromkeys(tasks):
        own = [i for i, t in zip(ids, tasks) if t == task]
        out += [own[j] for j in sorted(rng.choice(len(own), size=min(k, len(own)),
                                                  replace=False))]
    return out


def scored_ids(profile: Profile, test: pa.Table, target: str,
               sample: list[str] | None) -> list[str]:
    """The test instances a probe of ``target`` scores: its task's and ``sample`` (the whole
    test set without one)."""
    ids, tasks = test.column("id").to_pylist(), test.column("task").to_pylist()
    if sample is None:
        return ids
    keep = set(sample)
    return [i for i, t in zip(ids, tasks) if t == target or i in keep]


def check_probe_data(profile: Profile) -> None:
    """What the probes need from the data, before any work (the profile alone:
    :func:`~zsg_lib.profiles.params.check_probes`): every listed target a test task, labels
    for ``same-label``, each seed's training sample holding the ranked designs' candidates
    and, for each design, at least one target with a batch of candidates. A problem is a
    :class:`ParamsError` naming the profile key."""
    check_probes(profile)
    src, pp = profile.source, profile.probes
    split = ex.load_split(profile)
    for i, task in enumerate(pp.targets or ()):
        if task not in split.test_tasks:
            shown = ", ".join(split.test_tasks[:10]) + (" …" if len(split.test_tasks) > 10
                                                        else "")
            raise ParamsError(f"{src}: probes.targets[{i}]: {task!r} is not a test task "
                              f"(test tasks: {shown})")
    rel = relatives(profile)
    if "same-label" in pp.designs and rel is None:
        i = pp.designs.index("same-label")
        raise ParamsError(f"{src}: probes.designs[{i}]: 'same-label' draws from the target's "
                          f"relatives, and dataset.kind {profile.dataset.kind!r} names neither "
                          "task families nor categories; leave it out")
    per_step = profile.train.instances_per_step
    for seed in profile.seeds:
        prep = ex.prepare(profile, seed)
        if any(d in RANKS for d in pp.designs) and pp.candidates > prep.train.num_rows:
            raise ParamsError(f"{src}: probes.candidates: {pp.candidates} is more than seed "
                              f"{seed}'s training sample ({prep.train.num_rows} instances)")
        if "same-label" in pp.designs:
            tasks = pd.Series(prep.train.column("task").to_pylist())
            short = [t for t in targets(profile, prep.test)
                     if tasks.isin(rel.get(t, set())).sum() < per_step]
            if len(short) == len(targets(profile, prep.test)):
                i = pp.designs.index("same-label")
                raise ParamsError(f"{src}: probes.designs[{i}]: 'same-label': no target has "
                                  f"a batch ({per_step}) of its relatives' instances in seed "
                                  f"{seed}'s training sample; leave it out")


def batches(profile: Profile, seed: int) -> pd.DataFrame:
    """This seed's probes (:func:`~zsg_lib.arrange.probe_designs.design_batches`, one row
    each, ``seed`` added): every design × target × replicate with a batch of candidates (a
    target short of them is left out, e.g. a task without relatives for ``same-label``), and
    ``probes.random`` random batches. A design's nearness to its target is to the target's
    query instances (``split.query_per_task``; all its test instances without a split): like
    an arrangement, a design never reads an evaluation instance. The probes still score
    the whole test set (:func:`run_seed`)."""
    pp = profile.probes
    prep = ex.prepare(profile, seed)
    gradients = None
    if "nearest-gradient" in pp.designs:  # chapter 7's features at the warm-up state
        gradients = (ex.gradient_features(profile, seed, "train"),
                     ex.gradient_features(profile, seed, "query"))
    out = design_batches(
        prep.train.column("id").to_pylist(), prep.train.column("task").to_pylist(),
        prep.query.column("id").to_pylist(), prep.query.column("task").to_pylist(),
        profile.train.instances_per_step, designs=[*pp.designs, "random"],
        targets=targets(profile, prep.query), embeddings=(prep.train_emb, prep.query_emb),
        gradients=gradients, relatives=relatives(profile) if "same-label" in pp.designs
        else None, candidates=pp.candidates, replicates=pp.replicates,
        random_replicates=pp.random, seed=seed, on_short="skip")
    out.insert(0, "seed", seed)
    return out


# --------------------------------------------------------------------------- the probes


@dataclass(frozen=True)
class ProbeResults:
    """Every seed's probes. ``frame``: one row per seed × probe × scored test instance
    (:func:`~zsg_lib.analysis.probes.probe_frame`: ``dloss``, ``design``, ``target``, …);
    ``batches``: the probes' batches (:func:`batches`, seeds concatenated); ``sets``: one row
    per probe set (``seed``, ``target``: a test task or ``random``, ``set_id``, ``probes``,
    ``scored``: test instances, ``computed``: probes computed by this call, 0 when read
    back, the medians of a probe's ``seconds_restore``, ``_steps`` and ``_scoring``)."""

    frame: pd.DataFrame
    batches: pd.DataFrame
    sets: pd.DataFrame


def run_seed(profile: Profile, seed: int,
             progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One seed's probes from its warm-up state: ``(frame, batches, sets)`` as in
    :class:`ProbeResults`. The build's terminal gets a line when the seed's probes start
    computing and when they end (none when every probe is read back)."""
    from ..train.probes import run_probes  # torch: only when probes are asked for

    warm = ex.branch_point(profile, seed, progress)
    if warm is None:  # check_probes refuses this first; a Profile built by hand may not
        raise ParamsError(f"{profile.source}: warmup.steps: 0 leaves no state to probe from")
    prep = ex.prepare(profile, seed)
    cfg = profile.run_config(seed, start="branch")
    drawn = batches(profile, seed)
    sample = others_sample(profile, prep.test, seed)
    test_ids = prep.test.column("id").to_pylist()
    row_of = {i: k for k, i in enumerate(test_ids)}
    groups: list[tuple[str, pd.DataFrame, list[str]]] = []
    if sample is None:
        groups.append(("all", drawn, test_ids))
    else:
        is_random = drawn["design"] == "random"
        groups.append((RANDOM, drawn[is_random], test_ids))
        for target, part in drawn[~is_random].groupby("target", sort=False):
            groups.append((target, part, scored_ids(profile, prep.test, target, sample)))

    label, total, announced, computed = f"probes seed {seed}", len(drawn), [], 0

    def announce(n: int) -> None:  # minutes of work the build should name before it starts
        if not announced:
            announced.append(n)
            events.work_started(label, f"{total} probes")

    deltas, sets = [], []
    for name, part, scored in groups:
        test = prep.test.take([row_of[i] for i in scored])
        done = run_probes(cfg, prep.train, test, warm, part["ids"].tolist(),
                          steps=profile.probes.steps, on_compute=announce)
        computed += done.computed
        d = done.deltas
        d["probe"] = d["probe"].map(dict(enumerate(part["probe"])))
        deltas.append(d)
        timing = d.groupby("probe")[["seconds_restore", "seconds_steps",
                                     "seconds_scoring"]].first().median()
        sets.append({"seed": seed, "target": name, "set_id": done.set_id, "probes": len(part),
                     "scored": len(scored), "computed": done.computed, **timing.to_dict()})
    if announced:
        events.work_finished(label, f"{computed} of {total} probes computed")
    frame = analysis.probe_frame(pd.concat(deltas, ignore_index=True).assign(seed=seed),
                                 drawn.drop(columns=["ids"]))
    return frame, drawn, pd.DataFrame(sets)


def probe_runs(profile: Profile, seeds: Iterable[int] | None = None,
               progress: bool = False) -> ProbeResults:
    """Every seed's probes (:func:`run_seed`), concatenated; probes on disk are read back."""
    check_probes(profile)
    parts = [run_seed(profile, int(s), progress)
             for s in (profile.seeds if seeds is None else seeds)]
    return ProbeResults(*(pd.concat([p[k] for p in parts], ignore_index=True)
                          for k in range(3)))


# --------------------------------------------------------------------------- the analysis


def design_table(results: ProbeResults) -> pd.DataFrame:
    """Per design × measure (target, others, difference), design − random with 95%
    cluster-bootstrap intervals over target task × seed
    (:func:`~zsg_lib.analysis.probes.design_table`)."""
    return analysis.design_table(results.frame)


def finding(table: pd.DataFrame):
    """The chapter's verdict (:func:`~zsg_lib.analysis.probes.probe_finding`: nearest-gradient
    − random on the target), under the chapter's label in the findings table."""
    return analysis.probe_finding(table, section=CHAPTERS["08_probes"].section)


def dose_response(profile: Profile, results: ProbeResults) -> pd.DataFrame:
    """Inside the random probes: each test instance's Δloss against the batch's embedding /
    gradient / label similarity to it, by chapter 7's test with probe fixed effects
    (:func:`~zsg_lib.analysis.probes.dose_response`; gradient similarity where the probes
    took gradient features, labels where the data has them)."""
    from .instance import PREDICTORS, labels_of

    frames = []
    for seed, part in results.frame.groupby("seed", sort=True):
        seed = int(seed)
        prep = ex.prepare(profile, seed)
        gradient = ((ex.gradient_features(profile, seed, "train"),
                     ex.gradient_features(profile, seed, "test"))
                    if "nearest-gradient" in profile.probes.designs else None)
        test_labels = labels_of(profile, prep.test)
        labels = ((labels_of(profile, prep.train), test_labels) if test_labels is not None
                  else None)
        frames.append(analysis.random_predictors(
            part, results.batches[results.batches["seed"] == seed],
            prep.train.column("id").to_pylist(), prep.test.column("id").to_pylist(),
            embedding=(prep.train_emb, prep.test_emb), gradient=gradient, labels=labels))
    table = analysis.dose_response(pd.concat(frames, ignore_index=True))
    table.insert(1, "kind", table["predictor"].map(PREDICTORS))
    return table


def observational_table(profile: Profile, progress: bool = False) -> pd.DataFrame | None:
    """Chapter 7's predictor test (its step-resolved runs, read back or trained), or ``None``
    where the profile scores no step-resolved stretch (``attribution.steps: 0``)."""
    from ..profiles.params import check_step_resolved
    from . import instance

    try:
        check_step_resolved(profile)
    except ParamsError:
        return None
    return instance.predictor_table(instance.predictor_frame(profile, progress=progress))


def ranking(profile: Profile, dose: pd.DataFrame,
            progress: bool = False) -> tuple[pd.DataFrame | None, str]:
    """The similarities ranked by the experiment (``dose``: :func:`dose_response`) beside
    chapter 7's observation (:func:`~zsg_lib.analysis.probes.ranking_table`), and the
    sentence that reads it; ``(None, why)`` where chapter 7 has nothing to compare."""
    observed = observational_table(profile, progress)
    if observed is None:
        return None, ("No observational ranking to compare with: this profile scores no "
                      "step-resolved stretch (attribution.steps: 0), so chapter 7 has no "
                      "slopes.")
    table = analysis.ranking_table(dose, observed)
    return table, analysis.ranking_sentence(table)


def cost_table(results: ProbeResults) -> pd.DataFrame:
    """Per seed: the probes, how many were computed now, the test instances a probe scored
    (random and a design's), and a probe's median seconds (restore, steps, scoring; from the
    records, so read-back probes show the time they took when computed)."""
    sets = results.sets
    rand = sets["target"].isin([RANDOM, "all"])
    rows = []
    for seed, part in sets.groupby("seed", sort=True):
        r, d = part[rand.loc[part.index]], part[~rand.loc[part.index]]
        rows.append({
            "seed": seed, "probes": int(part["probes"].sum()),
            "computed now": int(part["computed"].sum()),
            "scored by a random probe": int(r["scored"].max()) if len(r) else None,
            "scored by a design's probe": int(d["scored"].median()) if len(d) else None,
            "restore s": float(part["seconds_restore"].median()),
            "step s": float(part["seconds_steps"].median()),
            "scoring s (random)": float(r["seconds_scoring"].median()) if len(r) else None,
            "scoring s (design)": float(d["seconds_scoring"].median()) if len(d) else None})
    return pd.DataFrame(rows)
