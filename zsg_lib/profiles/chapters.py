"""The catalog of the book's chapters: the one list of chapter files and what each needs.

Each chapter is a file stem in ``book/`` (in reading order, as ``_toc.yml`` lists them), the
``chapters.<key>`` of a profile whose arrangements it compares (``None``: it compares none of
its own) with the arrangements a profile compares when it does not say, and whether it only
makes sense on data with task labels, whether it reads step-resolved runs, trains turn
windows or probes the warm-up state, its findings label and the function that judges its
claim. The profile checker, the batch runner, the glue that collects every finding and the
tests all read it.

>>> CHAPTERS["03_similarity"].key, CHAPTERS["02_permutations"].needs_tasks
('similarity', True)
>>> [c for c, spec in CHAPTERS.items() if spec.key is None]
['intro', '06_beyond', '08_probes', 'summary']
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChapterSpec:
    """A chapter: the profile key of the arrangements it compares (and their default), and
    whether it needs tasks."""

    key: str | None = None
    default: tuple[str, ...] = ()
    needs_tasks: bool = False
    #: reads step-resolved runs and gradient features (attribution.steps > 0, LoRA adapters)
    step_resolved: bool = False
    #: its label in the findings table (``None``: it judges no claim of its own)
    section: str | None = None
    #: the :mod:`zsg_lib.analysis.findings` function that judges its ordering claim from the
    #: scores of its arrangements (the summary calls it; chapters 1 and 7 judge otherwise)
    judge: str | None = None
    #: trains TMA turn windows: the rounds they start at are checked when the chapter starts
    turn_windows: bool = False
    #: probes the warm-up state (the ``probes:`` section: designs, a warm-up, adapters)
    probes: bool = False


CHAPTERS: dict[str, ChapterSpec] = {
    "intro": ChapterSpec(),
    "01_early_generalization": ChapterSpec("early", ("random",),
                                           section="1. early generalization"),
    "02_permutations": ChapterSpec("permutations", ("round-robin", "cluster", "random"),
                                   needs_tasks=True, section="2. permutations",
                                   judge="permutations"),
    "03_similarity": ChapterSpec("similarity", ("nft", "fft", "rt"), section="3. similarity",
                                 judge="similarity"),
    "04_granularity": ChapterSpec("granularity", ("nft", "coarse-nft", "fft", "coarse-fft"),
                                  needs_tasks=True, section="4. granularity",
                                  judge="granularity"),
    "05_tma": ChapterSpec("tma", ("tma-nft", "tma-fft", "tma-rt", "tma-max-min", "tma-min-max"),
                          section="5. TMA", judge="tma", turn_windows=True),
    "06_beyond": ChapterSpec(),
    "07_instance_level": ChapterSpec("instance", ("grad-nft", "nft"), step_resolved=True,
                                     section="7. instance level"),
    "08_probes": ChapterSpec(needs_tasks=True, section="8. probes", probes=True),
    "summary": ChapterSpec(),
}

#: The ``chapters.<key>`` sections of a profile, in reading order, with their defaults.
COMPARISONS: dict[str, tuple[str, ...]] = {s.key: s.default for s in CHAPTERS.values() if s.key}
