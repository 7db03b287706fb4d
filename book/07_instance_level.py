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
# # 7. Does similarity explain generalization, instance by instance?
#
# **The paper's central sentence**: zero-shot generalization during instruction tuning "is a
# form of similarity-based generalization between training and test data at the instance
# level". Its evidence is indirect: arrangements compared by mean loss (chapters 3–5). Here we
# test it directly. After the shared warm-up, the random-order runs are scored after **every
# step** for a stretch; for each test instance $j$ and step $t$,
# $\Delta loss_j(t) = loss_j(t) - loss_j(t-1)$. Because the batches are random, how similar a
# step's batch is to $j$ is chosen by no arrangement — a clean natural experiment. Three kinds
# of similarity between the batch and $j$ compete to predict $\Delta loss_j(t)$:
#
# - **embedding**: the max and mean cosine of their sentence embeddings (the paper's measure);
# - **gradient**: the max and mean cosine of their LoRA gradient features (LESS-style:
#   per-instance gradients at the branch point, randomly projected);
# - **label**: whether the batch holds an instance of $j$'s task family (demo) or category.
#
# For each: the Spearman correlation with $\Delta loss$, the slope of $\Delta loss$ per SD of
# the predictor with task and step fixed effects, and the partial $R^2$ over the others, each
# with a 95% cluster-bootstrap interval over test task × seed. The claim predicts negative
# correlations and slopes: the more similar the batch, the larger the fall.

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
from zsg_lib.pages import plots
from zsg_lib.study import chapter_data, experiment as ex, instance
from zsg_lib.study.checks import setup

P = setup(profile, "07_instance_level", overrides, seeds)
ex.describe(P)

# %% [markdown]
# ## Which similarity predicts a test instance's loss change?
#
# The test on the query instances (all test instances without a query split) and, where the
# profile holds evaluation instances back from every arrangement (`split.query_per_task`), the
# same test on them beside it; the chart and tables below are the query instances'.

# %%
frame = instance.predictor_frame(P)
found = chapter_data.instance_finding(frame)
table, query_frame = found.details, parts.query(frame)
found

# %%
plots.predictor_intervals(
    table, title=f"Predicting Δloss over {query_frame['step'].nunique()} steps × "
                 f"{query_frame['id'].nunique()} test instances × "
                 f"{query_frame['seed'].nunique()} seeds")

# %%
table.round(4)

# %% [markdown]
# Read the slopes against the size of a step's effect: one step of a batch of a few instances
# moves a test instance's loss by little, so the intervals are what says whether anything was
# detected. A kind *adds* something over the others when its slope in the joint model
# (`joint_slope`) has an interval that excludes 0; the max and the mean of one kind are
# strongly correlated, so their joint slopes can take opposite signs — read the kinds, not
# the two columns of one kind, in the joint model.
#
# Expect the gradient kind to do well: to first order, a step changes a test instance's loss
# by $-\eta\, g_j \cdot u_t$ (its gradient against the step's update), so gradient cosine is the
# local prediction itself, measured at the branch point. The paper's claim is about the
# *embedding* kind: whether the similarity a sentence encoder sees carries the same signal.
#
# ## Test task by test task
#
# A pooled correlation can be carried by one or two test tasks. The same slope within each
# test task (step fixed effects; the interval from a bootstrap over seed × step, because a
# task's instances share each step's batch), for the judged embedding predictor and the mean
# gradient cosine, coloured by the kind of relatives the task has among the training tasks.

# %%
by_task = instance.per_task_table(query_frame, chapter_data.relatives_kinds(P))
print(instance.per_task_sentence(by_task))
plots.task_slopes(by_task, title="Slope of the loss change per SD of similarity, per test task")

# %% [markdown]
# ## Ordering by gradient similarity against sentence embeddings
#
# `grad-nft` is NFT with the weighted similarity distance computed on the gradient features
# instead of the sentence embeddings (features from the shared warm-up, as LESS takes them
# from a short warm-up). Both start from the warm-up; paired on the same test instances.

# %%
scores = ex.run_many(P, P.arrangements("instance"))
plots.loss_curves(stats.mean_ci(parts.query(scores)),
                  title="Test loss: gradient-ordered vs embedding-ordered NFT")

# %%
order = findings.by_part(findings.gradient_order, P.judge, scores)  # both parts, side by side
order

# %%
order.details

# %% [markdown]
# ## When a near instance arrives: the seen-prefix distance
#
# The authors' own analysis: as training proceeds, the distance from the training instances
# seen so far (after the warm-up) to each test task — here the nearest pair (`min`, negative
# cosine; the table also holds the mean, the centroid and the authors' bigram KL) — drawn
# under that task's test loss, one column per task (one seed's NFT run). A sudden drop can be read against the
# moment a near instance arrived.

# %%
seed = P.seeds[0]
seen = instance.seen_distance(P, "nft", seed)
plots.seen_prefix(seen, "min", title=f"Test loss (top) over the seen-prefix distance (bottom), "
                                     f"NFT, seed {seed}")

# %%
findings.table([found, order])
