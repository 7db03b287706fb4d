"""A chapter's first call, :func:`setup`: the profile loaded and everything the chapter needs
from it and from the data checked before any run, so nothing that could fail before training
fails after it.

What the chapter trains comes from :mod:`zsg_lib.study.chapter_runs`; the data, its split and
the arrangements from :mod:`zsg_lib.study.experiment`, which the chapter then asks for its runs::

    P = setup("cpu-demo", "03_similarity")                 # checked before any work
    scores = ex.run_many(P, P.arrangements("similarity"))  # arrangement × seed runs, shared
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..arrange import ARRANGEMENTS
from ..errors import ParamsError
from ..profiles.chapters import CHAPTERS
from ..profiles.params import Profile, check_chapter, check_runnable, load_profile
from . import experiment as ex, probes
from .chapter_runs import trains


def setup(
    profile: str | Profile = "cpu-demo",
    chapter: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    seeds: Sequence[int] | None = None,
) -> Profile:
    """What a chapter's first cell calls: load and check the profile before any work.

    ``seeds`` (from the chapter's ``parameters`` cell) replaces ``profile.seeds``. Raises
    :class:`~zsg_lib.errors.ParamsError` naming file and key on any problem, including a
    dataset path that does not exist or a chapter that needs tasks on data without them.

    >>> setup("tiny", "03_similarity", seeds=[0, 1]).seeds
    (0, 1)
    """
    merged = dict(overrides or {})
    if seeds is not None:
        merged["seeds"] = list(seeds)
    if isinstance(profile, Profile):
        if merged:
            raise ParamsError(f"{profile.source}: overrides apply when loading; pass the "
                              "profile's name or path instead of a loaded Profile")
        prof = profile
    else:
        prof = load_profile(profile, merged)
    check_runnable(prof)
    if chapter is not None:
        check_data(prof, chapter)
    return prof



def check_data(profile: Profile, chapter: str) -> None:
    """Everything ``chapter`` needs from the data, decided from the profile and the loaded
    split before any run starts, so nothing that could fail before training fails after it.

    The profile alone (:func:`check_chapter`: tasks, step-resolved scoring, a comparison to
    make), then the data: the split (:func:`~zsg_lib.study.experiment.load_split`), each
    seed's warm-up draw and samples (:func:`~zsg_lib.study.experiment.prepare`), every
    arrangement the chapter trains selecting instances
    (:func:`~zsg_lib.study.chapter_runs.trains`; orders by gradient features are taken from
    the warm-up, so only their inputs are checked), the TMA rounds its turn windows start
    at and what its probes need (:func:`~zsg_lib.study.probes.check_probe_data`). A problem
    is a
    :class:`ParamsError` naming the profile key. Sections that need something the data
    lacks (relatives, tasks) say so on the page instead.
    """
    check_chapter(profile, chapter)
    if chapter == "intro":
        return
    names, windows = trains(profile, chapter)
    ex.load_split(profile)
    for seed in profile.seeds:
        ex.prepare(profile, seed)
        for name, key in names.items():
            if ARRANGEMENTS[name].features == "gradient":
                continue  # features from the warm-up run: its inputs are the sample, checked
            if ARRANGEMENTS[name].online:  # picks as it trains: the pool must hold its budget
                ex.online_source(profile, name, seed)
                continue
            if not ex.arrangement(profile, name, seed).ids:
                raise ParamsError(f"{profile.source}: {key}: arrangement {name!r} selects no "
                                  f"instances from seed {seed}'s data (check tma.budget, "
                                  "train_per_task and the split)")
        if windows:  # windows need rounds the data has
            ex.check_windows(profile, seed)
    if chapter in CHAPTERS and CHAPTERS[chapter].probes:  # targets, labels, candidates
        probes.check_probe_data(profile)
