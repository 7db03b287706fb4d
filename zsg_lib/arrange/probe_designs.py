"""Which batches a probe takes (issue #28): for each target (a test task, or one test
instance), batches of the run's batch size drawn from the training pool by a *design*.

* ``nearest-embedding``: from the ``candidates`` pool instances whose sentence embeddings are
  most cosine-similar to the target (to a task: the mean cosine over its test instances);
* ``nearest-gradient``: the same with gradient features (chapter 7's, taken at the probed
  state);
* ``same-label``: from the target task's relatives (the demo's helpful relatives; on NIV2 the
  training tasks of its category), every instance of them a candidate;
* ``farthest-embedding``: from the ``candidates`` least similar by embedding;
* ``random``: from the whole pool. Random batches have no target (``target`` is ``None``):
  each is the control of every target, scored on every test instance anyway.

A design is a distribution, not one batch: each replicate is a seeded draw of ``batch_size``
of its candidates (4 of the nearest 16 by default), from a stream of its own per design ×
target (``np.random.default_rng([seed, crc32(design), crc32(target)])``), so adding a target
or a design leaves the other draws as they were. Pure functions over ids and NumPy arrays;
the same inputs and seed give the same batches.

>>> rng = np.random.default_rng(0)
>>> pool_emb, test_emb = rng.normal(size=(40, 8)), rng.normal(size=(4, 8))
>>> frame = design_batches([f"p{i}" for i in range(40)], ["a", "b"] * 20,
...                        ["x0", "x1", "x2", "x3"], ["s", "s", "u", "u"], batch_size=4,
...                        designs=("nearest-embedding", "random"), embeddings=(pool_emb, test_emb))
>>> frame.groupby("design")["target"].apply(lambda t: sorted(t.dropna().unique())).to_dict()
{'nearest-embedding': ['s', 'u'], 'random': []}
>>> len(frame), len(frame["ids"].iloc[0])
(12, 4)
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import ArrangementError
from ..similarity import check_embeddings, normalise_rows

DESIGNS = ("nearest-embedding", "nearest-gradient", "same-label", "random",
           "farthest-embedding")
#: What each design ranks by (``None``: it does not rank), and which end it takes.
RANKS = {"nearest-embedding": ("embedding", "top"), "nearest-gradient": ("gradient", "top"),
         "farthest-embedding": ("embedding", "bottom")}
BATCH_COLUMNS = ["probe", "design", "target", "target_task", "replicate", "ids",
                 "n_candidates", "similarity", "candidates_lo", "candidates_hi", "emb_sim",
                 "grad_sim", "label_share"]


def _unit(pair: tuple[np.ndarray, np.ndarray] | None, name: str, n_pool: int,
          n_test: int) -> tuple[np.ndarray, np.ndarray] | None:
    if pair is None:
        return None
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ArrangementError(f"{name}: expected a pair (pool rows, test rows)")
    pool, test = pair
    check_embeddings(pool, f"{name}[0]")
    check_embeddings(test, f"{name}[1]", dim=pool.shape[1])
    if pool.shape[0] != n_pool or test.shape[0] != n_test:
        raise ArrangementError(f"{name}: {pool.shape[0]} pool and {test.shape[0]} test rows "
                               f"for {n_pool} pool_ids and {n_test} test_ids")
    return (normalise_rows(pool, f"{name}[0]").astype(np.float64),
            normalise_rows(test, f"{name}[1]").astype(np.float64))


def _stream(seed: int, design: str, target: str | None) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(design.encode()),
                                  zlib.crc32((target or "").encode())])


def _positive(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ArrangementError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def design_batches(pool_ids: Sequence[str], pool_tasks: Sequence[str | None],
                   test_ids: Sequence[str], test_tasks: Sequence[str | None], batch_size: int,
                   *, designs: Iterable[str] = DESIGNS, targets: Iterable[str] | None = None,
                   target_kind: Literal["task", "instance"] = "task",
                   embeddings: tuple[np.ndarray, np.ndarray] | None = None,
                   gradients: tuple[np.ndarray, np.ndarray] | None = None,
                   relatives: Mapping[str, Iterable[str]] | None = None,
                   candidates: int = 16, replicates: int = 4,
                   random_replicates: int | None = None, seed: int = 0,
                   on_short: Literal["error", "skip"] = "error") -> pd.DataFrame:
    """One row per batch (:data:`BATCH_COLUMNS`): ``probe`` (row number), ``design``,
    ``target`` (``None`` for random), ``target_task``, ``replicate``, ``ids`` (the batch, a
    list of ``pool_ids``), ``n_candidates``, ``similarity`` (the batch's mean similarity to
    the target by the design's own measure) and the candidates' range of it
    (``candidates_lo``/``_hi``), and, by every measure given, the batch's mean cosine to the
    target (``emb_sim``, ``grad_sim``) and its share of the target task's relatives
    (``label_share``).

    ``pool_ids`` / ``pool_tasks``: the training pool (less the warm-up's instances: the
    caller's); ``test_ids`` / ``test_tasks``: the test set; ``targets``: test tasks
    (``target_kind="task"``, default every test task) or test instance ids (``"instance"``);
    ``embeddings`` / ``gradients``: ``(pool rows, test rows)``; ``relatives``: test task →
    its relatives among the training tasks; ``random_replicates``: random batches (default
    ``replicates``). A design short of inputs, a target that is not a test task or instance,
    and fewer candidates than ``batch_size`` are errors naming them before any draw
    (``on_short="skip"``: a design × target with too few candidates is left out instead).
    """
    pool_ids, test_ids = [str(i) for i in pool_ids], [str(i) for i in test_ids]
    pool_tasks, test_tasks = list(pool_tasks), list(test_tasks)
    if len(pool_tasks) != len(pool_ids) or len(test_tasks) != len(test_ids):
        raise ArrangementError(f"pool_tasks / test_tasks: {len(pool_tasks)} and "
                               f"{len(test_tasks)} for {len(pool_ids)} pool and "
                               f"{len(test_ids)} test ids")
    if len(set(pool_ids)) != len(pool_ids):
        raise ArrangementError("pool_ids: an id appears twice")
    batch_size, candidates = _positive(batch_size, "batch_size"), _positive(candidates,
                                                                            "candidates")
    replicates = _positive(replicates, "replicates")
    random_replicates = _positive(random_replicates or replicates, "random_replicates")
    designs = list(designs)
    unknown = [d for d in designs if d not in DESIGNS]
    if unknown:
        raise ArrangementError(f"designs: unknown {unknown[0]!r}; known: {', '.join(DESIGNS)}")
    if on_short not in ("error", "skip"):
        raise ArrangementError(f"on_short: expected 'error' or 'skip', got {on_short!r}")
    n_pool, n_test = len(pool_ids), len(test_ids)
    units = {"embedding": _unit(embeddings, "embeddings", n_pool, n_test),
             "gradient": _unit(gradients, "gradients", n_pool, n_test)}
    for d in designs:
        kind = RANKS.get(d, (None,))[0]
        if kind is not None and units[kind] is None:
            raise ArrangementError(f"design {d!r} needs {kind} vectors: pass "
                                   f"{'embeddings' if kind == 'embedding' else 'gradients'}="
                                   "(pool rows, test rows)")
    if "same-label" in designs and relatives is None:
        raise ArrangementError("design 'same-label' needs labels: pass relatives (test task → "
                               "its relatives among the training tasks: the demo's task table "
                               "or NIV2 categories); data without task labels has none")
    if any(RANKS.get(d, ("", ""))[0] for d in designs) and candidates > n_pool:
        raise ArrangementError(f"candidates: {candidates} is more than the pool's {n_pool} "
                               "instances")
    if candidates < batch_size:
        raise ArrangementError(f"candidates: {candidates} is fewer than batch_size "
                               f"{batch_size}: a batch could not be drawn")
    targets = _targets(targets, target_kind, test_ids, test_tasks)

    task_of_test = dict(zip(test_ids, test_tasks))
    pool_task_arr = np.asarray(pool_tasks, dtype=object)
    rows: list[dict] = []

    def add(design: str, target: str | None, cand: np.ndarray, sim: np.ndarray | None,
            target_rows: np.ndarray | None, target_task: str | None, n_draws: int) -> None:
        if len(cand) < batch_size:
            if on_short == "skip":
                return
            raise ArrangementError(f"design {design!r}, target {target!r}: {len(cand)} "
                                   f"candidate(s), fewer than batch_size {batch_size} (leave "
                                   "the target out, or on_short='skip')")
        rng = _stream(seed, design, target)
        for r in range(n_draws):
            picked = cand[rng.choice(len(cand), size=batch_size, replace=False)]
            row = {"design": design, "target": target, "target_task": target_task,
                   "replicate": r, "ids": [pool_ids[k] for k in picked],
                   "n_candidates": len(cand),
                   "similarity": float(sim[picked].mean()) if sim is not None else np.nan,
                   "candidates_lo": float(sim[cand].min()) if sim is not None else np.nan,
                   "candidates_hi": float(sim[cand].max()) if sim is not None else np.nan}
            for kind, col in (("embedding", "emb_sim"), ("gradient", "grad_sim")):
                u = units[kind]
                row[col] = (float((u[0][picked] @ u[1][target_rows].mean(axis=0)).mean())
                            if u is not None and target_rows is not None else np.nan)
            rel = _relatives_of(relatives, target_task)
            row["label_share"] = (float(np.isin(pool_task_arr[picked], list(rel)).mean())
                                  if rel is not None else np.nan)
            rows.append(row)

    for design in designs:
        if design == "random":
            add(design, None, np.arange(n_pool), None, None, None, random_replicates)
            continue
        for target in targets:
            target_task = target if target_kind == "task" else task_of_test[target]
            target_rows = (np.flatnonzero(np.asarray(test_tasks, dtype=object) == target)
                           if target_kind == "task" else np.array([test_ids.index(target)]))
            if design == "same-label":
                rel = _relatives_of(relatives, target_task) or set()
                cand = np.flatnonzero(np.isin(pool_task_arr, list(rel)))
                add(design, target, cand, None, target_rows, target_task, replicates)
                continue
            kind, end = RANKS[design]
            pool_u, test_u = units[kind]
            sim = pool_u @ test_u[target_rows].mean(axis=0)  # mean cosine to the target
            order = np.lexsort((np.arange(n_pool), -sim if end == "top" else sim))
            add(design, target, order[:candidates], sim, target_rows, target_task,
                replicates)
    frame = pd.DataFrame(rows, columns=BATCH_COLUMNS[1:])
    frame.insert(0, "probe", np.arange(len(frame)))
    return frame


def _relatives_of(relatives: Mapping[str, Iterable[str]] | None,
                  task: str | None) -> set[str] | None:
    if relatives is None or task is None:
        return None
    return set(relatives.get(task, ()))


def _targets(targets: Iterable[str] | None, kind: str, test_ids: list[str],
             test_tasks: list[str | None]) -> list[str]:
    if kind not in ("task", "instance"):
        raise ArrangementError(f"target_kind: expected 'task' or 'instance', got {kind!r}")
    if kind == "task":
        known = list(dict.fromkeys(t for t in test_tasks if t is not None))
        if not known:
            raise ArrangementError("targets: the test set has no tasks; use "
                                   "target_kind='instance'")
    else:
        known = test_ids
    if isinstance(targets, str):
        raise ArrangementError("targets: expected a list, got a string")
    chosen = list(known) if targets is None else [str(t) for t in targets]
    bad = [t for t in chosen if t not in set(known)]
    if bad:
        what = "test task" if kind == "task" else "test instance"
        shown = ", ".join(known[:10]) + (" …" if len(known) > 10 else "")
        raise ArrangementError(f"targets: {bad[0]!r} is not a {what} (test {what}s: {shown})")
    if not chosen:
        raise ArrangementError("targets: empty")
    return list(dict.fromkeys(chosen))
