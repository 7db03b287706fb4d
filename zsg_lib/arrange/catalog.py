"""The catalog of arrangements: every name, the function behind it and what it needs.

This is the one list of arrangement names. :func:`zsg_lib.arrange.arrange` dispatches through
it, the profile checker validates ``chapters.*`` against it, the book's glue asks it whether an
arrangement orders the per-task sample or selects from the whole pool, the charts draw each
arrangement in its ``colour``, and the tests iterate over it. It is plain data (no function
objects), so reading it runs no arrangement code.

>>> ARRANGEMENTS["coarse-fft"].fixed, ARRANGEMENTS["coarse-fft"].needs_tasks
({'order': 'fft', 'granularity': 'coarse'}, True)
>>> ARRANGEMENTS["tma-rt"].draws_from, ARRANGEMENTS["rt"].draws_from
('pool', 'sample')
>>> [n for n, a in ARRANGEMENTS.items() if not a.by_name_alone]
['tma-window']
>>> [n for n, a in ARRANGEMENTS.items() if a.features == "gradient"]
['grad-nft', 'grad-fft']
>>> [n for n, a in ARRANGEMENTS.items() if not a.reads_test]
['random', 'round-robin', 'cluster', 'rt', 'coarse-rt']
>>> [n for n, a in ARRANGEMENTS.items() if a.online]
['online-nft']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: TMA settings (PAPER.md §5): how each round's picks are ordered.
TMA_SETTINGS = ("nft", "fft", "rt", "max-min", "min-max")


@dataclass(frozen=True)
class ArrangementSpec:
    """One arrangement: ``function`` (a name in :mod:`zsg_lib.arrange`) called with ``fixed``
    keywords; whether it needs task labels and embeddings; whether it orders the per-task
    ``sample`` or selects from the whole ``pool`` of training instances (TMA, PAPER.md §5);
    whether its name alone defines it (``tma-window`` also needs a start round); and which
    ``features`` stand in for the embeddings: ``sentence`` embeddings, or projected LoRA
    ``gradient`` features from the shared warm-up (LESS-style; the arrangement code is the
    same, only its input differs); ``colour``: how every chart draws it. ``online``: its
    order follows the model while the run trains (:mod:`zsg_lib.arrange.online`): a run
    feeds what its batch source picks at each scoring point, and the function behind the name
    gives only a preview (the picks when no loss moves)."""

    function: str
    what: str
    colour: str
    needs_tasks: bool = False
    needs_embeddings: bool = False
    fixed: Mapping[str, Any] = field(default_factory=dict)
    draws_from: Literal["sample", "pool"] = "sample"
    by_name_alone: bool = True
    features: Literal["sentence", "gradient"] = "sentence"
    online: bool = False

    @property
    def reads_test(self) -> bool:
        """Whether the order depends on the test (query) instances: every arrangement by
        distance to them, not RT (a seeded shuffle of instances or tasks that never reads
        them) nor the permutations. A run under a query split records the query ids it read
        (issue #29); one that read none is the same run with or without a split."""
        return self.needs_embeddings and self.fixed.get("order") != "rt"


def _catalog() -> dict[str, ArrangementSpec]:
    out = {
        "random": ArrangementSpec("random_order", "seeded shuffle (§2)", "#7f7f7f"),
        "round-robin": ArrangementSpec("round_robin", "one instance per task in turn (§2)",
                                       "#17becf", needs_tasks=True),
        "cluster": ArrangementSpec("cluster", "task blocks (§2)", "#e377c2", needs_tasks=True),
    }
    for order, colour in {"nft": "#1f77b4", "fft": "#d62728", "rt": "#9e9e9e"}.items():
        out[order] = ArrangementSpec(
            "by_similarity", f"instances by WSD to the test set, {order} (§3)", colour,
            needs_embeddings=True, fixed={"order": order, "granularity": "fine"})
    # grad-nft is drawn beside nft (chapter 7), coarse-nft beside nft (chapter 4): their own
    # hues, not shades of nft's blue (tests/test_plots.py checks the distance)
    for order, colour in {"nft": "#6a3d9a", "fft": "#843c39"}.items():
        out[f"grad-{order}"] = ArrangementSpec(
            "by_similarity", f"instances by WSD on LoRA gradient features, {order} (LESS-style)",
            colour, needs_embeddings=True, fixed={"order": order, "granularity": "fine"},
            features="gradient")
    for order, colour in {"nft": "#00a5a8", "fft": "#ff9896", "rt": "#c7c7c7"}.items():
        out[f"coarse-{order}"] = ArrangementSpec(
            "by_similarity", f"tasks by WSD of their mean embedding, {order} (§4)", colour,
            needs_tasks=True, needs_embeddings=True,
            fixed={"order": order, "granularity": "coarse"})
    tma_colours = {"nft": "#2ca02c", "fft": "#ff7f0e", "rt": "#8c564b", "max-min": "#9467bd",
                   "min-max": "#bcbd22"}
    for setting in TMA_SETTINGS:
        out[f"tma-{setting}"] = ArrangementSpec(
            "tma", f"Test-centric Multi-turn Arrangement, {setting} (§5)", tma_colours[setting],
            needs_embeddings=True, fixed={"setting": setting}, draws_from="pool")
    out["tma-window"] = ArrangementSpec(
        "tma_window", "TMA rounds [start, start + size) (§5)", "#637939",
        needs_embeddings=True, draws_from="pool", by_name_alone=False)
    out["online-nft"] = ArrangementSpec(
        "online", "each stretch from the pool instances nearest the query instances whose "
        "loss lags most since the branch point (issue #29)", "#e6007e", needs_embeddings=True,
        draws_from="pool", online=True)
    return out


ARRANGEMENTS: dict[str, ArrangementSpec] = _catalog()
#: Names a profile's ``chapters.*`` lists may hold (defined by their name alone).
ARRANGEMENT_NAMES: tuple[str, ...] = tuple(n for n, a in ARRANGEMENTS.items() if a.by_name_alone)
