"""The project's exception types.

Every error raised on bad input is a :class:`ZsgError`, so callers (notebooks, the batch
runner, tests) can catch one type. Messages name *where* the problem is: the file, the record
(index and id) and the field, so a user can open the file and fix it.
"""

from __future__ import annotations

from pathlib import Path


class ZsgError(ValueError):
    """Base class of every error zsg raises on bad input or bad configuration."""


class DataError(ZsgError):
    """A dataset file, record or split is malformed."""


class DataWarning(UserWarning):
    """Something in the data was repaired on the way in (e.g. a corrupt cache rebuilt)."""


class ArrangementError(ZsgError):
    """An arrangement cannot be computed from the given embeddings or instances."""


class TrainError(ZsgError):
    """A training or evaluation run cannot start (bad model, bad order, incompatible run dir)."""


class ParamsError(ZsgError):
    """A parameter file or parameter value is invalid."""


def where(
    file: str | Path | None = None,
    index: int | None = None,
    record_id: object = None,
    field: str | None = None,
) -> str:
    """Format a location for an error message.

    >>> where("data.json", 3, "r3", "conversations")
    "data.json: record 3 (id 'r3'), field 'conversations'"
    """
    parts: list[str] = []
    head = str(file) if file is not None else ""
    if index is not None:
        rec = f"record {index}"
        if record_id is not None:
            rec += f" (id {record_id!r})"
        parts.append(rec)
    if field is not None:
        parts.append(f"field {field!r}")
    body = ", ".join(parts)
    if head and body:
        return f"{head}: {body}"
    return head or body
