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
# # 4. Granularity: tasks or instances?
#
# **The paper's claim** (§4): arranging by similarity works better at the level of single
# instances than at the level of tasks.
#
# - **Coarse**: a task's embedding is the mean of its instances' embeddings; tasks are ordered
#   by the WSD of that mean to the test set, and a task's instances stay together.
# - **Fine**: instances are ordered individually by WSD, ignoring task labels (chapter 3's NFT).
#
# Early on the two are close; fine-grained arrangement ends with lower test loss.
#
# **Here** we compare fine and coarse NFT (and FFT) with each seed, every arm branching from the
# seed's shared warm-up; the fine runs are the same runs as chapter 3's (same parameters,
# computed once). Arms are paired on the same test instances (three views, cluster bootstrap).

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

from zsg_lib.analysis import findings, parts, stats
from zsg_lib.pages import plots, sections
from zsg_lib.study import chapter_data, experiment as ex
from zsg_lib.study.checks import setup

P = setup(profile, "04_granularity", overrides, seeds)
ex.describe(P)

# %% [markdown]
# ## Test loss, fine vs coarse

# %%
scores = ex.run_many(P, P.arrangements("granularity"))
query = parts.query(scores)  # the instances the orders look at (all of them without a split)
plots.loss_curves(stats.mean_ci(query), title="Fine vs coarse arrangement (mean over seeds, 95% band)")

# %% [markdown]
# Early and late in the run, side by side (mean over the window, 95% CI over seeds):

# %%
early_w, late_w = P.judge.first_window, P.judge.last_window
both = pd.concat([
    stats.window_summary(query, early_w).assign(window=f"steps {early_w[0]}–{early_w[1]}"),
    stats.window_summary(query, late_w).assign(window=f"steps {late_w[0]}–{late_w[1]}"),
])
both.round(3)

# %%
plots.interval_points(stats.window_summary(query, late_w),
                      title=f"Mean test loss over steps {late_w[0]}–{late_w[1]} (95% CI)")

# %% [markdown]
# What each order trains on within a run: the coarse order takes whole tasks, nearest task
# first; the fine order picks instances from many tasks.

# %%
seed = P.seeds[0]
consumed = chapter_data.consumed(P)
coarse = ex.arrangement(P, "coarse-nft", seed).table.head(consumed)
coarse.groupby("task", sort=False).agg(first_position=("position", "min"), instances=("id", "size"),
                                        wsd=("score", "mean")).round(3)

# %%
fine = ex.arrangement(P, "nft", seed).table.head(consumed)
fine.groupby("task").agg(first_position=("position", "min"), instances=("id", "size"),
                         wsd=("score", "mean")).sort_values("first_position").round(3)

# %% [markdown]
# The verdict, judged on the test instances the orders were arranged toward (the paper's
# design) and, when the profile holds some of each test task's instances back from every
# arrangement (`split.query_per_task`), on those evaluation instances beside it:

# %%
found = findings.by_part(findings.granularity, P.judge, scores)
found

# %% [markdown]
# ### Paired on the same test instances

# %%
sections.paired_comparison(P, found)

# %%
findings.table([found])
