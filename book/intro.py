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
# # When does instruction tuning generalize?
#
# This book reruns, on a model and data you choose, the study of He, Ding, Qian et al.,
# *The Right Time Matters: Data Arrangement Affects Zero-Shot Generalization in Instruction
# Tuning* (arXiv 2406.11721). Its claim: zero-shot generalization to unseen tasks during
# instruction tuning is, instance by instance, **similarity-based generalization** between
# training and test data. Task labels are artificial; what matters is *when* the model meets
# training instances close to the test instances.
#
# | chapter | finding |
# |---|---|
# | 1. Early generalization | test loss and every metric move within the first checkpoints; loss is the steadiest metric |
# | 2. Permutations | under Cluster, a test task's loss drops suddenly when a similar task arrives |
# | 3. Similarity | nearest-first training (NFT) < random (RT) < farthest-first (FFT) in test loss |
# | 4. Granularity | ordering instances beats ordering tasks |
# | 5. TMA | test-centric multi-turn arrangement keeps lowering test loss; earlier rounds help more |
# | 6. Beyond the paper | OT vs WSD, nearest neighbours across tasks, closeness vs gain |
# | Summary | each claim next to this run's numbers, with the agreement decided from them |
#
# Every comparison of arrangements runs several seeds (each seed re-samples the data and
# re-initialises LoRA) and shows the mean with a 95% t-interval; the summary judges each
# claimed ordering with a paired t-test over seeds. Runs are recorded on disk and shared: a run
# with the same parameters is computed once for the whole book.
#
# ## The profile this book was built with
#
# All settings come from one YAML *profile* in `params/`. The default, `cpu-demo`, runs
# offline on a laptop-class CPU: the embedded SmolLM2-135M-Instruct with LoRA, on the embedded
# demo suite (125 small tasks in 18 families — CLDR names and formats, number words,
# arithmetic, string and list edits, classification — with 25 held-out test tasks, some with
# close relatives among the training tasks and some without). It is scaled down so that the
# whole book trains in about 20 minutes on 2 cores: short runs, a few dozen test instances.
# Its numbers show the *shape* of each finding on a small model, not the paper's magnitudes.

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
from zsg_lib.study import experiment as ex
from zsg_lib.study.checks import setup

P = setup(profile)
ex.describe(P).style.hide(axis="index")

# %% [markdown]
# ## Run it on your own model and data
#
# Write a profile — copy `params/cpu-demo.yaml` or `params/paper-gpu.yaml` — and change:
#
# ```yaml
# model: meta-llama/Llama-2-7b-hf     # a Hugging Face id or a local folder (null = embedded)
# precision: 4bit                     # fp32 | bf16 | 4bit (QLoRA: zsg[qlora]) | null (chosen)
# dataset:
#   kind: flan-mini                   # demo | flan-mini | niv2 | p3 | sharegpt | norobots
#   path: /data/flan_mini.json        # for niv2: the folder with tasks/ and splits/
# split: {test_tasks: null}           # the copied list names demo tasks; null: NIV2's own split, else seeded
# train: {method: qlora, max_steps: 500, eval_every: 10, batch_size: 4, grad_accum: 4}
# ```
#
# `precision: null` with `train.bf16_autocast: auto` (the default) trains in bf16 only where
# the device computes it natively (a GPU; a CPU with AVX512-BF16 or AMX) and in fp32 elsewhere:
# an AVX2-only CPU emulates bf16 matrix products about 100 times slower than fp32. The table
# above says which this machine used.
#
# Every key is checked when the profile loads: a misspelt key, a wrong type or a dataset path
# that does not exist stops the chapter before any work, naming the file and the key. Then:
#
# - **Explore**: open a chapter in JupyterLab (`.venv/bin/jupyter lab book/`) and set
#   `profile = "my-profile"` in its `parameters` cell, or export `ZSG_PROFILE=my-profile`.
# - **Batch**: `zsg batch 03_similarity --profile my-profile --set train.max_steps=48` runs a
#   chapter through papermill; `zsg batch params/sweeps/similarity-seeds.yaml` runs a sweep (a
#   grid over arrangements, seeds, datasets), recording each run and resuming where it stopped.
# - **Publish**: `zsg book --profile my-profile` executes every chapter and builds this site.
#
# Data without task labels (ShareGPT, NoRobots) runs chapters 1, 3, 5, 6 and 7 (each held-out
# conversation is its own cluster); the chapters that need tasks (permutations, granularity) say
# so before any work. Sections that need a test task's *relatives* among the training tasks use
# the demo's families, or on data that names task categories (NIV2) the training tasks of the
# test task's category; where the data has neither, the section says so and moves on.
