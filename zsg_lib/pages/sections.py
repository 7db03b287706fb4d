"""Sections several chapters share, text included, so each is written once.

Chapters 3, 4 and 5 each judge an ordering of arms and read it the same way (PAPER.md §3–5):
the arms paired on the same test instances in three views, the same differences per test
task, and the test task that weighs most in each pair's instance mean.
:func:`paired_comparison` shows all of it in one call; chapter 5's online arrangement adds
its own comparison and picks (:func:`online_comparison`). Chapters 2, 3 and 6 read a test task's
relatives among the training tasks (:func:`relatives_basis`, :func:`relatives_fed`,
:func:`nearest_relatives`): the demo's families, or the training tasks of its category; where
the data has neither (or no tasks), each says so in a sentence and moves on.
"""

from __future__ import annotations

import pandas as pd

from ..analysis import findings
from ..analysis.findings import Finding
from ..profiles.profile import Profile
from ..study import chapter_data, experiment as ex
from . import plots

#: Why the pairs are read in three views (shown above the table of pairs).
VIEWS = """\
Each pair of arms is compared instance by instance (same seed, same test instance) over the
window, in three views: the paper's **instance** mean, a **task-balanced** mean (each test
task counts once, however many instances it holds; with as many of every task, as
``test_per_task`` draws, it equals the instance mean), and the loss **relative** to the same
instance's loss at the branch point (a task with large losses then weighs no more than one
with small). Intervals are 95% cluster-bootstrap intervals over test task × seed; the
seed-level paired t is the secondary line. A negative difference: the first arm is lower."""

#: What the second table of pairs is (shown above it, under a query split).
EVALUATION_PAIRS = """\
**On the evaluation instances.** The same pairs, views and intervals on the test instances no
arrangement looked at (instances of the same test tasks, held out by `split.query_per_task`).
The charts and tables below stay on the query instances, as the paper's design has it."""

#: How to read the per-task differences (shown above their chart).
PER_TASK = """\
**Per test task.** The same differences per test task, coloured by the kind of relatives the
task has among the training tasks: *helpful* ones teach the same mapping into the same output
language or format, *mirror* ones use the same words the other way round (near in embedding
space, far in what they teach). These intervals resample the task's instances, so read them
as descriptive."""

#: What the pairs are on data without tasks (shown instead of the per-task views).
NO_TASKS = """\
This dataset ({kind}) has no tasks: each held-out conversation is its own cluster (a task of
one), so the intervals above resample conversations × seeds, and there is no per-task view
to show."""

#: Why one task can make a pair's mean (shown above the heaviest tasks).
HEAVIEST = """\
A difference of losses weighs more where losses are large: the task that moves each pair's
instance mean most, and the mean without it."""


def paired_comparison(profile: Profile, found: Finding) -> None:
    """Show an ordering finding's pairs (:attr:`Finding.details`, three views; under a query
    split, the evaluation instances' pairs after them), their differences per test task (one
    chart per pair) and each pair's heaviest test task
    (:func:`zsg_lib.analysis.findings.heaviest_tasks`), each under its text, in a notebook."""
    from IPython.display import Markdown, display  # a notebook's; not needed to import this

    display(Markdown(VIEWS), found.details)
    if found.evaluation is not None and found.evaluation.comparisons:
        display(Markdown(EVALUATION_PAIRS), found.evaluation.details)
    if not profile.has_tasks:
        display(Markdown(NO_TASKS.format(kind=profile.dataset.kind)))
        return
    display(Markdown(PER_TASK))
    display(plots.stack([
        plots.task_differences(chapter_data.task_differences(profile, c), color="relatives",
                               title=f"{c.a} − {c.b}, per test task")
        for c in found.comparisons]))
    display(Markdown(HEAVIEST))
    print(findings.heaviest_tasks(found))


def relatives_basis(profile: Profile) -> str:
    """What a relative is on this profile's data, as a sentence (or why there are none)."""
    gap = chapter_data.relatives_gap(profile)
    if gap is not None:
        return gap
    return f"Relatives here are {ex.load_split(profile).relatives_basis}."


