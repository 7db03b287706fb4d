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
# # Summary: the paper's claims against this run
#
# Each row below is one finding of the paper, the numbers this run measured, and whether they
# agree — decided from the numbers (the means over seeds and paired t-tests over seeds at
# significance level `stats.alpha`), never written by hand:
#
# - **agrees**: the direction is as claimed and every paired test is significant;
# - **agrees in means only**: the direction is as claimed but not significant with this many
#   seeds;
# - **does not agree**: the direction differs;
# - **not measured**: the profile did not run what the claim needs.
#
# The runs are the chapters' runs, read back from their records.

# %% tags=["remove-cell"]
# Charts render offline: Vega is served by the site (or inlined in a notebook), never a CDN.
from zsg_lib.book.render import enable_offline_altair

enable_offline_altair()

# %% tags=["parameters"]
import os

profile = os.environ.get("ZSG_PROFILE", "cpu-demo")  # a profile in params/, or a YAML path
seeds = None  # e.g. [0, 1, 2]; None: the seeds of the profile
overrides = None  # any profile key, dotted, e.g. {"train.max_steps": 12}

# %%
import pandas as pd

from zsg_lib.analysis import findings, stats
from zsg_lib.book import analyses as an, experiment as ex, plots

P = ex.setup(profile, "summary", overrides, seeds)
found, scores = an.collect_findings(P)

# %%
with pd.option_context("display.max_colwidth", None):
    display(findings.table(found).style.hide(axis="index"))

# %% [markdown]
# ## Every arrangement at a glance
#
# Mean test loss over the first steps (95% CI over seeds), for every arrangement this run
# trained (TMA selects from the whole training pool; the others from the per-task sample).

# %%
window = P.judge.first_window
plots.interval_points(
    stats.window_summary(scores, window).sort_values("mean"),
    title=f"Mean test loss over steps {window[0]}–{window[1]}, every arrangement",
)

# %%
ex.describe(P)
