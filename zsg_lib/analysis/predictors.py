"""The core claim tested instance by instance (issue #13): which similarity between what a run
just trained on and a test instance predicts that instance's loss drop — sentence
embeddings, gradients, or the task label? This module builds the frame the test reads.

1. :func:`loss_deltas`: per run (seed × arrangement) and test instance, the change of loss
   between consecutive scored steps, ``dloss = loss(step) − loss(prev_step)`` (negative: it
   fell).
2. :func:`batch_predictors`: the training instances consumed between those steps (steps
   ``prev_step + 1 … step`` of the run's log) against each test instance: the max and mean
   cosine of their sentence embeddings (:func:`embedding_similarity`) and of their gradient
   features (:func:`gradient_similarity`), and whether one of them has the instance's label
   (:func:`label_similarity`).
3. The test itself is :func:`~zsg_lib.analysis.predictor_stats.predictor_test`: per
   predictor, the Spearman correlation with ``dloss``, the slope of ``dloss`` on the
   standardised predictor with task and step fixed effects, and the predictor's incremental
   value over the others (partial R²), each with a 95% cluster-bootstrap interval over test
   task × seed.

>>> s = pd.DataFrame({"seed": 0, "arrangement": "a", "task": "t", "id": "j",
...                   "step": [0, 2], "loss": [2.0, 1.5]})
>>> log = pd.DataFrame({"seed": 0, "arrangement": "a", "step": [1, 2],
...                     "instance_ids": [["u"], ["v"]]})
>>> frame = batch_predictors(loss_deltas(s), log, ["u", "v"], ["j"],
...                          labels=(["qa", "mt"], ["mt"]))
>>> frame[["prev_step", "step", "dloss", "label"]].to_numpy().tolist()
[[0, 2, -0.5, True]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..similarity import check_embeddings, normalise_rows

RUN = ["seed", "arrangement"]
DELTA_COLUMNS = ["seed", "arrangement", "task", "id", "step", "prev_step", "dloss"]


def _need(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; it has {list(frame.columns)}")


# --------------------------------------------------------------------------- loss changes

def loss_deltas(scores: pd.DataFrame) -> pd.DataFrame:
    """Per run (``seed``, ``arrangement``) × test instance: the loss change from each scored
    step to the next one, ``dloss = loss(step) − loss(prev_step)``.

    Rows with a NaN loss (instances without response tokens) are dropped first, so
    ``prev_step`` is the previous step at which that instance had a loss.

    >>> s = pd.DataFrame({"seed": 0, "arrangement": "nft", "task": "t", "id": "j",
    ...                   "step": [0, 10, 20], "loss": [2.0, 1.5, 1.4]})
    >>> loss_deltas(s)[["prev_step", "step", "dloss"]].round(2).to_numpy().tolist()
    [[0.0, 10.0, -0.5], [10.0, 20.0, -0.1]]
    """
    _need(scores, ["seed", "arrangement", "step", "id", "task", "loss"], "scores")
    keys = [*RUN, "id", "step"]
    s = scores.dropna(subset=["loss"])
    dup = s.duplicated(keys)
    if dup.any():
        row = s.loc[dup, keys].iloc[0].to_dict()
        raise ValueError(f"scores: two rows for {row}; one loss per run, instance and step")
    s = s.sort_values(keys)
    grouped = s.groupby([*RUN, "id"], sort=False, observed=True)
    out = s.assign(prev_step=grouped["step"].shift(), dloss=s["loss"] - grouped["loss"].shift())
    out = out.dropna(subset=["prev_step"])
    out["prev_step"] = out["prev_step"].astype(np.int64)
    return out[DELTA_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------- similarities

def _max_mean_cosine(batch: np.ndarray, test: np.ndarray, batch_name: str,
                     test_name: str) -> tuple[np.ndarray, np.ndarray]:
    check_embeddings(batch, batch_name)
    check_embeddings(test, test_name, dim=batch.shape[1])
    sim = (normalise_rows(test, test_name).astype(np.float64)
           @ normalise_rows(batch, batch_name).astype(np.float64).T)
    return sim.max(axis=1), sim.mean(axis=1)


def embedding_similarity(batch_emb: np.ndarray,
                         test_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per test instance: the max and the mean cosine similarity of its sentence embedding to
    those of a batch (``batch_emb`` rows).

    >>> mx, mean = embedding_similarity(np.array([[1.0, 0.0], [0.0, 1.0]]),
    ...                                 np.array([[1.0, 0.0], [1.0, 1.0]]))
    >>> mx.round(3).tolist(), mean.round(3).tolist()
    ([1.0, 0.707], [0.5, 0.707])
    """
    return _max_mean_cosine(batch_emb, test_emb, "batch_emb", "test_emb")


