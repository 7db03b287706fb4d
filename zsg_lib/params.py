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
way; the batch runner consumes them (see :func:`load_sweep`).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from .errors import ParamsError

#: The repository root (``params/`` and ``book/`` live here).
REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_DIR = REPO_ROOT / "params"
BOOK_DIR = REPO_ROOT / "book"

DatasetKind = Literal["demo", "flan-mini", "niv2", "p3", "sharegpt", "norobots"]
#: Kinds whose instances carry no task labels (PAPER.md §5: ShareGPT, NoRobots).
TASKLESS_KINDS = frozenset({"sharegpt", "norobots"})

#: Every arrangement name :func:`zsg_lib.arrange.arrange` knows (ARCHITECTURE.md).
ARRANGEMENTS = (
    "random", "round-robin", "cluster", "nft", "fft", "rt",
    "coarse-nft", "coarse-fft", "coarse-rt",
    "tma-nft", "tma-fft", "tma-rt", "tma-max-min", "tma-min-max",
)
#: Arrangements that group or rank by task label, so need data with tasks.
TASK_ARRANGEMENTS = frozenset({"round-robin", "cluster", "coarse-nft", "coarse-fft", "coarse-rt"})

#: Chapters (file stems in ``book/``) and the ``chapters.<key>`` whose arrangements they compare.
CHAPTER_KEYS = {
    "01_early_generalization": "early",
    "02_permutations": "permutations",
    "03_similarity": "similarity",
    "04_granularity": "granularity",
    "05_tma": "tma",
    "06_beyond": None,
    "summary": None,
}
#: Chapters that only make sense on data with task labels.
TASK_CHAPTERS = frozenset({"02_permutations", "04_granularity"})


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
    view: Literal["all_turns", "first_turn", "prompt", "response"] = "all_turns"
    tma_view: Literal["all_turns", "first_turn", "prompt", "response"] = "first_turn"


@dataclass(frozen=True)
class TmaParams:
    """TMA selection budget (instances) and the turn-window ablation (rounds)."""

    budget: int = 96
    window_size: int = 2
    window_starts: tuple[int, ...] = (0, 2, 4)


@dataclass(frozen=True)
class TrainParams:
    """Training and scoring; mapped onto :class:`zsg_lib.train.TrainConfig`."""

    method: Literal["lora", "qlora", "full"] = "lora"
    lora_r: int = 16
    learning_rate: float = 2e-4
    schedule: Literal["constant", "cosine"] = "constant"
    batch_size: int = 4
    grad_accum: int = 1
    max_steps: int = 24
    eval_every: int = 4
    generate_at: tuple[int, ...] = ()
    # Arrangements whose runs always generate (ROUGE/EM at generate_at). Runs are shared
    # between chapters only with identical settings, so chapter 1's baseline (random, and rt:
    # the same seeded shuffle) generates wherever it is used.
    generate_for: tuple[str, ...] = ("random", "rt")
    max_source_len: int = 256
    max_target_len: int = 64
    max_new_tokens: int | None = None  # generation length (None = max_target_len)
    bf16_autocast: bool = True
    # "auto" = the tokenizer's chat template; "plain" halves the tokens of SmolLM2's short
    # demo instances (its template adds a ~20-token default system prompt to every one).
    template: Literal["auto", "chat", "plain"] = "auto"
    lora_dropout: float = 0.05

    @property
    def instances_per_step(self) -> int:
        """Training instances one optimizer step consumes."""
        return self.batch_size * self.grad_accum


@dataclass(frozen=True)
class StatsParams:
    """How findings are judged: mean test loss over the first ``first_n_steps`` steps."""

    first_n_steps: int = 12
    alpha: float = 0.05


@dataclass(frozen=True)
class ChapterParams:
    """The arrangements each chapter compares (names as :data:`ARRANGEMENTS`)."""

    early: tuple[str, ...] = ("random",)
    permutations: tuple[str, ...] = ("round-robin", "cluster", "random")
    similarity: tuple[str, ...] = ("nft", "fft", "rt")
    granularity: tuple[str, ...] = ("nft", "coarse-nft", "fft", "coarse-fft")
    tma: tuple[str, ...] = ("tma-nft", "tma-fft", "tma-rt", "tma-max-min", "tma-min-max")


