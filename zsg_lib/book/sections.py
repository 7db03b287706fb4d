"""Sections several chapters share, text included, so each is written once.

Chapters 3, 4 and 5 each judge an ordering of arms and read it the same way (PAPER.md §3–5):
the arms paired on the same test instances in three views, the same differences per test
task, and the test task that weighs most in each pair's instance mean.
:func:`paired_comparison` shows all of it in one call.
"""

from __future__ import annotations

from ..analysis import findings
from ..analysis.findings import Finding
from . import analyses, plots
from .profile import Profile

#: Why the pairs are read in three views (shown above the table of pairs).
VIEWS = """\
Each pair of arms is compared instance by instance (same seed, same test instance) over the
window, in three views: the paper's **instance** mean, a **task-balanced** mean (each test
task counts once, however many instances it holds; with as many of every task, as
``test_per_task`` draws, it equals the instance mean), and the loss **relative** to the same
instance's loss at the branch point (a task with large losses then weighs no more than one
with small). Intervals are 95% cluster-bootstrap intervals over test task × seed; the
seed-level paired t is the secondary line. A negative difference: the first arm is lower."""

#: How to read the per-task differences (shown above their chart).
PER_TASK = """\
**Per test task.** The same differences per test task, coloured by the kind of relatives the
task has among the training tasks: *helpful* ones teach the same mapping into the same output
language or format, *mirror* ones use the same words the other way round (near in embedding
space, far in what they teach). These intervals resample the task's instances, so read them
as descriptive."""

#: Why one task can make a pair's mean (shown above the heaviest tasks).
HEAVIEST = """\
A difference of losses weighs more where losses are large: the task that moves each pair's
instance mean most, and the mean without it."""


def paired_comparison(profile: Profile, found: Finding) -> None:
    """Show an ordering finding's pairs (:attr:`Finding.details`, three views), their
    differences per test task (one chart per pair) and each pair's heaviest test task
    (:func:`zsg_lib.analysis.findings.heaviest_tasks`), each under its text, in a notebook."""
    from IPython.display import Markdown, display  # a notebook's; not needed to import this

    display(Markdown(VIEWS), found.details, Markdown(PER_TASK))
    display(plots.stack([
        plots.task_differences(analyses.task_differences(profile, c), color="relatives",
                               title=f"{c.a} − {c.b}, per test task")
        for c in found.comparisons]))
    display(Markdown(HEAVIEST))
    print(findings.heaviest_tasks(found))