def relatives_fed(profile: Profile, found: Finding) -> None:
    """Chapter 3's "what each order fed each test task": the relatives each arm fed each test
    task in the compared stretch, and that set against the per-task differences of
    ``found``'s pairs; on data without relatives to count, the sentence that says why."""
    from IPython.display import Markdown, display

    gap = chapter_data.relatives_gap(profile)
    if gap is not None:
        display(Markdown(f"{gap} There is nothing to count, so this section is skipped."))
        return
    display(Markdown(relatives_basis(profile)))
    window = profile.judge.first_window
    fed = chapter_data.relatives_fed(profile, profile.arrangements("similarity"), window[1] - profile.judge.branch_step)
    display(plots.relatives_fed(fed, title=f"Helpful-relative instances fed by step "
                                           f"{window[1]} (mean over seeds, of "
                                           f"{fed['of'].iloc[0]} fed)"))
    display(Markdown("Set against the per-task differences above: does an arm that fed a "
                     "test task more of its helpful relatives than the other arm lower that "
                     "task's loss more?"))
    table, sentence = chapter_data.fed_against_differences(
        fed, [chapter_data.task_differences(profile, c) for c in found.comparisons])
    print(sentence)
    if not table.empty:
        display(plots.scatter(table, x="helpful_more", y="difference", color="pair",
                              tooltip=["task", "pair", "helpful_more", "difference"],
                              x_title="helpful relatives a fed beyond b (mean over seeds)",
                              y_title="per-task loss difference a − b",
                              title="What an arm feeds a test task, against what it gains "
                                    "there"))


def nearest_relatives(profile: Profile, seed: int, k: int = 5) -> None:
    """Chapter 6's "where do test instances find their nearest training instances": per
    test task, the share of its instances' ``k`` nearest training instances that are its
    relatives or of its family (category), and the tasks they come from; on data without
    tasks, the sentence that says the section does not apply."""
    from IPython.display import Markdown, display

    if not profile.has_tasks:
        display(Markdown(f"This dataset ({profile.dataset.kind}) has no tasks, so there are "
                         "no task boundaries to cross; this section does not apply to it."))
        return
    display(Markdown(relatives_basis(profile)))
    near = chapter_data.nearest_relatives(profile, seed, k)
    cols = [c for c in ("has_relative", "share_relative", "share_same_family") if c in near]
    if cols:
        display(near.groupby("task")[cols].mean().round(2))
    display(near[["task", "nearest_tasks"]].drop_duplicates("task"))


#: What the online arrangement's chart shows (shown above it).
ONLINE_PICKS = """\
**What the online runs picked.** At each scoring point the next stretch of batches went to
the query instances whose loss had moved least since the branch point (its loss there over
its loss at the branch point; at the branch point itself, the highest losses), each taking
its nearest unused pool instances. Each cell counts the pool instances a stretch picked for
a query task, over the seeds; the runs' `picks.parquet` holds every pick with its reason
(query instance, loss ratio, cosine distance)."""


def online_comparison(profile: Profile, scores: pd.DataFrame) -> None:
    """Chapter 5's online arrangement (issue #29): against ``tma-nft`` (same budget) and
    ``random`` with the chapter's statistics (:func:`~zsg_lib.analysis.findings.online`, the
    pairs as :func:`paired_comparison` shows them), then which query tasks each stretch
    served; on a profile that does not list it in ``chapters.tma``, the sentence that says
    so. ``scores``: the chapter's runs (``random``'s are read here)."""
    from IPython.display import Markdown, display

    online = chapter_data.online_arrangements(profile)
    if not online:
        display(Markdown("This profile does not list the online arrangement (`online-nft`) "
                         "in `chapters.tma`; add it to compare it here."))
        return
    found = chapter_data.judged("online", profile.judge,  # query and evaluation
                                chapter_data.with_random(profile, scores))
    display(found)
    if found.comparisons:
        paired_comparison(profile, found)
    display(Markdown(ONLINE_PICKS))
    display(plots.online_picks(ex.online_picks(profile, online[0]),
                               title=f"Query tasks each stretch served ({online[0]}, "
                                     f"all seeds)"))
