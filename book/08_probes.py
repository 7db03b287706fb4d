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
# # 8. Does a similar step cause the fall?
#
# Chapter 7 tested the paper's central sentence by **observation**: along a random order, how
# similar each step's batch happened to be to a test instance, against how much that
# instance's loss fell. Observation leaves confounds — which batches came when, how hard an
# instance is, the step itself. Here we test it by **experiment**.
#
# A **probe** starts from one saved training state: each seed's shared warm-up, the state
# every comparison of the book branches from (its weights, optimizer moments, schedule
# position and random generator). It takes one optimizer step on a batch *we choose*, with
# the runs' own step code, scores the test set with the runs' own scoring pass, then restores
# the state bit for bit and takes the next batch. Same state, same test instances: only the
# batch differs, so the difference in the test loss is the batch's doing.
#
# For each **target** (a test task) a *design* chooses the batch from the seed's training
# sample (the warm-up's instances left out):
#
# - **nearest-gradient**: drawn from the training instances whose LoRA gradient features at
#   the warm-up state are nearest the target's (chapter 7's features);
# - **nearest-embedding**: the same by sentence embeddings (the paper's similarity);
# - **same-label**: drawn from the target's relatives (the demo's helpful tasks; on NIV2 its
#   category's training tasks);
# - **farthest-embedding**: drawn from the least similar by embedding;
# - **random**: drawn from the whole sample; random batches have no target and serve as the
#   control of every target.
#
# A design's probe is read on its **target**'s test instances and on the **others** (the
# other test tasks' instances), each against the random batches' Δ loss on the same
# instances, and on their **difference**: does a step help *its* target more than the rest?
# Intervals are 95% cluster-bootstrap intervals over target task × seed. The claim predicts
# the nearest designs below 0 on the target and on the difference.

# %% tags=["remove-cell"]
# Charts render offline (Vega is served by the site or inlined, never a CDN); tables read plainly.
from zsg_lib.pages.display import enable_book_display

enable_book_display()

# %% tags=["parameters"]
import os

profile = os.environ.get("ZSG_PROFILE", "cpu-demo")  # a profile in params/, or a YAML path
seeds = None  # e.g. [0, 1, 2]; None: the seeds of the profile
overrides = None  # any profile key, dotted, e.g. {"probes.random": 8}

# %%
from zsg_lib.analysis import findings
from zsg_lib.pages import plots, probe_plots
from zsg_lib.study import experiment as ex, probes
from zsg_lib.study.checks import setup

P = setup(profile, "08_probes", overrides, seeds)
ex.describe(P)

# %% [markdown]
# ## The probes
#
# Per seed: the probes (each design × target × replicate, and the random batches), how many
# were computed in this execution (0: read back from their records), how many test instances
# a probe scored, and a probe's median seconds. A design's probe scores its target's test
# instances and a seeded sample of each other test task's (`probes.others_per_task`: the
# same sample for every probe of a seed), which keeps the *others* measure defined at a
# fraction of the scoring pass; a random probe scores them all.

# %%
results = probes.probe_runs(P)
probes.cost_table(results)

# %% [markdown]
# ## What a chosen batch does to its target
#
# Read the designs for what each can show. To first order one step changes a test
# instance's loss by the inner product of its gradient with the step
# ($\Delta\ell_x \approx \nabla\ell_x \cdot \Delta\theta$), and **nearest-gradient** picks
# the batches whose LoRA gradients point most along the target's: a fall there is what
# gradient descent predicts for a batch so chosen. It checks the features (chapter 7's,
# sketched) and sets the size of the effect a batch can have in one step; it does not say that
# *similar-looking* data helps. That is what **nearest-embedding** (the paper's similarity) and
# **same-label** test, with **farthest-embedding** as their mirror.

# %%
table = probes.design_table(results)
found = probes.finding(table)
found

# %%
probe_plots.design_contrasts(
    table, title=f"One step from the warm-up state: Δ test loss, design − random "
                 f"({results.frame['seed'].nunique()} seeds)")

# %% [markdown]
# The levels the contrasts subtract: each design's own mean Δ test loss after its step, and
# random's on the same instances. A step from the warm-up state moves every test instance
# (the format is still being learnt); the question is how much *more* a design moves its
# target.

# %%
probe_plots.design_levels(table, title="Mean Δ test loss after one step, design and random")

# %%
table.round(4)

# %% [markdown]
# ## Dose-response inside the random batches
#
# The random batches differ by chance in how similar they are to each test instance. Inside
# them: each test instance's Δ loss against the batch's embedding, gradient and label
# similarity to it, read by chapter 7's test (Spearman, slope per SD with task and *probe*
# fixed effects, partial $R^2$; intervals over test task × seed). Negative: the more similar
# the batch, the larger the fall.

# %%
dose = probes.dose_response(P, results)
plots.predictor_intervals(dose, title="Random probes: Δ loss against the batch's similarity")

# %%
dose.round(4)

# %% [markdown]
# ## The experiment beside the observation
#
# Does the experiment rank the similarities as chapter 7's observation does? The slope of
# Δ loss per SD of each similarity, by the random probes here and along chapter 7's random
# order (rank 1: the largest fall per SD).

# %%
ranks, sentence = probes.ranking(P, dose)
print(sentence)

# %%
probe_plots.rankings(ranks, title="Slope per SD: experiment and observation") \
    if ranks is not None else None

# %%
# the ranks and slopes; their intervals are on the chart above
ranks.drop(columns=[c for c in ranks if "_lo_" in c or "_hi_" in c]).round(4) \
    if ranks is not None else None

# %% [markdown]
# ## The verdict

# %%
findings.table([found])
