"""Typed parameter profiles: ``params/<name>.yaml`` → a frozen :class:`Profile`.

A profile says which model, which data, how it is split and sampled, how training runs and
which arrangements each chapter compares. Loading checks every key and type against the
dataclasses below, so a typo fails *before* any work, with the file and the dotted key in the
message::

    params/cpu-demo.yaml: train.learning_rate: expected float, got 'fast'

Overrides (from papermill, a sweep or a test) use the same keys, dotted or nested:

>>> p = load_profile("tiny", {"train.max_steps": 3, "seeds": [0]})
>>> p.train.max_steps, p.seeds
(3, (0,))
>>> load_profile("tiny", {"train.lr": 1.0})
Traceback (most recent call last):
...
zsg_lib.errors.ParamsError: params/tiny.yaml (overrides): train.lr: unknown key; known keys: ...

Sweep files (``params/sweeps/*.yaml``) expand to one parameter dict per run, validated the same
way (:mod:`zsg_lib.book.sweeps`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..analysis.findings import Judge
from ..arrange.catalog import ARRANGEMENT_NAMES, ARRANGEMENTS
from ..arrange.multiturn import WithinRound
from ..data import TASKLESS_KINDS, DatasetKind
from ..errors import ParamsError
from ..schema import TextView
from ..train.config import Precision, TrainConfig
from ..typed import FieldError, build
from .chapters import CHAPTERS, COMPARISONS

#: The repository root (``params/`` and ``book/`` live here).
REPO_ROOT = Path(__file__).resolve().parents[2]
PARAMS_DIR = REPO_ROOT / "params"


@dataclass(frozen=True)
class DatasetParams:
    """Which data: ``kind`` picks the loader; ``path`` is needed for every kind but ``demo``."""

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
    """

    train_tasks: tuple[str, ...] | None = None
    test_tasks: tuple[str, ...] | None = None
    n_train_tasks: int | None = None
    n_test_tasks: int | None = None
    n_test_instances: int = 40  # for data without tasks: held-out conversations


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
    seeds: tuple[int, ...] = (0, 1, 2)
    stats: StatsParams = StatsParams()
    chapters: ChapterParams = ChapterParams()
    runs_root: str | None = None  # None = $ZSG_HOME/runs
    source: str = field(default="<defaults>", compare=False)

    @property
    def has_tasks(self) -> bool:
        """Whether the dataset kind carries task labels."""
        return self.dataset.kind not in TASKLESS_KINDS

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

    def run_config(self, seed: int, steps: int | None = None,
                   generate: bool = False) -> TrainConfig:
        """The :class:`TrainConfig` of one run: ``train`` with this profile's model, precision
        and ``seed``; ``steps`` caps ``max_steps``. Greedy generation (ROUGE/EM) runs at
        ``train.generate_at`` only when ``generate`` (costly on a CPU; chapter 1 needs it).

        >>> load_profile("tiny").run_config(seed=2, steps=4).max_steps
        4
        """
        t = self.train
        max_steps = min(t.max_steps, steps) if steps else t.max_steps
        return dataclasses.replace(
            t, model=self.model, precision=self.precision, seed=seed, max_steps=max_steps,
            generate_at=tuple(s for s in t.generate_at if s <= max_steps) if generate else ())


#: TrainConfig fields a profile sets elsewhere: top-level ``model``/``precision``, ``seeds``.
_SET_ELSEWHERE = {"model": "model", "precision": "precision", "seed": "seeds"}


def _clip_generate_at(train: Mapping[str, Any]) -> Mapping[str, Any]:
    """Drop ``generate_at`` steps past ``max_steps``: a profile shortened by an override
    (``--set train.max_steps=12``) keeps the generation steps that still fall in the run."""
    steps, at = train.get("max_steps"), train.get("generate_at")
    if (isinstance(steps, int) and isinstance(at, (list, tuple))
            and all(isinstance(s, int) for s in at)):
        return {**train, "generate_at": [s for s in at if s <= steps]}
    return train


def _shortens_run(overrides: Mapping[str, Any]) -> bool:
    """Whether ``overrides`` (nested) set ``train.max_steps`` and leave ``generate_at`` to the
    file: only then are the file's later generation steps clipped; a ``generate_at`` step
    past ``max_steps`` written in the file, or in the overrides, is an error."""
    train = overrides.get("train")
    return isinstance(train, Mapping) and "max_steps" in train and "generate_at" not in train


