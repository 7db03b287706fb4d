"""Typed parameter profiles: ``params/<name>.yaml`` → a frozen :class:`Profile`.

A profile says which model, which data, how it is split and sampled, how training runs and
which arrangements each chapter compares (its sections: :mod:`zsg_lib.profiles.profile`). Loading
checks every key and type against those dataclasses, and every value against the rules here
(one set of checks for the whole book), so a typo fails *before* any work, with the file and
the dotted key in the message::

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
way (:mod:`zsg_lib.profiles.sweeps`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..arrange.catalog import ARRANGEMENT_NAMES, ARRANGEMENTS
from ..arrange.probe_designs import DESIGNS, RANKS
from ..data.catalog import DATASETS
from ..errors import ParamsError
from ..paths import REPO_ROOT
from ..typed import FieldError, build
from .chapters import CHAPTERS, COMPARISONS
from .profile import Profile, StatsParams
from .yamlfiles import merge, nest, read_yaml, relative

PARAMS_DIR = REPO_ROOT / "params"


#: TrainConfig fields a profile sets elsewhere: top-level ``model``/``precision``, ``seeds``.
_SET_ELSEWHERE = {"model": "model", "precision": "precision", "seed": "seeds"}


def _clip_to_run(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a shorter run keeps. The judging window ``stats.first_n_steps`` left at its
    default is cut to ``train.max_steps``. A profile shortened by an override (``--set
    train.max_steps=12``) also keeps the file's ``train.generate_at`` steps inside the run
    and cuts the file's judging window and step-resolved stretch (``attribution.steps``) to it. A value past the run written in the overrides,
    or in a file the overrides do not shorten, is an error (:func:`_validate`)."""
    out = dict(data)
    train = out.get("train") if isinstance(out.get("train"), Mapping) else {}
    stats = out.get("stats") if isinstance(out.get("stats"), Mapping) else {}
    steps = train.get("max_steps")
    if not isinstance(steps, int):
        return out
    over_train, over_stats = overrides.get("train"), overrides.get("stats")
    shortened = isinstance(over_train, Mapping) and "max_steps" in over_train
    at = train.get("generate_at")
    if (shortened and "generate_at" not in over_train and isinstance(at, (list, tuple))
            and all(isinstance(s, int) for s in at)):
        out["train"] = {**train, "generate_at": [s for s in at if s <= steps]}
    window = stats.get("first_n_steps", StatsParams.first_n_steps)
    from_overrides = isinstance(over_stats, Mapping) and "first_n_steps" in over_stats
    if ((shortened and not from_overrides) or "first_n_steps" not in stats) and (
            isinstance(window, int) and window > steps):
        out["stats"] = {**stats, "first_n_steps": steps}
    attribution = out.get("attribution") if isinstance(out.get("attribution"), Mapping) else {}
    over_att = overrides.get("attribution")
    resolved = attribution.get("steps")
    if (shortened and not (isinstance(over_att, Mapping) and "steps" in over_att)
            and isinstance(resolved, int) and resolved > steps):  # the step-resolved stretch
        out["attribution"] = {**attribution, "steps": steps}
    return out


def _build(data: Mapping[str, Any], where: str) -> Profile:
    """The profile from ``data``; every problem as ``<where>: <dotted key>: <reason>``."""
    train = data.get("train")
    if isinstance(train, Mapping):
        for key, instead in _SET_ELSEWHERE.items():
            if key in train:
                raise ParamsError(f"{where}: train.{key}: set at the top level ({instead}:), "
                                  "not in train:")
    try:
        return build(Profile, data)
    except FieldError as exc:
        raise ParamsError(f"{where}: {exc.key}: {exc.reason}") from None


# --------------------------------------------------------------------------- loading


def default_profile() -> str:
    """The profile used when none is named: ``$ZSG_PROFILE``, else ``cpu-demo`` (what a
    chapter's ``parameters`` cell, ``zsg book``, ``zsg batch`` and ``zsg plan`` take)."""
    return os.environ.get("ZSG_PROFILE", "cpu-demo")


