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
# # 1. Generalization happens early
#
# **The paper's claim** (He et al., §1): during instruction tuning, the model's performance on
# *unseen* tasks moves within the first few checkpoints — test loss on NIV2 falls from about 4 to
# about 1 in the first 50–200 steps — and afterwards the curves are flat or noisy. Of the metrics
# (ROUGE-1, ROUGE-L, Exact-Match and loss), loss is the most stable, so the rest of the study
# uses test loss.
#
# **Here** we train the profile's baseline arrangement (a random shuffle of the training
# instances) once per seed, score every test instance before the first step and every few
# steps, and generate answers at a few steps to compute ROUGE and Exact-Match next to the loss.
# Every curve is the mean over seeds with its 95% t-interval.

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
from zsg_lib.analysis import findings, stats
from zsg_lib.pages import plots
from zsg_lib.study import experiment as ex
from zsg_lib.study.checks import setup

P = setup(profile, "01_early_generalization", overrides, seeds)
ex.describe(P)

# %% [markdown]
# ## Test loss over training
#
# Each seed samples its own training and test instances and initialises LoRA differently;
# runs already on disk (from an earlier build or another chapter) are read back, not retrained.

# %%
scores = ex.run_many(P, P.arrangements("early"), generate=True, branch=False)
loss_ci = stats.mean_ci(scores)
plots.loss_curves(loss_ci, title="Test loss on unseen tasks (mean over seeds, 95% band)")

# %%
found_early = findings.early(P.early_judge, scores)
found_early

# %% [markdown]
# ## How much of the early fall is the format?
#
# A response's loss is the mean over its tokens. Its first token and its end-of-response token
# carry the *format* (how an answer starts, and that it stops); the tokens between carry the
# *content*. Split that way, the mean test loss is three stacked parts: a fall that is mostly
# the red layers is the model learning the prompt format, not the tasks.

# %%
parts = stats.loss_parts(scores)
plots.loss_parts(parts.groupby(["step", "part"], as_index=False)["value"].mean(),
                 title="Mean test loss by part of the response (mean over seeds)")

# %%
shares = stats.fall_shares(parts)
print("Share of the step-0 → last-step fall in test loss (per seed): "
      + "; ".join(f"seed {r.seed}: first token {r._3:.0%}, end token {r._4:.0%}, "
                  f"content {r.content:.0%}" for r in shares.itertuples()))
shares.round(3)

# %% [markdown]
# ## Loss next to ROUGE-1, ROUGE-L and Exact-Match
#
# Generation metrics are only computed at a few steps (greedy decoding is the costly part of
# scoring). To compare their shapes, each metric's mean curve is rescaled to [0, 1] with *up =
# better* (loss is flipped); hover a point for the raw value.

# %%
metric_ci = stats.metrics_ci(scores)
plots.metric_comparison(metric_ci, title="Every metric, rescaled (mean over seeds, 95% band)")

# %% [markdown]
# How noisy is each metric across seeds, relative to how far it moves? The paper's argument for
# loss is that it is the steadiest signal; the table measures that for this run.

# %%
found_stable = findings.steadiest_metric(P.early_judge, scores)
found_stable.details

# %%
found_stable
