"""The catalog of the book's chapters: the one list of chapter files and what each needs.

Each chapter is a file stem in ``book/`` (in reading order, as ``_toc.yml`` lists them), the
``chapters.<key>`` of a profile whose arrangements it compares (``None``: it compares none of
its own) with the arrangements a profile compares when it does not say, and whether it only
makes sense on data with task labels, and whether it reads step-resolved runs. The profile checker, the
batch runner, the glue that collects every finding and the tests all read it.

>>> CHAPTERS["03_similarity"].key, CHAPTERS["02_permutations"].needs_tasks
('similarity', True)
>>> [c for c, spec in CHAPTERS.items() if spec.key is None]
['intro', '06_beyond', 'summary']
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


CHAPTERS: dict[str, ChapterSpec] = {
    "intro": ChapterSpec(),
    "01_early_generalization": ChapterSpec("early", ("random",)),
    "02_permutations": ChapterSpec("permutations", ("round-robin", "cluster", "random"),
                                   needs_tasks=True),
    "03_similarity": ChapterSpec("similarity", ("nft", "fft", "rt")),
    "04_granularity": ChapterSpec("granularity", ("nft", "coarse-nft", "fft", "coarse-fft"),
                                  needs_tasks=True),
    "05_tma": ChapterSpec("tma", ("tma-nft", "tma-fft", "tma-rt", "tma-max-min", "tma-min-max")),
    "06_beyond": ChapterSpec(),
    "07_instance_level": ChapterSpec("instance", ("grad-nft", "nft"), step_resolved=True),
    "summary": ChapterSpec(),
}

#: The ``chapters.<key>`` sections of a profile, in reading order, with their defaults.
COMPARISONS: dict[str, tuple[str, ...]] = {s.key: s.default for s in CHAPTERS.values() if s.key}