def is_profile_path(name_or_path: str | os.PathLike) -> bool:
    """Whether ``name_or_path`` names a YAML file rather than a profile of ``params/``."""
    text = str(name_or_path)
    return text.endswith((".yaml", ".yml")) or os.sep in text


def resolve_profile_path(name_or_path: str | os.PathLike) -> Path:
    """A profile name (``cpu-demo``) → ``params/cpu-demo.yaml``; a path stays a path."""
    text = str(name_or_path)
    if is_profile_path(text):
        path = Path(text).expanduser()
        if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
            path = REPO_ROOT / path
    else:
        path = PARAMS_DIR / f"{text}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PARAMS_DIR.glob("*.yaml"))
        raise ParamsError(f"{text}: no such profile (file {path}); known profiles: {known}")
    return path


def _expand_path(path: str | None) -> str | None:
    if path is None:
        return None
    expanded = os.path.expanduser(os.path.expandvars(path))
    if not os.path.isabs(expanded) and (REPO_ROOT / expanded).exists():
        expanded = str(REPO_ROOT / expanded)
    return expanded


def check_dataset_path(profile: Profile) -> Profile:
    """Raise :class:`ParamsError` naming file and key when the dataset path is missing.

    The demo kind needs no path (it is generated); a folder where the kind reads one file
    (Flan-mini, ShareGPT), or a file where it reads a folder (NIV2), is refused too: the path
    shape of each kind is on its catalog entry (:data:`zsg_lib.data.DATASETS`). Call this
    before any work; it is what :func:`load_profile` does unless told ``check_paths=False``.
    """
    ds = profile.dataset
    spec = DATASETS[ds.kind]
    if spec.path == "none":
        return profile
    if ds.path is None:
        raise ParamsError(
            f"{profile.source}: dataset.path: kind {ds.kind!r} needs a path "
            "(set it in the file or override dataset.path)"
        )
    path = Path(ds.path)
    if not path.exists():
        raise ParamsError(f"{profile.source}: dataset.path: {ds.path!r} does not exist")
    if spec.path == "file" and path.is_dir():
        raise ParamsError(f"{profile.source}: dataset.path: {ds.path!r} is a folder; kind "
                          f"{ds.kind!r} reads {spec.reads}: give the file's path")
    if spec.path == "folder" and not path.is_dir():
        raise ParamsError(f"{profile.source}: dataset.path: {ds.path!r} is a file; kind "
                          f"{ds.kind!r} reads {spec.reads}: give the folder's path")
    options = {o: getattr(ds, o) for o in spec.options}
    for part in spec.layout:
        inside = part.format(**options)
        if (path / inside).exists():
            continue
        parent = path / part.split("{")[0]  # e.g. splits/, where the option picks a folder
        option = next((o for o in spec.options if f"{{{o}}}" in part), None)
        if option is not None and parent != path and parent.is_dir():
            there = sorted(p.name for p in parent.iterdir() if p.is_dir())
            raise ParamsError(f"{profile.source}: dataset.{option}: {options[option]!r} gives "
                              f"no {inside} in {ds.path!r} (folders there: "
                              f"{', '.join(there) or 'none'})")
        raise ParamsError(f"{profile.source}: dataset.path: {ds.path!r} has no {inside}; "
                          f"kind {ds.kind!r} reads {spec.reads}")
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
    _check_query_split(profile)


