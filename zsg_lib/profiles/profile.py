"""The profile's shape: typed, frozen sections from ``params/<name>.yaml`` (loaded and checked
by :mod:`zsg_lib.profiles.params`), and what a profile derives from its values.

>>> from zsg_lib.profiles.params import load_profile
>>> p = load_profile("tiny")
>>> p.train.instances_per_step, p.judge.branch_step == p.warmup.steps
(2, True)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from ..analysis.findings import Judge
from ..arrange.multiturn import WithinRound
from ..data.catalog import DATASETS, DatasetKind
from ..schema import TextView
from ..train.config import Precision, TrainConfig
from .chapters import CHAPTERS, COMPARISONS


@dataclass(frozen=True)
class DatasetParams:
    """Which data: ``kind`` picks the catalog entry (:data:`zsg_lib.data.DATASETS`: loader,
    path shape, tasks, own split); ``path`` is needed for every kind but ``demo``. ``seed``,
    ``track`` and ``k_positive`` reach the loader where its entry lists them in ``options``."""

    kind: DatasetKind = "demo"
    path: str | None = None
    seed: int = 0  # seeds the task split (fixed across run seeds)
    track: str = "default"  # NIV2: the split track under splits/
    k_positive: int = 2  # NIV2: positive examples in each prompt


@dataclass(frozen=True)
class SplitParams:
    """How tasks are split into train and test.

    Explicit task lists win; otherwise the dataset's own split (demo, NIV2) or a seeded random
    split; ``n_*_tasks`` then draws that many tasks (seeded by ``dataset.seed``) from each side.

    ``query_per_task`` (issue #29): per seed, each test task's sampled test instances split
    into that many *query* instances, the only ones an arrangement reads, and the rest
    *evaluation* instances, scored by every run and never arranged toward
    (:func:`zsg_lib.data.query_split`). ``None``: no split, every test instance is a query
    instance (the paper's design: arranged toward and judged on the same instances).
    """

    train_tasks: tuple[str, ...] | None = None
    test_tasks: tuple[str, ...] | None = None
    n_train_tasks: int | None = None
    n_test_tasks: int | None = None
    n_test_instances: int = 40  # for data without tasks: held-out conversations
    query_per_task: int | None = None  # test instances per task arrangements may read


@dataclass(frozen=True)
class EmbeddingParams:
    """Sentence embeddings (PAPER.md §3: all turns; §5, TMA: first user turn + answer)."""

    model: str | None = None  # None = the embedded all-MiniLM-L6-v2
    view: TextView = "all_turns"
    tma_view: TextView = "first_turn"


@dataclass(frozen=True)
class TmaParams:
    """TMA selection budget (instances), the order of picks inside a round, and the
    turn-window ablation (rounds)."""

    budget: int = 96
    # shuffle (seeded) | train-index (the authors' choice) | test-order (rounds become task
    # blocks when the test table is grouped by task): see zsg_lib.arrange.multiturn.
    within_round: WithinRound = "shuffle"
    window_size: int = 2
    window_starts: tuple[int, ...] = (0, 2, 4)


@dataclass(frozen=True)
class WarmupParams:
    """A shared warm-up before every comparison (chapters 2–5): ``steps`` optimizer steps on
    a seeded random draw of ``steps × instances per step`` instances from the training pool
    (every instance of the training tasks), the same for every arm of a seed and excluded
    from every arm's data, so arms differ only in the data that follows. One run per seed,
    shared by the whole book; chapter 1 measures from step 0. ``0``: no warm-up."""

    steps: int = 0


@dataclass(frozen=True)
class AttributionParams:
    """The instance-level chapter: the runs scored after every ``every``-th of the first
    ``steps`` steps after the branch point (step-resolved scoring, ``0``: none), and the
    dimension of the projected gradient features. Runs are shared between chapters only with
    identical settings, so ``arrangements`` lists every name of one order (random and rt are
    the same seeded shuffle); the chapter reads the first."""

    arrangements: tuple[str, ...] = ("random", "rt")
    steps: int = 0
    every: int = 1
    gradient_dim: int = 32768  # a cosine error under 0.02 at worst (gradients.py)


@dataclass(frozen=True)
class ProbeParams:
    """The probes chapter (issue #28): from each seed's warm-up state, ``steps`` optimizer
    steps on a batch *chosen* by a design, the test set scored, the state restored.

    ``designs`` (names of :data:`zsg_lib.arrange.probe_designs.DESIGNS` but ``random``): one
    probe per design × target × ``replicates`` (a seeded draw of a batch from the design's
    ``candidates`` nearest / farthest, or from the target's relatives); ``random``: the random
    batches of each seed, the control of every target (they score the whole test set).
    ``targets``: test tasks (``None``: every test task). ``others_per_task``: a design's probe
    scores its target's instances and this many (a seeded sample, the same for every probe of
    a seed) of each other test task, which keeps the *others* measure defined at a fraction of
    the scoring pass (87% of a probe's time on cpu-demo); ``None``: the whole test set."""

    designs: tuple[str, ...] = ("nearest-gradient", "nearest-embedding", "same-label",
                                "farthest-embedding")
    replicates: int = 1
    random: int = 4
    candidates: int = 16
    steps: int = 1
    targets: tuple[str, ...] | None = None
    others_per_task: int | None = None


@dataclass(frozen=True)
class StatsParams:
    """How findings are judged: mean test loss over the first ``first_n_steps`` steps."""

    first_n_steps: int = 12
    alpha: float = 0.05


#: The arrangements each chapter compares (``chapters.<key>``, names as in
#: :data:`zsg_lib.arrange.ARRANGEMENTS`); keys and defaults come from the chapter catalog.
ChapterParams = dataclasses.make_dataclass(
    "ChapterParams",
    [(key, tuple[str, ...], field(default=default)) for key, default in COMPARISONS.items()],
    frozen=True,
)
ChapterParams.__module__ = __name__


#: Where a run starts: step 0 on its own, the shared warm-up, or a branch from it.
RunStart = Literal["zero", "warmup", "branch"]


@dataclass(frozen=True)
class Profile:
    """One complete, typed parameter set. ``source`` is the file it came from."""

    name: str
    description: str = ""
    model: str | None = None  # None = embedded SmolLM2-135M-Instruct; "tiny" = test model
    precision: Precision | None = None  # None: see TrainConfig.resolved_precision
    dataset: DatasetParams = DatasetParams()
    split: SplitParams = SplitParams()
    train_per_task: int = 20
    test_per_task: int = 5
    embedding: EmbeddingParams = EmbeddingParams()
    tma: TmaParams = TmaParams()
    train: TrainConfig = TrainConfig()  # model, precision and seed: set above and by seeds
    warmup: WarmupParams = WarmupParams()
    # Arrangements whose runs always generate (ROUGE/EM at train.generate_at). Runs are shared
    # between chapters only with identical settings, so chapter 1's baseline (random, and rt:
    # the same seeded shuffle) generates wherever it is used.
    generate_for: tuple[str, ...] = ("random", "rt")
    attribution: AttributionParams = AttributionParams()
    probes: ProbeParams = ProbeParams()
    seeds: tuple[int, ...] = (0, 1, 2)
    stats: StatsParams = StatsParams()
    chapters: ChapterParams = ChapterParams()
    runs_root: str | None = None  # None = $ZSG_HOME/runs
    source: str = field(default="<defaults>", compare=False)

    @property
    def has_tasks(self) -> bool:
        """Whether the dataset kind carries task labels."""
        return DATASETS[self.dataset.kind].has_tasks

    @property
    def judge(self) -> Judge:
        """What the comparisons (chapters 2–5) need: they branch from the warm-up at step
        ``warmup.steps`` and run ``train.max_steps`` more."""
        w = self.warmup.steps
        return Judge(max_steps=w + self.train.max_steps, eval_every=self.train.eval_every,
                     first_n_steps=self.stats.first_n_steps, alpha=self.stats.alpha,
                     branch_step=w)

    @property
    def early_judge(self) -> Judge:
        """What chapter 1 needs: its runs start at step 0 (early movement is its finding)."""
        return dataclasses.replace(self.judge, max_steps=self.train.max_steps, branch_step=0)

    def arrangements(self, chapter: str) -> tuple[str, ...]:
        """The arrangements ``chapter`` compares (a ``chapters`` key or a chapter stem)."""
        spec = CHAPTERS.get(chapter)
        key = spec.key if spec is not None else chapter
        return getattr(self.chapters, key) if key else ()

    def run_config(self, seed: int, steps: int | None = None, generate: bool = False,
                   resolved_from: int | None = None, start: RunStart = "zero") -> TrainConfig:
        """The :class:`TrainConfig` of one run, built here only: ``train`` with this profile's
        model, precision and ``seed``; ``steps`` caps ``max_steps``. Greedy generation
        (ROUGE/EM) runs at ``train.generate_at`` only when ``generate`` (costly on a CPU;
        chapter 1 needs it). ``resolved_from``: the run starts at this step and is scored step
        by step over the ``attribution.steps`` after it. ``start``: ``"zero"``, a run of its own
        from step 0; ``"warmup"``, the shared warm-up (``warmup.steps`` steps, its final state
        kept); ``"branch"``, a comparison continuing from it. The warm-up and its branches
        share one lr schedule over ``warmup.steps + train.max_steps``.

        >>> from zsg_lib.profiles.params import load_profile
        >>> load_profile("tiny").run_config(seed=2, steps=4).max_steps
        4
        >>> w = load_profile("tiny").run_config(seed=2, start="warmup")
        >>> w.max_steps, w.schedule_steps, w.keep_final_state
        (2, 8, True)
        """
        t = self.train
        if start == "warmup":
            steps = self.warmup.steps
        max_steps = min(t.max_steps, steps) if steps else t.max_steps
        a = self.attribution
        dense = ((resolved_from + 1, resolved_from + min(a.steps, max_steps))
                 if resolved_from is not None and a.steps else None)
        shared = start != "zero"  # one schedule over warm-up + comparison
        return dataclasses.replace(
            t, model=self.model, precision=self.precision, seed=seed, max_steps=max_steps,
            generate_at=tuple(s for s in t.generate_at if s <= max_steps) if generate else (),
            dense_scoring=dense, dense_every=a.every if dense else 1,
            schedule_steps=self.warmup.steps + t.max_steps if shared else t.schedule_steps,
            keep_final_state=start == "warmup" or t.keep_final_state)