@dataclass(frozen=True)
class Profile:
    """One complete, typed parameter set. ``source`` is the file it came from."""

    name: str
    description: str = ""
    model: str | None = None  # None = embedded SmolLM2-135M-Instruct; "tiny" = test model
    precision: Literal["fp32", "bf16", "4bit"] = "fp32"
    dataset: DatasetParams = DatasetParams()
    split: SplitParams = SplitParams()
    train_per_task: int = 20
    test_per_task: int = 5
    embedding: EmbeddingParams = EmbeddingParams()
    tma: TmaParams = TmaParams()
    train: TrainParams = TrainParams()
    seeds: tuple[int, ...] = (0, 1, 2)
    stats: StatsParams = StatsParams()
    chapters: ChapterParams = ChapterParams()
    runs_root: str | None = None  # None = $ZSG_HOME/runs
    source: str = field(default="<defaults>", compare=False)

    @property
    def has_tasks(self) -> bool:
        """Whether the dataset kind carries task labels."""
        return self.dataset.kind not in TASKLESS_KINDS

    def arrangements(self, chapter: str) -> tuple[str, ...]:
        """The arrangements ``chapter`` compares (a ``chapters`` key or a chapter stem)."""
        key = CHAPTER_KEYS.get(chapter, chapter)
        return getattr(self.chapters, key)


# --------------------------------------------------------------------------- type checking


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in canonical form."""

    def bad(expected: str | None = None) -> ParamsError:
        return ParamsError(
            f"{where}: {key}: expected {expected or _type_name(tp)}, got {value!r}"
        )

    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, where)
            except ParamsError:
                pass
        raise bad()
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad(f"one of {', '.join(repr(a) for a in typing.get_args(tp))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad()
        inner = typing.get_args(tp)[0]
        return tuple(_coerce(v, inner, f"{key}[{i}]", where) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise bad("a mapping of " + ", ".join(f.name for f in dataclasses.fields(tp)))
        return _build(tp, value, key + ".", where)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            # PyYAML reads "2e-4" (no dot) as a string; accept numeric strings only.
            try:
                return float(value)
            except ValueError:
                raise bad() from None
        raise bad()
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if tp is dict:
        if not isinstance(value, Mapping):
            raise bad("a mapping")
        return dict(value)
    raise bad()  # pragma: no cover - every annotation above is handled


def _build(cls: type, data: Mapping[str, Any], prefix: str, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "source"}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ParamsError(
                f"{where}: {prefix}{key}: unknown key; known keys: {', '.join(fields)}"
            )
        kwargs[key] = _coerce(value, hints[key], prefix + key, where)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ParamsError(f"{where}: {prefix}{missing[0]}: required key is missing")
    return cls(**kwargs)


# --------------------------------------------------------------------------- loading


def _relative(path: Path) -> str:
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


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"{_relative(path)}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{_relative(path)}: expected a mapping of keys, got {type(data).__name__}")
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


def check_dataset_path(profile: Profile) -> Profile:
    """Raise :class:`ParamsError` naming file and key when the dataset path is missing.

    The demo kind needs no path (it is generated). Call this before any work; it is what
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
    if not Path(ds.path).exists():
        raise ParamsError(f"{profile.source}: dataset.path: {ds.path!r} does not exist")
    return profile


