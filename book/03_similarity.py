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
# # 3. Similarity: nearest first, farthest first
#
# **The paper's claim** (§3): what matters is how close the training instances a model meets
# are to the test instances. With sentence embeddings (all-MiniLM-L6-v2 of an instance's turns)
# and distance $d(i, j) = -\cos(e_i, e_j)$ between training instance $i$ and test instance $j$:
#
# - average distance $AD_i = \operatorname{mean}_j d(i, j)$, minimum distance
#   $MD_i = \min_j d(i, j)$;
# - weighted similarity distance $WSD_i = w_{avg} AD_i + w_{min} MD_i$ with $w_{min} = 1$ and
#   $w_{avg} = \overline{MD} / \overline{AD}$.
#
# **NFT** trains in order of WSD ascending (nearest first), **FFT** descending, **RT** at
# random. The paper finds NFT reaches lower test loss sooner and stays lower, FFT is worst and
# RT in between: **NFT < RT < FFT**.
#
# **Here** every arm starts from the same shared warm-up of its seed (so the arms differ only
# in the data that follows) and we test the ordering on the first steps after it: arms paired
# on the same test instances, in three views, with 95% cluster-bootstrap intervals over test
# task × seed (a seed's instances of one task share a model and a task, so they are not
# independent observations; clusters are).

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
from zsg_lib.study import chapter_data, experiment as ex
from zsg_lib.study.checks import setup

P = setup(profile, "03_similarity", overrides, seeds)
ex.describe(P)

# %% [markdown]
# ## Test loss under NFT, FFT and RT

# %%
scores = ex.run_many(P, P.arrangements("similarity"))
query = parts.query(scores)  # the instances the orders look at (all of them without a split)
plots.loss_curves(stats.mean_ci(query), title="Test loss by similarity order (mean over seeds, 95% band)")

# %%
window = P.judge.first_window
plots.interval_points(
    stats.window_summary(query, window),
    title=f"Mean test loss over steps {window[0]}–{window[1]} (95% CI over seeds)",
)

# %% [markdown]
# The verdict, judged on the test instances the orders were arranged toward (the paper's
# design) and, when the profile holds some of each test task's instances back from every
# arrangement (`split.query_per_task`), on those evaluation instances beside it:

# %%
found = findings.by_part(findings.similarity, P.judge, scores)
found

# %% [markdown]
# ### Paired on the same test instances

# %%
sections.paired_comparison(P, found)

# %% [markdown]
# ## What each order fed each test task
#
# A per-task difference is read against what the arms actually trained on: how many of the
# instances of the compared stretch (after the warm-up, to the end of the first window) come
# from each test task's *helpful* relatives. On the demo suite those are known (same kind of
# mapping, same output language or format; `DemoData.families`); on data that names task
# categories (NIV2's `Categories`) a test task's relatives are the training tasks of its
# category; data that names neither has none to count, and the page says so. An arm cannot
# help a test task it never feeds. NFT weighs every test instance in one distance (WSD), so
# its first instances can all serve a few test tasks and none of the others.

# %%
sections.relatives_fed(P, found)

# %% [markdown]
# ## The distances behind the orders
#
# AD, MD and WSD of every training instance (one seed's sample) to the test set. MD separates
# instances that have a close test neighbour from the rest; AD varies less; WSD mixes the two on
# the same scale.

# %%
seed = P.seeds[0]
dist = chapter_data.distances(P, seed)
plots.distance_histograms(dist, title=f"Distances of training instances to the test set (seed {seed})")

# %% [markdown]
# The training tasks nearest to, and farthest from, the test set by mean WSD:

# %%
by_task = dist.groupby("task")[["ad", "md", "wsd"]].mean().sort_values("wsd")
by_task.head(8).round(3)

# %%
by_task.tail(5).round(3)

# %% [markdown]
# ## A map of the training and test instances
#
# A UMAP projection of the embeddings (seeded). Training instances are coloured by their
# position in the NFT order — grey when a run never reaches them — and test instances are black
# crosses; hover a cross for its nearest training instances.

# %%
plots.embedding_map(chapter_data.embedding_map(P, "nft", seed), color_title="position in NFT order",
                    title=f"Train and test instances (seed {seed})")

# %%
findings.table([found])
