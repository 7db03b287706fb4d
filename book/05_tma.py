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
# # 5. Test-centric Multi-turn Arrangement (TMA)
#
# **The paper's method** (§5): select training data round by round, from the test set's point
# of view. In each round every test instance picks its nearest remaining training instance
# (two test instances picking the same one take it once); the picks leave the pool; rounds
# repeat until a budget is spent. The training order is round 1, then round 2, ...
#
# Five settings: **TMA-NFT** (rounds of nearest picks, in order), **TMA-FFT** (rounds of
# farthest picks), **TMA-RT** (the nearest selection shuffled), **max-min** (farthest half
# first, then the nearest half in reverse round order: far → near) and **min-max** (near →
# far). Unlike chapters 3–4, TMA selects from *every* instance of the training tasks, not from
# the per-task sample.
#
# **The paper's claims**: TMA-NFT keeps lowering test loss where the others flatten, and in a
# *turn-window* ablation (training only on rounds $[i, i+k)$), earlier windows give lower test
# loss.
#
# **Beyond the paper** (issue #29): TMA fixes its whole order before training. An *online*
# arrangement (`online-nft`, where `chapters.tma` lists it) picks while the run trains: at
# each scoring point, the next stretch goes to the pool instances nearest the query instances
# whose loss has moved least since the branch point. It is compared below with TMA-NFT of the
# same budget and with random order.

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
from zsg_lib.analysis import findings, parts, stats
from zsg_lib.pages import plots, sections
from zsg_lib.study import experiment as ex
from zsg_lib.study.checks import setup

P = setup(profile, "05_tma", overrides, seeds)
ex.describe(P)

# %% [markdown]
# ## How each setting walks through the rounds
#
# One seed: the TMA round of the instance at each position of the training order (what a run
# consumes).

# %%
seed = P.seeds[0]
import pandas as pd

from zsg_lib.arrange import ARRANGEMENTS

fixed = [name for name in P.arrangements("tma") if not ARRANGEMENTS[name].online]
tables = pd.concat([
    ex.arrangement(P, name, seed).table.assign(setting=name) for name in fixed
])
plots.tma_rounds(tables, title=f"TMA round at each position (seed {seed}, budget {P.tma.budget})")

# %% [markdown]
# ## Test loss under each setting

# %%
scores = ex.run_many(P, P.arrangements("tma"))
query = parts.query(scores)  # the instances the settings look at (all of them without a split)
plots.loss_curves(stats.mean_ci(query), title="Test loss by TMA setting (mean over seeds, 95% band)")

# %%
late = P.judge.last_window
plots.interval_points(stats.window_summary(query, late),
                      title=f"Mean test loss over steps {late[0]}–{late[1]} (95% CI over seeds)")

# %%
found = findings.by_part(findings.tma, P.judge, scores)  # query and evaluation instances
found

# %% [markdown]
# ### Paired on the same test instances

# %%
sections.paired_comparison(P, found)

# %% [markdown]
# ## An order that follows the model
#
# The online arrangement against TMA-NFT (the same budget, its order fixed before training)
# and against random order, on the same test instances and with the same statistics as above;
# then which query tasks each stretch of its runs served. Its picks read the query instances
# only (their losses and embeddings), as TMA's rounds do; with `split.query_per_task` unset
# those are the whole test set, the instances the runs are judged on.

# %%
sections.online_comparison(P, scores)

# %% [markdown]
# ## Turn windows
#
# Each run trains only on the instances of rounds $[i, i + k)$ (nearest picks, $k$ =
# `tma.window_size`), for the window starts in `tma.window_starts`.

# %%
windows = ex.run_windows(P)
plots.loss_curves(stats.mean_ci(parts.query(windows)), title="Test loss when training on one window of TMA rounds")

# %%
# every window run is cut to the smallest window's instance count, so windows compare at
# equal lengths; the trend is fitted per test task × seed, keeping each seed's runs paired
after = parts.query(windows[windows["step"] > P.judge.branch_step])
win_summary = stats.window_summary(after, (P.judge.branch_step + 1, P.judge.max_steps),
                                   by=("window_start",))
plots.interval_points(win_summary, x="window_start", x_title="first round of the window",
                      title="Mean test loss by window (95% CI over seeds)")

# %%
found_windows = findings.by_part(findings.windows, P.judge, windows)
found_windows
