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
# # 6. Beyond the paper
#
# Three cheap checks of the paper's core claim — *zero-shot generalization is similarity-based
# generalization between instances; task labels are artificial* — that need no extra training:
#
# 1. **OT vs WSD.** The paper also tried an optimal-transport (Wasserstein) distance. Do the
#    two measures order the training data alike?
# 2. **Nearest neighbours cross task boundaries.** Are a test instance's nearest training
#    instances from related tasks — and where do test tasks without any relative land?
# 3. **Closeness predicts the gain.** In the random-order runs, does a test instance whose
#    nearest *seen* training instance is closer lose more loss?

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
from zsg_lib.analysis import beyond, stats
from zsg_lib.pages import plots, sections
from zsg_lib.study import chapter_data, experiment as ex
from zsg_lib.study.checks import setup

P = setup(profile, "06_beyond", overrides, seeds)
seed = P.seeds[0]
consumed = chapter_data.consumed(P)

# %% [markdown]
# ## 1. Optimal transport vs WSD
#
# Each training instance's share of the OT cost between the training and the test set, against
# its WSD (one seed's sample). If the two agree, NFT by either measure trains on the same
# instances first.

# %%
dist = chapter_data.ot_vs_wsd(P, seed)
agreement = beyond.rank_agreement(dist, consumed)
print(f"Spearman ρ(WSD, OT) = {agreement['spearman_rho']:+.2f} (p = {agreement['p']:.2g}); "
      f"of the {agreement['prefix']} nearest instances by WSD, "
      f"{agreement['prefix_overlap']:.0%} are also among the {agreement['prefix']} nearest by OT.")
plots.scatter(dist, "wsd", "ot", tooltip=["task", "wsd", "ot"], x_title="WSD",
              y_title="OT cost share", title="Training instances: WSD vs optimal-transport cost")

# %% [markdown]
# ## 2. Where do test instances find their nearest training instances?
#
# For each test instance, its 5 nearest instances among *all* training-task instances. On the
# demo suite, related tasks (same family, language pair or locale) are known; on data that
# names task categories (NIV2's `Categories`), a test task's relatives are the training tasks
# of its category and its "family" is the category; elsewhere only the nearest tasks show.

# %%
sections.nearest_relatives(P, seed)

# %% [markdown]
# ## 3. Does closeness to the seen data predict the gain?
#
# Random-order runs (the baseline of chapter 2, read back from the run records): for each test
# instance, its minimum distance to the training instances the run consumed, against the fall of
# its loss from step 0 to the end. The claim predicts a negative correlation (closer → larger
# fall).

# %%
scores = ex.run_many(P, ["random"])
gain = chapter_data.similarity_vs_gain(P, scores)
rho, p = stats.trend_test(gain["min_distance_seen"], gain["loss_fall"])
print(f"Spearman ρ(min distance to seen data, loss fall) = {rho:+.2f} (p = {p:.2g}, "
      f"{len(gain)} test instances × seeds; instances within a run are not independent, so "
      "read p as descriptive)")
plots.scatter(gain, "min_distance_seen", "loss_fall", color="task",
              tooltip=["task", "seed", "min_distance_seen", "loss_fall"],
              x_title="min distance to seen training instances", y_title="loss fall",
              title="Closeness to the seen data vs fall in test loss")