def _check_query_split(profile: Profile) -> None:
    """``split.query_per_task`` leaves every test task a query and an evaluation instance
    (as far as the profile says: a task with fewer than ``test_per_task`` instances is
    checked where the data is loaded, :func:`zsg_lib.study.experiment.load_split`), on data
    with tasks.

    >>> load_profile("tiny", {"split.query_per_task": 3})
    Traceback (most recent call last):
    ...
    zsg_lib.errors.ParamsError: params/tiny.yaml (overrides): split.query_per_task: 3 query instances of each test task's test_per_task=3 leave no evaluation instance; at most 2
    """
    src, n = profile.source, profile.split.query_per_task
    if n is None:
        return
    if n < 1:
        raise ParamsError(f"{src}: split.query_per_task: must be at least 1 (the instances "
                          f"arrangements may read), got {n}; null for no split")
    if not profile.has_tasks:
        raise ParamsError(f"{src}: split.query_per_task: dataset.kind "
                          f"{profile.dataset.kind!r} has no tasks to split into query and "
                          "evaluation instances; leave it null")
    if n >= profile.test_per_task:
        raise ParamsError(f"{src}: split.query_per_task: {n} query instances of each test "
                          f"task's test_per_task={profile.test_per_task} leave no evaluation "
                          f"instance; at most {profile.test_per_task - 1}")


def _check_windows(profile: Profile) -> None:
    """Turn windows start at round 0 or later. (Whether a round exists depends on the data:
    :func:`zsg_lib.study.experiment.run_window` checks that before any window trains.)"""
    for i, start in enumerate(profile.tma.window_starts):
        if start < 0:
            raise ParamsError(f"{profile.source}: tma.window_starts[{i}]: rounds count from 0, "
                              f"got {start}")


def _check_probes(profile: Profile) -> None:
    """The ``probes:`` section on its own: known designs, listed once (``random`` is the
    control, counted by ``probes.random``), positive counts, a candidate pool that holds a
    batch, targets listed once. What the section asks of the runs (a batch, the schedule) is
    checked by :func:`check_probes`, for the probes chapter only, so a profile's other chapters
    never stop on it; whether the data has the targets and the labels is decided where the
    split is loaded (:func:`zsg_lib.study.probes.check_probe_data`).

    >>> load_profile("tiny", {"probes.designs": ["nearest"]})
    Traceback (most recent call last):
    ...
    zsg_lib.errors.ParamsError: params/tiny.yaml (overrides): probes.designs[0]: unknown design 'nearest'; ...
    """
    src, pp = profile.source, profile.probes
    for i, name in enumerate(pp.designs):
        if name == "random":
            raise ParamsError(f"{src}: probes.designs[{i}]: 'random' is the control every "
                              "design is compared with; set how many random batches with "
                              "probes.random")
        if name not in DESIGNS:
            known = ", ".join(d for d in DESIGNS if d != "random")
            raise ParamsError(f"{src}: probes.designs[{i}]: unknown design {name!r}; known: "
                              f"{known}")
        if name in pp.designs[:i]:
            raise ParamsError(f"{src}: probes.designs[{i}]: {name!r} is listed twice")
    for i, name in enumerate(pp.targets or ()):
        if name in pp.targets[:i]:
            raise ParamsError(f"{src}: probes.targets[{i}]: task {name!r} is listed twice")
    if pp.targets is not None and not pp.targets:
        raise ParamsError(f"{src}: probes.targets: empty; list test tasks, or null for all")
    counts = {"probes.replicates": pp.replicates, "probes.random": pp.random,
              "probes.candidates": pp.candidates, "probes.steps": pp.steps}
    if pp.others_per_task is not None:
        counts["probes.others_per_task"] = pp.others_per_task
    for key, value in counts.items():
        if value <= 0:
            raise ParamsError(f"{src}: {key}: must be positive, got {value}")