def _validate(profile: Profile) -> Profile:
    src = profile.source
    for key in ("early", "permutations", "similarity", "granularity", "tma"):
        for i, name in enumerate(getattr(profile.chapters, key)):
            if name not in ARRANGEMENTS:
                raise ParamsError(
                    f"{src}: chapters.{key}[{i}]: unknown arrangement {name!r}; "
                    f"known: {', '.join(ARRANGEMENTS)}"
                )
    positive = {
        "train_per_task": profile.train_per_task,
        "test_per_task": profile.test_per_task,
        "train.batch_size": profile.train.batch_size,
        "train.grad_accum": profile.train.grad_accum,
        "train.max_steps": profile.train.max_steps,
        "train.eval_every": profile.train.eval_every,
        "tma.budget": profile.tma.budget,
        "tma.window_size": profile.tma.window_size,
        "stats.first_n_steps": profile.stats.first_n_steps,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ParamsError(f"{src}: {key}: must be positive, got {value}")
    if not profile.seeds:
        raise ParamsError(f"{src}: seeds: at least one seed is needed")
    if len(set(profile.seeds)) != len(profile.seeds):
        raise ParamsError(f"{src}: seeds: duplicate seeds {list(profile.seeds)}")
    if not 0 < profile.stats.alpha < 1:
        raise ParamsError(f"{src}: stats.alpha: must be in (0, 1), got {profile.stats.alpha}")
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
    where = _relative(path)
    data = _read_yaml(path)
    data.setdefault("name", path.stem)
    _build(Profile, data, "", where)  # errors in the file itself name the file alone
    if overrides:
        where = f"{where} (overrides)"
        data = _merge(data, _nest(overrides))
    profile = _build(Profile, data, "", where)
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
    if chapter not in CHAPTER_KEYS:
        raise ParamsError(
            f"{profile.source}: chapter: unknown chapter {chapter!r}; "
            f"known: {', '.join(CHAPTER_KEYS)}"
        )
    if profile.has_tasks:
        return
    if chapter in TASK_CHAPTERS:
        raise ParamsError(
            f"{profile.source}: dataset.kind: {profile.dataset.kind!r} has no task labels; "
            f"chapter {chapter} needs tasks"
        )
    key = CHAPTER_KEYS[chapter]
    if key:
        for i, name in enumerate(profile.arrangements(key)):
            if name in TASK_ARRANGEMENTS:
                raise ParamsError(
                    f"{profile.source}: chapters.{key}[{i}]: arrangement {name!r} needs task "
                    f"labels, and dataset.kind {profile.dataset.kind!r} has none"
                )


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
    return plain(data)


# --------------------------------------------------------------------------- sweeps


def load_sweep(path: str | os.PathLike) -> list[dict]:
    """Expand a sweep file into one parameter dict per run, each validated like a profile.

    A sweep file::

        profile: cpu-demo            # base profile (name or path)
        chapters: [03_similarity]    # book chapters (file stems) to execute
        overrides: {train.max_steps: 24}   # applied to every run (optional)
        grid:                        # cartesian product; keys are dotted profile keys
          chapters.similarity: [[nft], [fft], [rt]]
          seeds: [[0], [1], [2]]

    Each entry: ``{"name", "chapter", "profile", "overrides"}``. ``name`` is unique and
    filesystem-safe; the batch runner passes ``profile`` and ``overrides`` to the chapter's
    ``parameters`` cell. Errors name the sweep file and the key.

    >>> runs = load_sweep(PARAMS_DIR / "sweeps" / "similarity-seeds.yaml")
    >>> len(runs), sorted(runs[0])
    (9, ['chapter', 'name', 'overrides', 'profile'])
    """
    path = Path(path)
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    if not path.is_file():
        raise ParamsError(f"{path}: no such sweep file")
    where = _relative(path)
    data = _read_yaml(path)
    known = {"profile", "chapters", "overrides", "grid", "description"}
    for key in data:
        if key not in known:
            raise ParamsError(f"{where}: {key}: unknown key; known keys: {', '.join(sorted(known))}")
    profile = data.get("profile", "cpu-demo")
    if not isinstance(profile, str):
        raise ParamsError(f"{where}: profile: expected str, got {profile!r}")
    chapters = data.get("chapters")
    if not isinstance(chapters, list) or not chapters or not all(isinstance(c, str) for c in chapters):
        raise ParamsError(f"{where}: chapters: expected a non-empty list of chapter names")
    for i, chapter in enumerate(chapters):
        if chapter not in CHAPTER_KEYS:
            raise ParamsError(
                f"{where}: chapters[{i}]: unknown chapter {chapter!r}; known: {', '.join(CHAPTER_KEYS)}"
            )
    common = data.get("overrides") or {}
    grid = data.get("grid") or {}
    for key, val in (("overrides", common), ("grid", grid)):
        if not isinstance(val, dict):
            raise ParamsError(f"{where}: {key}: expected a mapping")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ParamsError(f"{where}: grid.{key}: expected a non-empty list of values")

    runs: list[dict] = []
    keys = list(grid)
    for combo in itertools.product(*(grid[k] for k in keys)):
        overrides = dict(common)
        overrides.update(zip(keys, combo))
        try:
            prof = load_profile(profile, overrides, check_paths=True)
        except ParamsError as exc:
            raise ParamsError(f"{where}: {exc}") from None
        label = "-".join(f"{k.split('.')[-1]}={_label(v)}" for k, v in zip(keys, combo))
        for chapter in chapters:
            try:
                check_chapter(prof, chapter)
            except ParamsError as exc:
                raise ParamsError(f"{where}: {exc}") from None
            runs.append({
                "name": f"{chapter}--{label}" if label else chapter,
                "chapter": chapter,
                "profile": profile,
                "overrides": overrides,
            })
    names = [r["name"] for r in runs]
    if len(set(names)) != len(names):
        raise ParamsError(f"{where}: grid: two runs get the same name; vary different keys")
    return runs


def _label(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(_label(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}_{_label(v)}" for k, v in sorted(value.items()))
    text = str(value)
    return "".join(c if c.isalnum() or c in "._" else "_" for c in text)[:40]
