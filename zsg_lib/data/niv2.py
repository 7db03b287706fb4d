"""Super-NaturalInstructions (NIV2): ``tasks/<name>.json`` + ``splits/<track>/*_tasks.txt``.

Each instance becomes a two-turn conversation. The user turn is the prompt of the paper's NIV2
setting (Tk-Instruct's "definition + k positive examples" encoding, prompt up to 1024 tokens):

.. code-block:: text

    Definition: <task definition>

    Positive Example 1 -
    Input: <example input>
    Output: <example output>

    Now complete the following example -
    Input: <instance input>
    Output:

and the assistant turn is the instance's first reference output. All references are kept in
``metadata["references"]`` (NIV2 scores against the best of them). Task files are small and
read whole; Python's ``json`` accepts the ``NaN`` some NIV2 files contain.

>>> from pathlib import Path
>>> root = Path(__file__).resolve().parents[3] / "shared" / "data" / "niv2-sample"
>>> if root.is_dir():  # the sample exists in CI; a user's clone does not have it
...     train, test = niv2_split(root)
...     t = load_niv2(root, tasks=test[:1], instances_per_task=2)
...     assert t.num_rows == 2 and t.column("task").to_pylist() == test[:1] * 2
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import DataError, where
from ..schema import INSTANCE_SCHEMA, validate_instances
from .jsonfiles import as_path
from .source_records import IdSet, blank, record_id, require
from .split import TaskList, check_count, check_task_names, read_task_list

SOURCE = "niv2"


def _check_root(root: Path) -> Path:
    """``root`` when it is a folder; DataError saying what it is otherwise."""
    if root.is_file():
        raise DataError(f"{root}: is a file, expected the NIV2 folder (with tasks/ and splits/)")
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected the NIV2 folder with tasks/ and "
                        "splits/)")
    return root


def task_path(root: Path, name: str) -> Path:
    """``tasks/<name>.json``, checked to be a file (DataError naming the path otherwise)."""
    path = root / "tasks" / f"{name}.json"
    if path.is_dir():
        raise DataError(f"task {name!r}: {path} is a folder, expected a file (the task's JSON)")
    if not path.is_file():
        raise DataError(f"task {name!r}: {path} does not exist")
    return path


def _check_track(track: Any) -> str:
    """``track`` when it names one folder under ``splits/`` (DataError otherwise)."""
    if not isinstance(track, str) or not track.strip() or "/" in track or "\\" in track:
        raise DataError(f"track={track!r}: expected the name of a folder under splits/, "
                        "e.g. 'default' or 'xlingual'")
    return track


def niv2_split(root: str | Path, track: str = "default") -> tuple[TaskList, TaskList]:
    """The track's ``(train_tasks, test_tasks)`` from ``splits/<track>/``.

    A split file naming a task with no ``tasks/<name>.json``, a task listed twice in one
    file, or a task on both sides, is a :class:`DataError` naming the split file, the line
    and the task. The lists are :class:`~zsg_lib.data.split.TaskList` objects: they remember
    their file, so :func:`~zsg_lib.data.split_tasks` names it too.
    """
    root = _check_root(as_path(root, "root"))
    split_dir = root / "splits" / _check_track(track)
    sides = []
    for side in ("train", "test"):
        path = split_dir / f"{side}_tasks.txt"
        names = read_task_list(path)
        for entry, (name, line_no) in enumerate(zip(names, names.lines), start=1):
            task = root / "tasks" / f"{name}.json"
            if not task.is_file():
                what = "is a folder, expected a file" if task.is_dir() else "does not exist"
                raise DataError(f"{path}: entry {entry} (line {line_no}) names task {name!r}, "
                                f"but {task} {what}")
        sides.append(names)
    train, test = sides
    overlap = sorted(set(train) & set(test))
    if overlap:
        name = overlap[0]
        raise DataError(f"{split_dir}: task(s) {overlap} are in both train and test ({name!r} "
                        f"is at {train.where(name)} and {test.where(name)}); a task may be on "
                        "one side only: remove it from one of the files")
    return train, test


def _text(value: Any, loc: tuple, field: str, what: str | None = None) -> str:
    """``value`` checked to be a string; with ``what``, also not blank (then ``what`` says
    what belongs there)."""
    if not isinstance(value, str):
        raise DataError(f"{where(*loc, field)}: expected string, got {type(value).__name__}")
    problem = blank(value) if what else None
    if problem:
        raise DataError(f"{where(*loc, field)}: {problem}; expected {what}")
    return value


def _outputs(value: Any, loc: tuple, field: str) -> list[str]:
    """NIV2 outputs are a list of strings (positive examples sometimes have a bare string);
    the first one becomes the response, so it must not be blank."""
    outs = [value] if isinstance(value, str) else value
    if not isinstance(outs, list) or not outs:
        raise DataError(f"{where(*loc, field)}: expected a non-empty list of strings")
    for j, o in enumerate(outs):
        _text(o, loc, f"{field}[{j}]", "the reference output" if j == 0 else None)
    return outs


def _definition(data: Any, path: Path) -> str:
    """The task's ``Definition`` (a string or a list of strings, joined), not blank."""
    head = (path, None, None)
    defs = require(data, "Definition", (list, str), head)
    if isinstance(defs, list) and not defs:
        raise DataError(f"{where(path, None, None, 'Definition')}: empty list; expected the "
                        "task's definition text (a string, or a list of strings)")
    parts = [defs] if isinstance(defs, str) else [
        _text(d, head, f"Definition[{j}]") for j, d in enumerate(defs)]
    definition = " ".join(parts)
    problem = blank(definition)
    if problem:
        raise DataError(f"{where(path, None, None, 'Definition')}: {problem}; expected the "
                        "task's definition text")
    return definition


