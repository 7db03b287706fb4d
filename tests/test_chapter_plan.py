"""Nothing fails after training that could have failed before it (issue #26, item 2).

For every dataset kind a user's data comes in × every chapter, the chapter's first cell
(:func:`zsg_lib.study.checks.setup`, which runs :func:`~zsg_lib.study.checks.check_data`)
either refuses the profile with a :class:`ParamsError` naming the profile key, or passes; a
run that started during the check would raise here. The chapters that pass are the ones
``test_chapters_kinds.py`` executes end to end; together they show that a chapter that cannot
run stops before its first run starts. Then profiles built to fail late (a turn window past
the data's rounds, a TMA budget that selects nothing, an empty comparison) stop in the check.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from user_data import KINDS, TASKLESS, overrides, write_kind

from zsg_lib.errors import ParamsError
from zsg_lib.profiles.chapters import CHAPTERS
from zsg_lib.study import checks
from zsg_lib.train import run as train_run_module

pytestmark = pytest.mark.slow  # loads each kind and embeds its samples (~1 min in all)

#: Chapters that need task labels: refused on data without tasks, by the profile's key.
NEEDS_TASKS = [c for c, spec in CHAPTERS.items() if spec.needs_tasks]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """One ZSG_HOME for the module: embeddings computed once per kind."""
    home = tmp_path_factory.mktemp("zsg-plan")
    old = os.environ.get("ZSG_HOME")
    os.environ["ZSG_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("ZSG_HOME", None)
    else:
        os.environ["ZSG_HOME"] = old


@pytest.fixture
def no_training(monkeypatch):
    """A run that starts during a check fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a run started during the check")

    monkeypatch.setattr(train_run_module, "train_run", refuse)


def _overrides(kind: str, home: Path, **more) -> dict:
    return {**overrides(kind, write_kind(kind, home / "data")), **more}


@pytest.mark.parametrize("kind", KINDS)
def test_every_chapter_is_decided_before_any_run(kind: str, home: Path, no_training) -> None:
    ov = _overrides(kind, home)
    refused = {}
    for chapter in CHAPTERS:
        try:
            checks.setup("tiny", chapter, ov)
        except ParamsError as exc:
            refused[chapter] = str(exc)
    if kind in TASKLESS:
        assert sorted(refused) == sorted(NEEDS_TASKS)
        for chapter, message in refused.items():
            assert message.startswith("params/tiny.yaml (overrides): dataset.kind: "), message
            assert f"chapter {chapter} needs tasks" in message
    else:
        assert refused == {}


@pytest.mark.parametrize(("kind", "more", "chapters", "key"), [
    ("niv2", {"tma.window_starts": [0, 40]}, ("05_tma", "summary"),
     r"tma.window_starts\[1\]: round 40 does not exist"),
    ("flan-mini", {"split.n_test_tasks": 5, "warmup.steps": 3},
     ("01_early_generalization", "03_similarity", "summary"),
     "warmup.steps: 3 steps need 6 instances"),
    ("niv2", {"split.n_test_tasks": 30}, ("03_similarity", "summary"), "split: "),
    ("sharegpt", {"chapters.tma": []}, ("05_tma",), "chapters.tma: lists no arrangement"),
])
def test_a_chapter_that_would_fail_late_stops_in_the_check(kind, more, chapters, key, home,
                                                           no_training) -> None:
    """Each of these used to fail only once its chapter reached the cell that needs it, or
    (the summary) after training every chapter before it."""
    ov = _overrides(kind, home, **more)
    for chapter in chapters:
        with pytest.raises(ParamsError, match=rf"^params/tiny.yaml \(overrides\): {key}"):
            checks.setup("tiny", chapter, ov)


def test_the_issue_s_profile_passes_the_check_of_chapter_3(home: Path, no_training) -> None:
    """The report in issue #26: chapter 3 on NIV2 failed after 41 minutes in its relatives
    cell. The check passes now, and the section says why it has nothing to count."""
    from zsg_lib.study import chapter_data, checks

    P = checks.setup("tiny", "03_similarity", _overrides("niv2", home))
    gap = chapter_data.relatives_gap(P)
    assert gap is not None and "training tasks of its category" in gap
