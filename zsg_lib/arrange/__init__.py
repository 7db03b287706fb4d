"""Arrangements: the training order *is* the experiment (PAPER.md §2–5).

Every arrangement returns an :class:`Arrangement`: ``ids`` (the training order) and
``table`` (position, id, task, score, round: why each instance is where it is). Call one
function directly, or :func:`arrange` by name. :data:`ARRANGEMENTS` lists the names, whether
each needs task labels and whether it needs embeddings.

======================  ===========  ==========  ==========================================
name                    needs tasks  embeddings  what
======================  ===========  ==========  ==========================================
random                  no           no          seeded shuffle (§2)
round-robin             yes          no          one instance per task in turn (§2)
cluster                 yes          no          task blocks (§2)
nft / fft / rt          no           yes         instances by WSD to the test set (§3)
coarse-nft/-fft/-rt     yes          yes         tasks by WSD of the mean embedding (§4)
tma-nft/-fft/-rt        no           yes         Test-centric Multi-turn Arrangement (§5)
tma-max-min/-min-max    no           yes         TMA, far half then near half / reverse
tma-window              no           yes         TMA rounds [start, start + size) (§5)
======================  ===========  ==========  ==========================================

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
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import ArrangementError
from .base import Arrangement
from .distance_order import by_similarity
from .permutations import cluster, random_order, round_robin
from .multiturn import SETTINGS as TMA_SETTINGS
from .multiturn import TMARounds, tma, tma_rounds, tma_window
from .neighbours import nearest_exact


class ArrangementInfo(NamedTuple):
    needs_tasks: bool
    needs_embeddings: bool


ARRANGEMENTS: dict[str, ArrangementInfo] = {
    "random": ArrangementInfo(False, False),
    "round-robin": ArrangementInfo(True, False),
    "cluster": ArrangementInfo(True, False),
    **{o: ArrangementInfo(False, True) for o in ("nft", "fft", "rt")},
    **{f"coarse-{o}": ArrangementInfo(True, True) for o in ("nft", "fft", "rt")},
    **{f"tma-{s}": ArrangementInfo(False, True) for s in TMA_SETTINGS},
    "tma-window": ArrangementInfo(False, True),
}


_FUNCTIONS = {
    "random": random_order, "round-robin": round_robin, "cluster": cluster,
    **{o: by_similarity for o in ("nft", "fft", "rt")},
    **{f"coarse-{o}": by_similarity for o in ("nft", "fft", "rt")},
    **{f"tma-{s}": tma for s in TMA_SETTINGS}, "tma-window": tma_window,
}


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
    if ARRANGEMENTS[name].needs_embeddings and (train_emb is None or test_emb is None):
        raise ArrangementError(f"arrangement {name!r} needs train_emb and test_emb")
    fn = _FUNCTIONS[name]
    fixed = {"order", "granularity"} if fn is by_similarity else {"setting"} if fn is tma else set()
    unknown = set(params) - set(inspect.signature(fn).parameters) | (set(params) & fixed)
    if unknown:
        raise ArrangementError(f"arrangement {name!r} takes no parameter(s) {sorted(unknown)}")
    if name == "random":
        return random_order(train, **params)
    if name == "round-robin":
        return round_robin(train, **params)
    if name == "cluster":
        return cluster(train, **params)
    if name in ("nft", "fft", "rt"):
        return by_similarity(train, train_emb, test_emb, order=name, granularity="fine",
                             **params)
    if name.startswith("coarse-"):
        return by_similarity(train, train_emb, test_emb, order=name.removeprefix("coarse-"),
                             granularity="coarse", **params)
    if name == "tma-window":
        return tma_window(train, train_emb, test_emb, **params)
    return tma(train, train_emb, test_emb, setting=name.removeprefix("tma-"), **params)


__all__ = [
    "ARRANGEMENTS",
    "Arrangement",
    "ArrangementInfo",
    "TMARounds",
    "arrange",
    "by_similarity",
    "cluster",
    "nearest_exact",
    "random_order",
    "round_robin",
    "tma",
    "tma_rounds",
    "tma_window",
]