def _validate(profile: Profile) -> Profile:
    """The checks across keys (each value's own checks ran when it was built)."""
    src = profile.source
    # First the runs' own settings: the top-level model/precision meet train: here (e.g.
    # qlora needs 4bit, 4bit cannot be fully fine-tuned), whatever the chapters ask.
    try:
        profile.run_config(profile.seeds[0] if profile.seeds else 0)
    except FieldError as exc:
        key = exc.key if exc.key in _SET_ELSEWHERE else f"train.{exc.key}"
        raise ParamsError(f"{src}: {key}: {exc.reason}") from None
    for key in COMPARISONS:
        for i, name in enumerate(getattr(profile.chapters, key)):
            if name not in ARRANGEMENT_NAMES:
                raise ParamsError(
                    f"{src}: chapters.{key}[{i}]: unknown arrangement {name!r}; "
                    f"known: {', '.join(ARRANGEMENT_NAMES)}"
                )
            if ARRANGEMENTS[name].features == "gradient" and profile.train.method == "full":
                raise ParamsError(f"{src}: chapters.{key}[{i}]: {name!r} orders by LoRA "
                                  "gradient features, but train.method 'full' trains no "
                                  "adapters")
    for key, names in (("generate_for", profile.generate_for),
                       ("attribution.arrangements", profile.attribution.arrangements)):
        for i, name in enumerate(names):
            if name not in ARRANGEMENTS:
                raise ParamsError(f"{src}: {key}[{i}]: unknown arrangement {name!r}; "
                                  f"known: {', '.join(ARRANGEMENT_NAMES)}")
    att = profile.attribution
    if att.steps < 0:
        raise ParamsError(f"{src}: attribution.steps: must be >= 0, got {att.steps}")
    if profile.train.max_steps is not None and att.steps > profile.train.max_steps:
        raise ParamsError(f"{src}: attribution.steps: {att.steps} steps of step-resolved "
                          f"scoring go past the run (train.max_steps="
                          f"{profile.train.max_steps})")
    positive = {
        "attribution.every": att.every,
        "attribution.gradient_dim": att.gradient_dim,
        "train_per_task": profile.train_per_task,
        "test_per_task": profile.test_per_task,
        "tma.budget": profile.tma.budget,
        "tma.window_size": profile.tma.window_size,
        "stats.first_n_steps": profile.stats.first_n_steps,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ParamsError(f"{src}: {key}: must be positive, got {value}")
    window, steps = profile.stats.first_n_steps, profile.train.max_steps
    if steps is not None and window > steps:
        raise ParamsError(f"{src}: stats.first_n_steps: a judging window of {window} "
                          f"steps goes past the comparison (train.max_steps={steps}); set "
                          f"it at most {steps}")
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
    _check_probes(profile)
    return profile


def _check_online(profile: Profile, key: str) -> None:
    """An online arrangement (``online-nft``) listed in ``chapters.<key>`` picks at the
    scoring points after the branch point: its run needs at least one before its last step
    (with none it would be a fixed order chosen from the branch point's scores alone)."""
    listed = [(f"chapters.{key}[{i}]", name)
              for i, name in enumerate(getattr(profile.chapters, key))
              if ARRANGEMENTS[name].online]
    if not listed:
        return
    t, where = profile.train, listed[0][0]
    steps = -(-profile.tma.budget // t.instances_per_step)  # the budget's, as run() trains it
    if t.max_steps is not None:
        steps = min(steps, t.max_steps)
    if t.eval_every >= steps:
        raise ParamsError(f"{profile.source}: train.eval_every: {t.eval_every}, but "
                          f"{where} ({listed[0][1]!r}) picks at the scoring points after the "
                          f"branch point and its run has {steps} steps (tma.budget "
                          f"{profile.tma.budget} / {t.instances_per_step} a step, at most "
                          f"train.max_steps): no scoring point before its end; set "
                          f"train.eval_every below {steps}")


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
    nested: Mapping[str, Any] = {}
    if overrides:
        where = f"{where} (overrides)"
        nested = nest(overrides)
        data = merge(data, nested)
    profile = _build(_clip_to_run(data, nested), where)
    profile = dataclasses.replace(
        profile,
        source=where,
        dataset=dataclasses.replace(profile.dataset, path=_expand_path(profile.dataset.path)),
    )
    _validate(profile)
    if check_paths:
        check_dataset_path(profile)
    return profile


def check_step_resolved(profile: Profile) -> None:
    """Raise before any work when the profile has no step-resolved runs or no adapters to
    take gradient features from (the instance-level chapter needs both)."""
    if profile.attribution.steps == 0:
        raise ParamsError(f"{profile.source}: attribution.steps: 0 means no step-resolved "
                          "scoring; set how many steps after the branch point to score one "
                          "by one")
    if profile.train.method == "full":
        raise ParamsError(f"{profile.source}: train.method: gradient features need trainable "
                          "adapters (lora or qlora), not 'full'")


def check_probes(profile: Profile) -> None:
    """Raise before any work when the profile asks for no probes or leaves nothing to probe:
    no design, no warm-up state to probe from, gradient features without adapters, a
    candidate pool smaller than a batch, more steps than the comparisons' schedule.

    >>> check_probes(load_profile("tiny", {"warmup.steps": 0}))
    Traceback (most recent call last):
    ...
    zsg_lib.errors.ParamsError: params/tiny.yaml (overrides): warmup.steps: 0 leaves no saved state to probe from (probes start from each seed's shared warm-up); set warmup.steps > 0
    """
    src = profile.source
    if not profile.probes.designs:
        raise ParamsError(f"{src}: probes.designs: lists no design, so there is nothing to "
                          "compare with random batches; list at least one of "
                          f"{', '.join(d for d in DESIGNS if d != 'random')}")
    if profile.warmup.steps == 0:
        raise ParamsError(f"{src}: warmup.steps: 0 leaves no saved state to probe from "
                          "(probes start from each seed's shared warm-up); set warmup.steps > 0")
    if "nearest-gradient" in profile.probes.designs and profile.train.method == "full":
        i = profile.probes.designs.index("nearest-gradient")
        raise ParamsError(f"{src}: probes.designs[{i}]: 'nearest-gradient' ranks by LoRA "
                          "gradient features, but train.method 'full' trains no adapters")
    pp, per_step = profile.probes, profile.train.instances_per_step
    if any(d in RANKS for d in pp.designs) and pp.candidates < per_step:
        raise ParamsError(f"{src}: probes.candidates: {pp.candidates} candidates cannot hold "
                          f"a batch of {per_step} (train.batch_size x train.grad_accum); a "
                          "ranked design draws its batch from them")
    if profile.train.max_steps is not None and pp.steps > profile.train.max_steps:
        raise ParamsError(f"{src}: probes.steps: {pp.steps} steps go past the comparisons' "
                          f"schedule after the warm-up (train.max_steps="
                          f"{profile.train.max_steps})")


def chapter_refusal(profile: Profile, chapter: str) -> str | None:
    """The error :func:`check_chapter` raises, as text, or ``None`` when ``chapter`` runs:
    for callers that go on without the chapter (the site's note, the plan, the summary).

    >>> chapter_refusal(load_profile("tiny"), "02_permutations") is None
    True
    >>> chapter_refusal(load_profile("tiny", {"chapters.permutations": []}), "02_permutations")
    'params/tiny.yaml (overrides): chapters.permutations: lists no arrangement, ...'
    """
    try:
        check_chapter(profile, chapter)
    except ParamsError as exc:
        return str(exc)
    return None


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
    spec = CHAPTERS[chapter]
    if spec.key is not None and not profile.arrangements(chapter):
        raise ParamsError(f"{profile.source}: chapters.{spec.key}: lists no arrangement, so "
                          f"chapter {chapter} has nothing to compare; list at least one "
                          f"(default: {', '.join(spec.default)})")
    if spec.step_resolved:
        check_step_resolved(profile)
    if spec.key is not None:
        _check_online(profile, spec.key)
    if spec.probes:
        check_probes(profile)
    if profile.has_tasks:
        return
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
