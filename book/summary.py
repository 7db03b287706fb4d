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
# agree — decided from the numbers, never written by hand. Comparisons of arrangements pair
# the arms on the same test instances after the shared warm-up, in three views (the paper's
# instance mean, a task-balanced mean, the loss relative to the branch point), each with a 95%
# cluster-bootstrap interval over test task × seed:
#
# - **agrees**: as claimed, and every interval excludes no difference;
# - **agrees in direction only**: every estimate points the claimed way, not every interval;
# - **does not agree**: the direction differs, or the intervals are too wide to say;
# - **opposite, significantly**: an interval lies on the other side of no difference;
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
from IPython.display import display

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
