"""The YAML files of profiles and sweeps: one mapping a file, no key given twice, and
dotted overrides (``train.max_steps``) nested and merged over a file's sections.

>>> merge({"train": {"lr": 1, "steps": 2}}, nest({"train.steps": 3}))
{'train': {'lr': 1, 'steps': 3}}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import ParamsError
from ..paths import REPO_ROOT


def relative(path: Path) -> str:
    """``path`` relative to the repository root where it lies inside it (for messages)."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


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
    zsg_lib.profiles.yamlfiles.DuplicateKeyError: b.c: key given twice (lines 2 and 2); keep one of them
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


def nest(overrides: Mapping[str, Any]) -> dict:
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
            node[parts[-1]] = merge(node.get(parts[-1], {}), nest(value))
        else:
            node[parts[-1]] = value
    return out


def merge(base: Any, update: Any) -> Any:
    """``update`` laid over ``base``, section by section (plain values replace)."""
    if isinstance(base, dict) and isinstance(update, dict):
        merged = dict(base)
        for k, v in update.items():
            merged[k] = merge(base.get(k), v)
        return merged
    return update