def gradient_similarity(batch_feat: np.ndarray,
                        test_feat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per test instance: the max and the mean cosine similarity of its gradient features
    (e.g. a random projection of its loss gradient) to those of a batch's instances.

    >>> mx, mean = gradient_similarity(np.array([[1.0, 1.0], [-1.0, 1.0]]),
    ...                                np.array([[0.0, 2.0]]))
    >>> mx.round(3).tolist(), mean.round(3).tolist()
    ([0.707], [0.707])
    """
    return _max_mean_cosine(batch_feat, test_feat, "batch_feat", "test_feat")


def _has_label(label: object) -> bool:
    return label is not None and not (isinstance(label, float) and np.isnan(label)) \
        and label != ""


def label_similarity(batch_labels: Sequence[object],
                     test_labels: Sequence[object]) -> np.ndarray:
    """Per test instance: whether the batch holds an instance with its label (task family for
    the demo data, category for NIV2). Unlabelled batch instances match nothing; an
    unlabelled test instance is an error.

    >>> label_similarity(["qa", "sum", None], ["qa", "mt"]).tolist()
    [True, False]
    """
    present = {lab for lab in batch_labels if _has_label(lab)}
    for j, lab in enumerate(test_labels):
        if not _has_label(lab):
            raise ValueError(f"test_labels: test instance {j} has no label ({lab!r})")
    return np.array([lab in present for lab in test_labels], dtype=bool)


# --------------------------------------------------------------------------- per delta row

def _index(ids: Sequence[str], name: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, x in enumerate(ids):
        if x in index:
            raise ValueError(f"{name}: id {x!r} appears twice (rows {index[x]} and {i})")
        index[x] = i
    return index


def _pair(value: object, name: str, n_train: int, n_test: int) -> tuple | None:
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name}: expected a pair (train, test), got {type(value).__name__}")
    train, test = value
    if len(train) != n_train or len(test) != n_test:
        raise ValueError(f"{name}: {len(train)} training and {len(test)} test rows for "
                         f"{n_train} train_ids and {n_test} test_ids")
    return train, test


def _run_batches(log: pd.DataFrame, train_index: dict[str, int]) -> dict:
    """``{(seed, arrangement): {step: training row indices}}`` from the log."""
    _need(log, [*RUN, "step", "instance_ids"], "log")
    runs: dict = {}
    for seed, arm, step, ids in log[[*RUN, "step", "instance_ids"]].itertuples(index=False):
        rows = []
        for i in ids:
            if i not in train_index:
                raise ValueError(f"log: training id {i!r} (seed {seed}, arrangement {arm!r}, "
                                 f"step {step}) is not in train_ids")
            rows.append(train_index[i])
        runs.setdefault((seed, arm), {})[int(step)] = np.asarray(rows, dtype=np.int64)
    return runs


def batch_predictors(deltas: pd.DataFrame, log: pd.DataFrame, train_ids: Sequence[str],
                     test_ids: Sequence[str],
                     embedding: tuple[np.ndarray, np.ndarray] | None = None,
                     gradient: tuple[np.ndarray, np.ndarray] | None = None,
                     labels: tuple[Sequence[object], Sequence[object]] | None = None,
                     ) -> pd.DataFrame:
    """``deltas`` (from :func:`loss_deltas`) with the similarity of each row's test instance
    to the training instances its run consumed in steps ``prev_step + 1 … step``.

    ``log`` has one row per run × optimizer step (``seed``, ``arrangement``, ``step``,
    ``instance_ids``); ``train_ids`` / ``test_ids`` name the rows of the arrays in each pair:
    ``embedding = (train_emb, test_emb)`` adds ``emb_max`` / ``emb_mean``, ``gradient =
    (train_feat, test_feat)`` adds ``grad_max`` / ``grad_mean``, ``labels = (train_labels,
    test_labels)`` adds ``label`` (bool). One similarity block per run × scored step.

    >>> deltas = pd.DataFrame({"seed": 0, "arrangement": "a", "task": "t", "id": ["j", "k"],
    ...                        "step": 2, "prev_step": 0, "dloss": [-0.3, -0.1]})
    >>> log = pd.DataFrame({"seed": 0, "arrangement": "a", "step": [1, 2],
    ...                     "instance_ids": [["u"], ["v"]]})
    >>> emb = (np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [1.0, 1.0]]))
    >>> out = batch_predictors(deltas, log, ["u", "v"], ["j", "k"], embedding=emb,
    ...                        labels=(["qa", "mt"], ["qa", "sum"]))
    >>> out[["emb_max", "emb_mean", "label"]].round(3).to_numpy().tolist()
    [[1.0, 0.5, True], [0.707, 0.707, False]]
    """
    if embedding is None and gradient is None and labels is None:
        raise ValueError("batch_predictors: pass at least one of embedding, gradient, labels")
    _need(deltas, [*RUN, "id", "step", "prev_step"], "deltas")
    train_index, test_index = _index(train_ids, "train_ids"), _index(test_ids, "test_ids")
    n_train, n_test = len(train_index), len(test_index)
    embedding = _pair(embedding, "embedding", n_train, n_test)
    gradient = _pair(gradient, "gradient", n_train, n_test)
    labels = _pair(labels, "labels", n_train, n_test)
    # normalise once; each block is then an indexed product
    unit = {}
    for kind, pair, names in (("emb", embedding, ("train_emb", "test_emb")),
                              ("grad", gradient, ("train_feat", "test_feat"))):
        if pair is not None:
            check_embeddings(pair[0], f"{kind}: {names[0]}")
            check_embeddings(pair[1], f"{kind}: {names[1]}", dim=pair[0].shape[1])
            unit[kind] = (normalise_rows(pair[0], names[0]).astype(np.float64),
                          normalise_rows(pair[1], names[1]).astype(np.float64))
    if labels is not None:
        train_labels = np.asarray(list(labels[0]), dtype=object)
        test_labels = list(labels[1])
        for x, lab in zip(test_ids, test_labels):
            if not _has_label(lab):
                raise ValueError(f"labels: test instance {x!r} has no label ({lab!r})")
    rows_of = []
    for x in deltas["id"]:
        if x not in test_index:
            raise ValueError(f"deltas: test instance {x!r} is not in test_ids")
        rows_of.append(test_index[x])
    rows_of = np.asarray(rows_of, dtype=np.int64)
    runs = _run_batches(log, train_index)

    out = deltas.copy()
    cols = {f"{k}_{s}": np.full(len(out), np.nan) for k in unit for s in ("max", "mean")}
    if labels is not None:
        cols["label"] = np.zeros(len(out), dtype=bool)
    keys = [*RUN, "prev_step", "step"]
    for (seed, arm, prev, step), where in out.groupby(keys, sort=False).indices.items():
        run = runs.get((seed, arm))
        if run is None:
            raise ValueError(f"log: no rows for the run seed {seed}, arrangement {arm!r}")
        absent = [s for s in range(int(prev) + 1, int(step) + 1) if s not in run]
        if absent:
            raise ValueError(f"log: the run seed {seed}, arrangement {arm!r} has no step(s) "
                             f"{absent[:5]} between scored steps {prev} and {step}")
        batch = np.concatenate([run[s] for s in range(int(prev) + 1, int(step) + 1)])
        test_rows = rows_of[where]
        if len(batch) == 0:
            continue  # nothing consumed: similarities undefined (NaN), no label match
        for kind, (tr, te) in unit.items():
            sim = te[test_rows] @ tr[batch].T
            cols[f"{kind}_max"][where] = sim.max(axis=1)
            cols[f"{kind}_mean"][where] = sim.mean(axis=1)
        if labels is not None:
            cols["label"][where] = label_similarity(train_labels[batch],
                                                    [test_labels[j] for j in test_rows])
    for name, values in cols.items():
        out[name] = values
    return out
