"""Frozen dataclasses from plain mappings (YAML, JSON, keyword arguments), checked against
their annotations: the one type checker behind every typed configuration in zsg.

:func:`coerce` checks one value against an annotation and returns it in canonical form (a
list becomes a tuple, an int given for a float becomes a float, a numeric string read by
PyYAML from ``2e-4`` becomes a float); :func:`build` does so for every key of a mapping and
constructs the dataclass. Problems raise :class:`FieldError`, which carries the dotted key and
the reason, so each caller can say *where* in its own words (a profile file, ``TrainConfig``).

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Point:
...     x: float = 0.0
...     tags: tuple[str, ...] = ()
>>> build(Point, {"x": 1, "tags": ["a"]})
Point(x=1.0, tags=('a',))
>>> build(Point, {"y": 1})
Traceback (most recent call last):
...
zsg_lib.typed.FieldError: y: unknown key; known keys: x, tags
>>> coerce("fast", float, "lr")
Traceback (most recent call last):
...
zsg_lib.typed.FieldError: lr: expected float, got 'fast'

A float must be finite (NaN and infinity, from YAML ``.nan``/``.inf`` or the strings ``nan``
and ``inf``, are refused) unless its annotation allows them, ``Annotated[float,
NON_FINITE]``:

>>> coerce(float("nan"), float, "stats.alpha")
Traceback (most recent call last):
...
zsg_lib.typed.FieldError: stats.alpha: expected a finite float, got nan
>>> coerce("inf", Annotated[float, NON_FINITE], "bound")
inf
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

#: Marks a float field that may hold NaN or infinity: ``Annotated[float, NON_FINITE]``.
NON_FINITE = "non-finite allowed"


class FieldError(ValueError):
    """A value that does not fit its field: ``key`` (dotted) and ``reason``."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


def type_name(tp: Any) -> str:
    """A reader's name for an annotation (``'a' | 'b'``, ``list of int``, ``float | null``).

    >>> type_name(tuple[int, ...]), type_name(int | None)
    ('list of int', 'int | null')
    """
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return type_name(typing.get_args(tp)[0])
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list of {type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in canonical form."""

    def bad(expected: str | None = None) -> FieldError:
        return FieldError(key, f"expected {expected or type_name(tp)}, got {value!r}")

    origin = typing.get_origin(tp)
    if origin is Annotated:
        inner, *extras = typing.get_args(tp)
        if inner is float and NON_FINITE in extras:
            return _float(value, bad)
        return coerce(value, inner, key)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except FieldError:
                pass
        others = [a for a in args if a is not type(None)]
        if len(others) < len(args):  # optional: name what the value should be, then null
            raise FieldError(key, f"expected {' | '.join(type_name(a) for a in others)}, "
                                  f"got {value!r} (or null)")
        raise bad()
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad(f"one of {', '.join(repr(a) for a in typing.get_args(tp))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad()
        inner = typing.get_args(tp)[0]
        return tuple(coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise bad("a mapping of " + ", ".join(f.name for f in dataclasses.fields(tp)))
        return build(tp, value, key + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        number = _float(value, bad)
        if not math.isfinite(number):
            raise bad("a finite float")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if tp is dict:
        if not isinstance(value, Mapping):
            raise bad("a mapping")
        return dict(value)
    raise bad()  # pragma: no cover - every annotation above is handled


def _float(value: Any, bad: typing.Callable[..., FieldError]) -> float:
    """``value`` as a float (ints and numeric strings too; bools are not numbers here)."""
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


def init_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The fields a mapping may set (``init`` fields, without the bookkeeping ``source``)."""
    return {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "source"}


def build(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """``cls(**data)`` with every key known and every value checked (keys named with
    ``prefix``). A ``FieldError`` raised by the class's own checks gets the prefix too."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = init_fields(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise FieldError(prefix + str(key), f"unknown key; known keys: {', '.join(fields)}")
        kwargs[key] = coerce(value, hints[key], prefix + key)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise FieldError(prefix + missing[0], "required key is missing")
    try:
        return cls(**kwargs)
    except FieldError as exc:
        if not prefix:
            raise
        raise FieldError(prefix + exc.key, exc.reason) from None


def check_fields(obj: Any) -> dict[str, Any]:
    """The canonical value of every field of the dataclass instance ``obj`` (for a
    ``__post_init__`` that checks direct construction as strictly as :func:`build`)."""
    hints = typing.get_type_hints(type(obj), include_extras=True)
    return {name: coerce(getattr(obj, name), hints[name], name)
            for name in init_fields(type(obj))}
