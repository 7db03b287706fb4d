# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Permutations: when does a test task generalize?
#
# **The paper's claim** (§2): the order of the training data matters. Three permutations of
# the same training set:
#
# - **Round-robin**: one instance from every task in turn, so tasks are spread as far apart as
#   possible;
# - **Cluster**: all instances of a task together, task after task;
# - **Random**: a shuffle, the baseline.
#
# Under Cluster, the loss of a given *test* task drops suddenly at the step where training
# reaches a task similar to it; per-test-task curves come in a few shapes (steady fall, sudden
# drop, rise, flat).
#
# **Here** we train the three permutations with each seed, then classify every test task's
# loss curve and, for each sudden drop, list the training tasks that arrived just before it.

# %% tags=["remove-cell"]
# Charts render offline (Vega is served by the site or inlined, never a CDN); tables read plainly.
from zsg_lib.pages.display import enable_book_display

enable_book_display()

# %% tags=["parameters"]
import os

profile = os.environ.get("ZSG_PROFILE", "cpu-demo")  # a profile in params/, or a YAML path
seeds = None  # e.g. [0, 1, 2]; None: the seeds of the profile
overrides = None  # any profile key, dotted, e.g. {"train.max_steps": 12}

# %%
import pandas as pd

from zsg_lib.analysis import findings, stats, transitions
from zsg_lib.pages import plots, sections
from zsg_lib.study import chapter_data, experiment as ex
from zsg_lib.study.checks import setup

P = setup(profile, "02_permutations", overrides, seeds)
ex.describe(P)

# %% [markdown]
# ## Mean test loss under each permutation

# %%
scores = ex.run_many(P, P.arrangements("permutations"))
plots.loss_curves(stats.mean_ci(scores), title="Test loss by permutation (mean over seeds, 95% band)")

# %% [markdown]
# ## Per-test-task curves under Cluster
#
# One seed's run, one line per test task. A dashed rule marks a **sudden drop** detected
# automatically (`zsg_lib.analysis.transitions.classify_curve`: one interval between evaluations
# carries at least half of the task's fall and stands out from the other intervals); hover it to
# see which training tasks arrived in that interval. Hover a point for an example instance of
# the test task.
#
# Shapes are judged from the first evaluation after step 0 on: in a run this short, the first
# interval holds a steep fall for every test task under every order (the model learns the
# answer format), which would otherwise count as a "sudden drop" everywhere.

# %%
seed = P.seeds[0]
drops = chapter_data.sudden_drops(P, scores, "cluster")
cluster_one = scores[(scores["arrangement"] == "cluster") & (scores["seed"] == seed)]
plots.task_curves(
    transitions.task_curves(cluster_one),
    drops[drops["seed"] == seed],
    chapter_data.examples(ex.prepare(P, seed).test),
    title=f"Cluster, seed {seed}: test loss per test task",
)

# %%
drops[drops["kind"] == "sudden drop"][["seed", "task", "prev_step", "drop_step", "drop", "arrivals"]]

# %% [markdown]
# Did a *relative* of the test task arrive just before each drop? On the embedded demo suite
# the relatives are known (a task of the same family, or one sharing its language pair or
# locale); on data that names task categories (NIV2's `Categories`) they are the training
# tasks of the test task's category; on data that names neither, `relative_arrived` stays
# empty.

# %%
print(sections.relatives_basis(P))
related = findings.drop_relatives(drops, ex.load_split(P).families)
related[["seed", "task", "drop_step", "relative_arrived", "arrivals"]]

# %% [markdown]
# ## Curve shapes under each permutation
#
# Counts of test-task curves (over all seeds) by shape, from the first evaluation on.

# %%
shapes = transitions.classify_tasks(scores, from_step=chapter_data.drop_from_step(P))
pd.crosstab(shapes["arrangement"], shapes["kind"])

# %%
found = findings.permutations(P.judge, scores)
found
