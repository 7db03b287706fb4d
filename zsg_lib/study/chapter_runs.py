"""What each chapter trains, from the profile alone (no data, no model): the one source that
``zsg plan``, the build's and a batch's ETA, the book's settings table and a chapter's data
check all read.

:func:`chapter_jobs` lists the runs a chapter asks for, as its code asks for them;
:func:`run_key` says which of them are one run (as :func:`zsg_lib.train.run.train_run` will
find: same arrangement, seed, start and scoring; ``rt`` at fine granularity is ``random``'s
seeded shuffle); :func:`chapters_work` counts the distinct runs of some chapters and their
steps, and :func:`planned_runs` / :func:`planned_steps` those of the whole book. A chapter
that cannot run on the profile (:func:`~zsg_lib.profiles.params.check_chapter`) asks for
nothing. :func:`trains` names each arrangement a chapter trains by the profile key that
lists it, for the messages of :func:`zsg_lib.study.checks.check_data`.

>>> from zsg_lib.profiles.params import load_profile
>>> p = load_profile("tiny")
>>> trains(p, "03_similarity")
({'nft': 'chapters.similarity[0]', 'fft': 'chapters.similarity[1]', 'rt': 'chapters.similarity[2]'}, False)
>>> planned_runs(p), planned_steps(p)
(51, 294)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..arrange.catalog import ARRANGEMENTS
from ..profiles.chapters import CHAPTERS
from ..profiles.params import Profile, chapter_refusal


@dataclass(frozen=True)
class Job:
    """One run a chapter asks for: an arrangement (``branch``: from the seed's warm-up;
    ``generate``: chapter 1's generating runs), a TMA turn window, or a seed's warm-up."""

    kind: str  # "warmup" | "arrangement" | "window"
    name: str
    seed: int
    branch: bool = True
    generate: bool = False
    start: int = 0


def applies(profile: Profile, chapter: str) -> bool:
    """Whether ``chapter`` can run on this profile (:func:`check_chapter` passes)."""
    return chapter_refusal(profile, chapter) is None


def chapter_jobs(profile: Profile, chapter: str) -> list[Job]:
    """The runs ``chapter`` reads, as its code asks for them (warm-ups first where its runs
    branch from one). A chapter that cannot run on this profile asks for none; the summary
    reads every other chapter's runs.

    >>> from zsg_lib.profiles.params import load_profile
    >>> [j.name for j in chapter_jobs(load_profile("tiny", {"seeds": [0]}), "05_tma")][-4:]
    ['online-nft', 'random', 'tma-window', 'tma-window']
    """
    if not applies(profile, chapter):
        return []
    seeds = profile.seeds
    if chapter == "01_early_generalization":
        return [Job("arrangement", n, s, branch=False, generate=True)
                for n in profile.arrangements(chapter) for s in seeds]
    if CHAPTERS[chapter].probes:  # probes the warm-ups; ranks beside chapter 7's runs
        resolved = profile.attribution.steps > 0 and profile.train.method != "full"
        return [Job("warmup", "warm-up", s) for s in seeds] + (
            [Job("arrangement", profile.attribution.arrangements[0], s) for s in seeds]
            if resolved else [])
    names = list(profile.arrangements(chapter))
    if chapter == "05_tma" and any(ARRANGEMENTS[n].online for n in names):
        names.append("random")  # the online arrangement's other baseline (chapter 2's runs)
    if chapter == "06_beyond":  # closeness vs gain, on chapter 2's random-order runs
        names = ["random"]
    if chapter == "07_instance_level":  # the step-resolved runs come first
        names = [profile.attribution.arrangements[0], *names]
    jobs = [Job("arrangement", n, s) for n in dict.fromkeys(names) for s in seeds]
    windows = [Job("window", "tma-window", s, start=w)
               for w in profile.tma.window_starts for s in seeds]
    if CHAPTERS[chapter].turn_windows:
        jobs += windows
    if chapter == "summary":  # every finding again: the runs above, read back; it judges the
        # turn windows whenever the profile lists them
        jobs = [j for c in CHAPTERS if c != "summary" for j in chapter_jobs(profile, c)]
        jobs += [j for j in windows if j not in jobs]
    if jobs and profile.warmup.steps and any(j.branch for j in jobs):
        jobs = [Job("warmup", "warm-up", s) for s in seeds] + jobs
    return jobs


def run_key(profile: Profile, job: Job) -> tuple:
    """What makes two jobs one run, as :mod:`zsg_lib.study.experiment` trains them: kind,
    arrangement, seed, window start, and whether the run branches from the warm-up,
    generates and is scored step by step (each decided here as the run decides it). ``rt``
    and ``random`` are one seeded shuffle.

    >>> from zsg_lib.profiles.params import load_profile
    >>> p = load_profile("tiny")
    >>> run_key(p, Job("arrangement", "rt", 0)) == run_key(p, Job("arrangement", "random", 0))
    True
    """
    if job.kind == "warmup":
        return ("warmup", job.seed)
    branched = job.branch and profile.warmup.steps > 0
    generate = job.generate or (job.name in profile.generate_for and not branched)
    resolved = job.name in profile.attribution.arrangements and branched
    name = "random" if job.name == "rt" else job.name
    return (job.kind, name, job.seed, job.start, branched, generate, resolved)


def chapters_work(profile: Profile, chapters: Iterable[str]) -> tuple[int, int]:
    """The distinct runs ``chapters`` ask for and their training steps: a warm-up's
    ``warmup.steps``, an online arrangement's its budget's (:func:`run_steps`), every other
    run its full ``train.max_steps`` (at most: an arrangement that selects fewer instances
    stops sooner). What a batch's and the build's progress lines count and time against.

    >>> from zsg_lib.profiles.params import load_profile
    >>> p = load_profile("tiny", {"seeds": [0]})
    >>> chapters_work(p, ["03_similarity"])  # the warm-up (2 steps), nft, fft, rt (6 each)
    (4, 20)
    """
    steps: dict[tuple, int] = {}
    for chapter in chapters:
        for job in chapter_jobs(profile, chapter):
            steps[run_key(profile, job)] = run_steps(profile, job)
    return len(steps), sum(steps.values())


def run_steps(profile: Profile, job: Job) -> int:
    """The training steps of one job, from the profile alone: a warm-up's ``warmup.steps``;
    an online arrangement's ``tma.budget`` over the instances a step (its order is known only
    as it trains, so this is its estimate: it picks until the budget), at most
    ``train.max_steps``; any other run's ``train.max_steps``.

    >>> from zsg_lib.profiles.params import load_profile
    >>> p = load_profile("tiny", {"tma.budget": 6})
    >>> run_steps(p, Job("arrangement", "online-nft", 0)), run_steps(p, Job("arrangement", "nft", 0))
    (3, 6)
    """
    t = profile.train
    if job.kind == "warmup":
        return profile.warmup.steps
    if job.kind == "arrangement" and ARRANGEMENTS[job.name].online:
        return min(t.max_steps, -(-profile.tma.budget // t.instances_per_step))
    return t.max_steps


def planned_runs(profile: Profile) -> int:
    """How many distinct runs the whole book trains with this profile (the chapters that
    cannot run on it train none).

    >>> from zsg_lib.profiles.params import load_profile
    >>> planned_runs(load_profile("cpu-demo"))  # 3 seeds x (warm-up + 11 + chapter 1 + 3 windows)
    48
    """
    return chapters_work(profile, CHAPTERS)[0]


def planned_steps(profile: Profile) -> int:
    """The training steps of the book's :func:`planned_runs`.

    >>> from zsg_lib.profiles.params import load_profile
    >>> planned_steps(load_profile("cpu-demo"))  # 3 warm-ups of 8 steps, 45 runs of 40
    1824
    """
    return chapters_work(profile, CHAPTERS)[1]


def trains(profile: Profile, chapter: str) -> tuple[dict[str, str], bool]:
    """What ``chapter`` trains on this profile (:func:`chapter_jobs`): each arrangement with
    the profile key that names it (``chapters.similarity[0]``), and whether it trains TMA
    turn windows. The summary trains what every chapter that can run here trains, and the
    turn windows the profile lists (it judges them); chapter 6 reads chapter 2's
    random-order runs.

    >>> from zsg_lib.profiles.params import load_profile
    >>> trains(load_profile("tiny"), "05_tma")[1]
    True
    """
    jobs = chapter_jobs(profile, chapter)
    windows = any(j.kind == "window" for j in jobs)
    if chapter == "summary":
        names: dict[str, str] = {}
        for other in CHAPTERS:
            if other != "summary":
                names = {**trains(profile, other)[0], **names}
        return names, windows
    spec = CHAPTERS[chapter]
    listed = {n: f"chapters.{spec.key}[{i}]" for i, n in enumerate(profile.arrangements(chapter))}
    names = {}
    for job in jobs:
        if job.kind == "arrangement" and job.name not in names:
            names[job.name] = listed.get(job.name) or (
                f"chapter {chapter} (its random-order runs)"
                if chapter in ("05_tma", "06_beyond") else "attribution.arrangements[0]")
    return names, windows
