"""Arrangements: the training order *is* the experiment (PAPER.md §2–5).

Every arrangement returns an :class:`Arrangement`: ``ids`` (the training order) and
``table`` (position, id, task, score, round: why each instance is where it is). Call one
function directly, or :func:`arrange` by name; :data:`ARRANGEMENTS`
(:mod:`zsg_lib.arrange.catalog`) lists every name, the function behind it, whether it needs
task labels or embeddings, and whether it orders the sample or selects from the pool. An
online arrangement (``online-nft``) picks while the run trains: :class:`OnlinePicker` is the
batch source a run reads; :func:`arrange` gives its preview.

>>> from zsg_lib.schema import instances_from_records
>>> msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
>>> train = instances_from_records([{"id": f"x{i}", "messages": msgs} for i in range(5)])
>>> rng = np.random.default_rng(0)
>>> train_emb, test_emb = rng.normal(size=(5, 8)), rng.normal(size=(2, 8))
>>> sorted(arrange("nft", train, train_emb, test_emb).ids)
['x0', 'x1', 'x2', 'x3', 'x4']
>>> arrange("tma-nft", train, train_emb, test_emb, budget=3).name
'tma-nft'
>>> arrange("cluster", train)
Traceback (most recent call last):
...
zsg_lib.errors.ArrangementError: arrangement 'cluster' needs task labels, but 5 of 5 training instances have none (data without tasks: use random, nft/fft/rt or tma-*)
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import ArrangementError
from .base import Arrangement
from .catalog import ARRANGEMENT_NAMES, ARRANGEMENTS, TMA_SETTINGS, ArrangementSpec
from .distance_order import by_similarity
from .multiturn import TMARounds, tma, tma_rounds, tma_window
from .online import OnlinePicker, online
from .permutations import cluster, random_order, round_robin

_FUNCTIONS = {f.__name__: f for f in (random_order, round_robin, cluster, by_similarity, tma,
                                       tma_window, online)}


def arrange(
    name: str,
    train: pa.Table | pd.DataFrame,
    train_emb: np.ndarray | None = None,
    test_emb: np.ndarray | None = None,
    **params: Any,
) -> Arrangement:
    """The arrangement called ``name`` (see :data:`ARRANGEMENTS`); ``params`` go to the
    function behind it (``seed``, ``budget``, ``w_avg``, ``measure``, ``start``/``size``...)."""
    if name not in ARRANGEMENTS:
        raise ArrangementError(f"unknown arrangement {name!r}; known: {', '.join(ARRANGEMENTS)}")
    spec = ARRANGEMENTS[name]
    if spec.needs_embeddings and (train_emb is None or test_emb is None):
        raise ArrangementError(f"arrangement {name!r} needs train_emb and test_emb")
    fn = _FUNCTIONS[spec.function]
    unknown = set(params) - set(inspect.signature(fn).parameters) | (set(params) & set(spec.fixed))
    if unknown:
        raise ArrangementError(f"arrangement {name!r} takes no parameter(s) {sorted(unknown)}")
    embeddings = (train_emb, test_emb) if spec.needs_embeddings else ()
    return fn(train, *embeddings, **spec.fixed, **params)


__all__ = [
    "ARRANGEMENTS",
    "ARRANGEMENT_NAMES",
    "TMA_SETTINGS",
    "Arrangement",
    "ArrangementSpec",
    "OnlinePicker",
    "TMARounds",
    "arrange",
    "by_similarity",
    "cluster",
    "online",
    "random_order",
    "round_robin",
    "tma",
    "tma_rounds",
    "tma_window",
]
