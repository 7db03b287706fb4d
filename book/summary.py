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
# One line per contrast a claim is judged on: this run's estimate (the dot) and its 95%
# interval, coloured by the verdict. The dark rule is "no difference"; the shaded side of it is
# the side the paper claims. The grey band around the rule is the smallest difference this run
# could have detected, its size written at the right: an interval that crosses the rule inside
# a narrow band says "no difference of that size", one inside a wide band says "too little
# power to tell". Each verdict is computed from the numbers, never written by hand.
#
# Under a query split (`split.query_per_task`) every test-centric claim is judged twice: on the
# query instances the arrangements looked at (the paper's design, the filled mark) and on
# evaluation instances of the same test tasks that no arrangement saw (the open mark under it).

# %% tags=["remove-cell"]
# Charts render offline (Vega is served by the site or inlined, never a CDN); tables read plainly.
from zsg_lib.pages.display import enable_book_display

enable_book_display()

# %% tags=["parameters", "hide-input"]
import os

profile = os.environ.get("ZSG_PROFILE", "cpu-demo")  # a profile in params/, or a YAML path
seeds = None  # e.g. [0, 1, 2]; None: the seeds of the profile
overrides = None  # any profile key, dotted, e.g. {"train.max_steps": 12}

# %% tags=["hide-input"]
from zsg_lib.analysis import findings, parts, stats
from zsg_lib.pages import overview, plots
from zsg_lib.study import chapter_data, experiment as ex
from zsg_lib.study.checks import setup

P = setup(profile, "summary", overrides, seeds)
found, scores = chapter_data.collect_findings(P)
plots.forest(overview.contrasts(found))

# %% [markdown]
# ## Finding by finding
#
# Each finding links to its chapter, where the card holds the full numbers and the charts
# behind them.

# %% tags=["hide-input"]
overview.finding_rows(found)

# %% [markdown]
# **How to read a verdict.** Comparisons of arrangements pair the arms on the same test
# instances after the shared warm-up, in three views (the paper's instance mean, drawn above; a
# task-balanced mean; the loss relative to the branch point), each with a 95% cluster-bootstrap
# interval over test task × seed:
#
# - **agrees**: as claimed, and every interval excludes no difference;
# - **agrees in direction only**: every estimate points the claimed way, not every interval;
# - **does not agree**: the direction differs, or the intervals are too wide to say;
# - **opposite, significantly**: an interval lies on the other side of no difference;
# - **not measured**: the profile did not run what the claim needs.
#
# **The smallest detectable difference.** For a 95% interval of half-width $h$, a true
# difference of $(1.96 + 0.84)/1.96 \cdot h \approx 1.43\,h$ would be found with 80% power
# (normal approximation: the estimate taken as normal with standard error $h / 1.96$; with few
# seeds a $t$-interval is wider, so this overstates what the run would miss).
#
# ## The numbers in full
#
# Every view, interval and test behind each verdict (open to read); the runs are the
# chapters' runs, read back from their records.

# %% tags=["hide-output"]
findings.table(found)

# %% [markdown]
# ## Every arrangement at a glance
#
# Mean test loss over the first steps (95% CI over seeds), for every arrangement this run
# trained (TMA selects from the whole training pool; the others from the per-task sample).

# %%
window = P.judge.first_window
plots.interval_points(
    stats.window_summary(parts.query(scores), window).sort_values("mean"),
    title=f"Mean test loss over steps {window[0]}–{window[1]}, every arrangement",
)

# %%
ex.describe(P)