def build_prompt(definition: str, examples: Sequence[tuple[str, str]], text: str) -> str:
    """The NIV2 prompt: definition, positive examples, then the instance input.

    >>> print(build_prompt("Add.", [("1 1", "2")], "2 3"))
    Definition: Add.
    <BLANKLINE>
    Positive Example 1 -
    Input: 1 1
    Output: 2
    <BLANKLINE>
    Now complete the following example -
    Input: 2 3
    Output:
    """
    parts = [f"Definition: {definition}"]
    for i, (inp, out) in enumerate(examples, start=1):
        parts.append(f"Positive Example {i} -\nInput: {inp}\nOutput: {out}")
    parts.append(f"Now complete the following example -\nInput: {text}\nOutput:")
    return "\n\n".join(parts)


def task_rows(path: Path, k_positive: int = 2, limit: int | None = None,
              ids: IdSet | None = None) -> Iterator[dict[str, Any]]:
    """Yield schema rows for one task file."""
    task = path.stem
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                        f"{exc.msg}") from None
    head = (path, None, None)
    definition = _definition(data, path)
    examples = []
    for j, ex in enumerate(require(data, "Positive Examples", list, head)[:k_positive]):
        loc = (path, j, None)
        field = f"Positive Examples[{j}]"
        if not isinstance(ex, dict):
            raise DataError(f"{where(path, None, None, field)}: expected an object")
        examples.append((_text(ex.get("input"), loc, f"{field}.input", "the example input"),
                         _outputs(ex.get("output"), loc, f"{field}.output")[0]))
    instances = require(data, "Instances", list, head)
    if not instances:
        raise DataError(f"{where(path, None, None, 'Instances')}: no instances")
    ids = ids if ids is not None else IdSet()
    meta_head = {"categories": data.get("Categories", []), "k_positive": len(examples)}
    for index, inst in enumerate(instances[:limit] if limit else instances):
        rid = record_id(inst, path, index)
        ids.add(rid, path, index)
        loc = (path, index, rid)
        text = _text(inst.get("input"), loc, "input", "the instance input")
        refs = _outputs(inst.get("output"), loc, "output")
        prompt = build_prompt(definition, examples, text)
        yield {
            "id": rid,
            "task": task,
            "messages": [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": refs[0]}],
            "source": SOURCE,
            "metadata": json.dumps({**meta_head, "references": refs}, ensure_ascii=False),
        }


def load_niv2(
    root: str | Path,
    track: str = "default",
    k_positive: int = 2,
    tasks: Sequence[str] | None = None,
    instances_per_task: int | None = None,
) -> pa.Table:
    """Load NIV2 tasks as an instance table (train tasks first, then test tasks).

    ``tasks=None`` loads every task named by the track's split files; otherwise the named
    tasks (a list of distinct names), which must exist under ``tasks/``.
    ``instances_per_task`` keeps the first n instances of each task (file order), ``None``
    keeps all.
    """
    root = _check_root(as_path(root, "root"))
    k_positive = check_count(k_positive, "k_positive", minimum=0)
    if instances_per_task is not None:
        instances_per_task = check_count(instances_per_task, "instances_per_task")
    if tasks is None:
        train, test = niv2_split(root, track)
        tasks = train + test
    tasks = check_task_names(tasks, "tasks")
    ids = IdSet()
    rows: list[dict[str, Any]] = []
    for name in tasks:
        path = task_path(root, name)
        rows.extend(task_rows(path, k_positive, instances_per_task, ids))
    if not rows:
        raise DataError(f"{root}: no tasks selected")
    cols = {n: [r[n] for r in rows] for n in INSTANCE_SCHEMA.names}
    return validate_instances(pa.Table.from_pydict(cols, schema=INSTANCE_SCHEMA), str(root))