def _build(data: Mapping[str, Any], where: str, clip: bool = False) -> Profile:
    """The profile from ``data``; every problem as ``<where>: <dotted key>: <reason>``.
    ``clip``: drop ``train.generate_at`` steps past ``train.max_steps`` first."""
    train = data.get("train")
    if isinstance(train, Mapping):
        for key, instead in _SET_ELSEWHERE.items():
            if key in train:
                raise ParamsError(f"{where}: train.{key}: set at the top level ({instead}:), "
                                  "not in train:")
        if clip:
            data = {**data, "train": _clip_generate_at(train)}
    try:
        return build(Profile, data)
    except FieldError as exc:
        raise ParamsError(f"{where}: {exc.key}: {exc.reason}") from None


# --------------------------------------------------------------------------- loading


def relative(path: Path) -> str:
    """``path`` relative to the repository root where it lies inside it (for messages)."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def resolve_profile_path(name_or_path: str | os.PathLike) -> Path:
    """A profile name (``cpu-demo``) → ``params/cpu-demo.yaml``; a path stays a path."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(text).expanduser()
        if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
            path = REPO_ROOT / path
    else:
        path = PARAMS_DIR / f"{text}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PARAMS_DIR.glob("*.yaml"))
        raise ParamsError(f"{text}: no such profile (file {path}); known profiles: {known}")
    return path


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one YAML mapping: ``key`` (dotted) and both 1-based ``lines``."""

    def __init__(self, key: str, lines: tuple[int, int]) -> None:
        super().__init__(None, None, f"{key}: key given twice (lines {lines[0]} and "
                                     f"{lines[1]}); keep one of them")
        self.key, self.lines = key, lines


def _check_unique_keys(node: yaml.Node, prefix: str = "") -> None:
    """Raise :class:`DuplicateKeyError` for a key given twice in any mapping under ``node``
    (PyYAML keeps the last one silently: pyyaml issue #165)."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_unique_keys(item, f"{prefix}[{i}]")
    if not isinstance(node, yaml.MappingNode):
        return
    first: dict[str, int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *base`` may repeat base keys
            continue
        key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
        line = key_node.start_mark.line + 1
        if key in first:
            raise DuplicateKeyError(key, (first[key], line))
        first[key] = line
        _check_unique_keys(value_node, key)


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, refusing a mapping key given twice (two ``train:`` blocks, a key
    twice in a section) instead of keeping the last one.

    >>> yaml.load("a: 1\\nb: {c: 2, c: 3}\\n", UniqueKeyLoader)
    Traceback (most recent call last):
    ...
    zsg_lib.book.params.DuplicateKeyError: b.c: key given twice (lines 2 and 2); keep one of them
    """

    def construct_document(self, node: yaml.Node) -> Any:
        _check_unique_keys(node)
        return super().construct_document(node)


def read_yaml(path: Path) -> dict:
    """A YAML file's top-level mapping; ParamsError naming the file if it is not one, or if
    a key is given twice (with both line numbers)."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), UniqueKeyLoader)
    except DuplicateKeyError as exc:
        raise ParamsError(f"{relative(path)}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{relative(path)}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{relative(path)}: expected a mapping of keys, got {type(data).__name__}")
    return data


def _nest(overrides: Mapping[str, Any]) -> dict:
    """``{"train.max_steps": 3}`` → ``{"train": {"max_steps": 3}}`` (nested dicts pass through)."""
    out: dict = {}
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ParamsError(f"overrides: {key}: {part} is not a section")
        if isinstance(value, Mapping):
            node[parts[-1]] = _merge(node.get(parts[-1], {}), _nest(value))
        else:
            node[parts[-1]] = value
    return out


def _merge(base: Any, update: Any) -> Any:
    if isinstance(base, dict) and isinstance(update, dict):
        merged = dict(base)
        for k, v in update.items():
            merged[k] = _merge(base.get(k), v)
        return merged
    return update


def _expand_path(path: str | None) -> str | None:
    if path is None:
        return None
    expanded = os.path.expanduser(os.path.expandvars(path))
    if not os.path.isabs(expanded) and (REPO_ROOT / expanded).exists():
        expanded = str(REPO_ROOT / expanded)
    return expanded


#: Kinds whose ``dataset.path`` must be one file, or one folder (the others take either).
_PATH_SHAPE = {"flan-mini": "file", "sharegpt": "file", "niv2": "folder"}


def check_dataset_path(profile: Profile) -> Profile:
    """Raise :class:`ParamsError` naming file and key when the dataset path is missing.

    The demo kind needs no path (it is generated); a folder where the kind reads one file
    (Flan-mini, ShareGPT), or a file where it reads a folder (NIV2), is refused too. Call this before any work; it is what
    :func:`load_profile` does unless told ``check_paths=False``.
    """
    ds = profile.dataset
    if ds.kind == "demo":
        return profile
    if ds.path is None:
        raise ParamsError(
            f"{profile.source}: dataset.path: kind {ds.kind!r} needs a path "
            "(set it in the file or override dataset.path)"
        )
    path = Path(ds.path)
    if not path.exists():
        raise ParamsError(f"{profile.source}: dataset.path: {ds.path!r} does not exist")
    shape = _PATH_SHAPE.get(ds.kind)
    if shape == "file" and path.is_dir():
        raise ParamsError(f"{profile.source}: dataset.path: {ds.path!r} is a folder; kind "
                          f"{ds.kind!r} reads one file (a JSON array of records or JSON Lines):"
                          " give the file's path")
    if shape == "folder" and not path.is_dir():
        raise ParamsError(f"{profile.source}: dataset.path: {ds.path!r} is a file; kind "
                          f"{ds.kind!r} reads a folder (with tasks/ and splits/): give the "
                          "folder's path")
    return profile


def check_split_tasks(profile: Profile, available_tasks: Iterable[str]) -> None:
    """Raise :class:`ParamsError` naming ``split.train_tasks[i]`` or ``split.test_tasks[i]``
    and the profile file when a listed task is not among ``available_tasks`` (the tasks of
    the loaded data). Call it where the split is resolved, before any training.

    >>> p = load_profile("tiny", {"split.test_tasks": ["t1", "tx"], "split.n_test_tasks": None})
    >>> check_split_tasks(p, ["t1", "t2", "t3"])
    Traceback (most recent call last):
    ...
    zsg_lib.errors.ParamsError: params/tiny.yaml (overrides): split.test_tasks[1]: task 'tx' is not in the data (3 tasks, e.g. ['t1', 't2', 't3']); check the name
    """
    known = set(available_tasks)
    for key in ("train_tasks", "test_tasks"):
        for i, name in enumerate(getattr(profile.split, key) or ()):
            if name in known:
                continue
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "; check the name"
            raise ParamsError(f"{profile.source}: split.{key}[{i}]: task {name!r} is not in the "
                              f"data ({len(known)} tasks, e.g. {sorted(known)[:3]}){hint}")


def _check_split_keys(profile: Profile) -> None:
    """Task counts are positive; a task list names each task once, on one side only."""
    src, sp = profile.source, profile.split
    for key in ("n_train_tasks", "n_test_tasks", "n_test_instances"):
        value = getattr(sp, key)
        if value is not None and value <= 0:
            raise ParamsError(f"{src}: split.{key}: must be positive (or unset), got {value}")
    for key in ("train_tasks", "test_tasks"):
        first: dict[str, int] = {}
        for i, name in enumerate(getattr(sp, key) or ()):
            if name in first:
                raise ParamsError(f"{src}: split.{key}[{i}]: task {name!r} is listed twice "
                                  f"(also split.{key}[{first[name]}]); list each task once")
            first.setdefault(name, i)
    train = {name: i for i, name in enumerate(sp.train_tasks or ())}
    for j, name in enumerate(sp.test_tasks or ()):
        if name in train:
            raise ParamsError(f"{src}: split.test_tasks[{j}]: task {name!r} is also "
                              f"split.train_tasks[{train[name]}]; a task is on one side only")


def _check_windows(profile: Profile) -> None:
    """Turn windows start at round 0 or later. (Whether a round exists depends on the data:
    :func:`zsg_lib.book.experiment.run_window` checks that before any window trains.)"""
    for i, start in enumerate(profile.tma.window_starts):
        if start < 0:
            raise ParamsError(f"{profile.source}: tma.window_starts[{i}]: rounds count from 0, "
                              f"got {start}")


def _validate(profile: Profile) -> Profile:
    """The checks across keys (each value's own checks ran when it was built)."""
    src = profile.source
    for key in COMPARISONS:
        for i, name in enumerate(getattr(profile.chapters, key)):
            if name not in ARRANGEMENT_NAMES:
                raise ParamsError(
                    f"{src}: chapters.{key}[{i}]: unknown arrangement {name!r}; "
                    f"known: {', '.join(ARRANGEMENT_NAMES)}"
                )
    for i, name in enumerate(profile.generate_for):
        if name not in ARRANGEMENTS:
            raise ParamsError(f"{src}: generate_for[{i}]: unknown arrangement {name!r}; "
                              f"known: {', '.join(ARRANGEMENT_NAMES)}")
    positive = {
        "train_per_task": profile.train_per_task,
        "test_per_task": profile.test_per_task,
        "tma.budget": profile.tma.budget,
        "tma.window_size": profile.tma.window_size,
        "stats.first_n_steps": profile.stats.first_n_steps,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ParamsError(f"{src}: {key}: must be positive, got {value}")
    if profile.warmup.steps < 0:
        raise ParamsError(f"{src}: warmup.steps: must be >= 0, got {profile.warmup.steps}")
    if profile.train.max_steps is not None and profile.warmup.steps > profile.train.max_steps:
        raise ParamsError(f"{src}: warmup.steps: {profile.warmup.steps} is longer than the "
                          f"comparison after it (train.max_steps={profile.train.max_steps})")
    if not profile.seeds:
        raise ParamsError(f"{src}: seeds: at least one seed is needed")
    if len(set(profile.seeds)) != len(profile.seeds):
        raise ParamsError(f"{src}: seeds: duplicate seeds {list(profile.seeds)}")
    if not 0 < profile.stats.alpha < 1:
        raise ParamsError(f"{src}: stats.alpha: must be in (0, 1), got {profile.stats.alpha}")
    _check_split_keys(profile)
    _check_windows(profile)
    try:  # the top-level model/precision meet train: here (e.g. qlora needs 4bit)
        profile.run_config(profile.seeds[0])
    except FieldError as exc:
        key = exc.key if exc.key in _SET_ELSEWHERE else f"train.{exc.key}"
        raise ParamsError(f"{src}: {key}: {exc.reason}") from None
    return profile


def load_profile(
    name_or_path: str | os.PathLike,
    overrides: Mapping[str, Any] | None = None,
    *,
    check_paths: bool = True,
) -> Profile:
    """Load and validate a profile; ``overrides`` (dotted or nested keys) win over the file.

    Errors name the file (``(overrides)`` when an override is at fault) and the dotted key.
    With ``check_paths`` the dataset path must exist (see :func:`check_dataset_path`).

    >>> load_profile("cpu-demo").dataset.kind
    'demo'
    """
    path = resolve_profile_path(name_or_path)
    where = relative(path)
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    _build(data, where)  # errors in the file itself name the file alone
    clip = False
    if overrides:
        where = f"{where} (overrides)"
        nested = _nest(overrides)
        clip = _shortens_run(nested)
        data = _merge(data, nested)
    profile = _build(data, where, clip)
    profile = dataclasses.replace(
        profile,
        source=where,
        dataset=dataclasses.replace(profile.dataset, path=_expand_path(profile.dataset.path)),
    )
    _validate(profile)
    if check_paths:
        check_dataset_path(profile)
    return profile


def check_chapter(profile: Profile, chapter: str) -> None:
    """Raise before any work when ``chapter`` cannot run on this profile's data.

    >>> check_chapter(load_profile("tiny"), "02_permutations")
    >>> check_chapter(load_profile("tiny"), "07_nothing")
    Traceback (most recent call last):
    ...
    zsg_lib.errors.ParamsError: params/tiny.yaml: chapter: unknown chapter '07_nothing'; ...
    """
    if chapter not in CHAPTERS:
        raise ParamsError(
            f"{profile.source}: chapter: unknown chapter {chapter!r}; "
            f"known: {', '.join(CHAPTERS)}"
        )
    if profile.has_tasks:
        return
    spec = CHAPTERS[chapter]
    if spec.needs_tasks:
        raise ParamsError(
            f"{profile.source}: dataset.kind: {profile.dataset.kind!r} has no task labels; "
            f"chapter {chapter} needs tasks"
        )
    for i, name in enumerate(profile.arrangements(chapter)):
        if ARRANGEMENTS[name].needs_tasks:
            raise ParamsError(
                f"{profile.source}: chapters.{spec.key}[{i}]: arrangement {name!r} needs task "
                f"labels, and dataset.kind {profile.dataset.kind!r} has none"
            )


def check_runnable(profile: Profile) -> None:
    """Raise before any work when the book cannot run this profile's experiments (the
    chapters compare arrangements over a fixed number of steps)."""
    if profile.train.max_steps is None:
        raise ParamsError(f"{profile.source}: train.max_steps: the book's runs need a step "
                          "count (they compare arrangements over the same steps)")


def to_dict(profile: Profile) -> dict:
    """The profile as plain YAML-able values (tuples as lists, without ``source``)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    data = dataclasses.asdict(profile)
    data.pop("source", None)
    for key in _SET_ELSEWHERE:
        data["train"].pop(key)
    return plain(data)
