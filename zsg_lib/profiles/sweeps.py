"""Sweep files: a grid of profile overrides × chapters, expanded to one validated run each.

The batch runner (:mod:`zsg_lib.cli.batch`) consumes the expansion.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

from ..errors import ParamsError
from ..paths import REPO_ROOT
from .chapters import CHAPTERS
from .params import Profile, check_chapter, load_profile
from .yamlfiles import read_yaml, relative


def load_sweep(path: str | os.PathLike) -> list[dict]:
    """The runs of a sweep file, one parameter dict each (:func:`sweep_members` without the
    loaded profiles).

    >>> runs = load_sweep(REPO_ROOT / "params" / "sweeps" / "similarity-seeds.yaml")
    >>> len(runs), sorted(runs[0])
    (9, ['chapter', 'name', 'overrides', 'profile'])
    """
    return [spec for spec, _ in sweep_members(path)]


def sweep_members(path: str | os.PathLike) -> list[tuple[dict, Profile]]:
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

    Each member pairs its entry with its profile, loaded once here (overrides applied), so the
    batch's ETA counts its runs without loading it again.

    >>> members = sweep_members(REPO_ROOT / "params" / "sweeps" / "similarity-seeds.yaml")
    >>> spec, profile = members[0]
    >>> profile.name == spec["profile"], list(profile.seeds) == spec["overrides"]["seeds"]
    (True, True)
    """
    path = Path(path)
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    if not path.is_file():
        raise ParamsError(f"{path}: no such sweep file")
    where = relative(path)
    data = read_yaml(path)
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
        if chapter not in CHAPTERS:
            raise ParamsError(
                f"{where}: chapters[{i}]: unknown chapter {chapter!r}; known: {', '.join(CHAPTERS)}"
            )
    common = data.get("overrides") or {}
    grid = data.get("grid") or {}
    for key, val in (("overrides", common), ("grid", grid)):
        if not isinstance(val, dict):
            raise ParamsError(f"{where}: {key}: expected a mapping")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ParamsError(f"{where}: grid.{key}: expected a non-empty list of values")

    runs: list[tuple[dict, Profile]] = []
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
            runs.append(({
                "name": f"{chapter}--{label}" if label else chapter,
                "chapter": chapter,
                "profile": profile,
                "overrides": overrides,
            }, prof))
    names = [r["name"] for r, _ in runs]
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
