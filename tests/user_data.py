"""A user's own data, written in each kind's real format, and the tiny profile pointed at it.

The book's tests run every chapter on each dataset kind (``test_chapters_kinds.py``), check
each chapter against each kind before any run (``test_chapter_plan.py``) and follow the
README's "your model and data" lines (``test_readme_own_data.py``). They share these files:

- **flan-mini**: declare-lab's JSON array of ``{"id", "source", "conversations"}`` (the task
  is ``source``; the real file carries no category);
- **p3**: JSON Lines of ``{"inputs", "targets", "task_name"}``;
- **sharegpt**: a JSON array of ``{"id", "conversations": [{"from", "value"}]}``, no tasks;
- **norobots**: JSON Lines of ``{"prompt_id", "messages": [{"role", "content"}], "category"}``;
- **niv2**: the shared NIV2 sample beside the repository (``../shared/data/niv2-sample``),
  real task files with their ``Categories``.

>>> import tempfile
>>> path = write_kind("p3", Path(tempfile.mkdtemp()))
>>> path.name, len(path.read_text().splitlines())
('p3.jsonl', 48)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NIV2_SAMPLE = REPO.parent / "shared" / "data" / "niv2-sample"

#: The kinds a user's own data comes in (the demo is generated, not a user's file).
KINDS = ("niv2", "flan-mini", "p3", "sharegpt", "norobots")
TASKLESS = ("sharegpt", "norobots")

_WORDS = ["river", "stone", "cloud", "lamp", "orange", "violin", "garden", "pencil", "tiger",
          "window", "market", "candle", "forest", "bottle", "mirror", "planet"]

#: Six small tasks: (name, prompt of word w and number n, answer).
_TASKS = [
    ("upper", lambda w, n: f"Write the word {w} in capital letters.", lambda w, n: w.upper()),
    ("reverse", lambda w, n: f"Spell {w} backwards.", lambda w, n: w[::-1]),
    ("first_letter", lambda w, n: f"What is the first letter of {w}?", lambda w, n: w[0]),
    ("length", lambda w, n: f"How many letters are in {w}?", lambda w, n: str(len(w))),
    ("add", lambda w, n: f"What is {n} plus {n + 3}?", lambda w, n: str(2 * n + 3)),
    ("double", lambda w, n: f"Double the number {n}.", lambda w, n: str(2 * n)),
]
PER_TASK = 8


def _items() -> list[tuple[str, int, str, str]]:
    """(task, index, prompt, answer) for every task and instance, in a fixed order."""
    out = []
    for task, prompt, answer in _TASKS:
        for i in range(PER_TASK):
            w, n = _WORDS[(i * 5 + len(task)) % len(_WORDS)], 3 + 7 * i
            out.append((task, i, prompt(w, n), answer(w, n)))
    return out


def records(kind: str) -> list[dict[str, Any]]:
    """The records of a file of ``kind`` (not NIV2: that is a folder of task files)."""
    rows = _items()
    if kind == "flan-mini":
        return [{"id": f"{t}-{i}", "source": f"cot_{t}", "conversations": [
            {"from": "human", "value": q}, {"from": "gpt", "value": a}]} for t, i, q, a in rows]
    if kind == "p3":
        return [{"inputs": q, "targets": a, "task_name": f"{t}_prompt"} for t, i, q, a in rows]
    if kind == "sharegpt":
        return [{"id": f"c{k}", "conversations": [{"from": "human", "value": q},
                                                   {"from": "gpt", "value": a}]}
                for k, (t, i, q, a) in enumerate(rows)]
    if kind == "norobots":
        return [{"prompt_id": f"p{k}", "category": "Brainstorm" if k % 2 else "Rewrite",
                 "messages": [{"role": "user", "content": q},
                              {"role": "assistant", "content": a}]}
                for k, (t, i, q, a) in enumerate(rows)]
    raise ValueError(f"no writer for kind {kind!r}")


def write_kind(kind: str, folder: Path) -> Path:
    """The data path of ``kind`` in ``folder``: a file in the kind's real format, or the
    shared NIV2 sample's folder (read in place)."""
    if kind == "niv2":
        return NIV2_SAMPLE
    folder.mkdir(parents=True, exist_ok=True)
    recs = records(kind)
    if kind in ("p3", "norobots"):  # JSON Lines, as those datasets are dumped
        path = folder / f"{kind}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    else:  # a JSON array, as declare-lab's flan_mini.json and ShareGPT dumps are
        path = folder / f"{kind}.json"
        path.write_text(json.dumps(recs, indent=1), encoding="utf-8")
    return path


def overrides(kind: str, path: Path) -> dict[str, Any]:
    """What a user changes in a copy of the tiny profile to point it at their data, at sizes
    that run a chapter in seconds: the kind, the path, a few tasks (or held-out
    conversations) and one NIV2 positive example."""
    out: dict[str, Any] = {"dataset.kind": kind, "dataset.path": str(path),
                           "split.n_train_tasks": None, "split.n_test_tasks": None,
                           "seeds": [0, 1]}
    if kind == "niv2":  # draws from NIV2's own default split
        out.update({"split.n_train_tasks": 6, "split.n_test_tasks": 3,
                    "dataset.k_positive": 1})
    elif kind in TASKLESS:
        out.update({"split.n_test_instances": 8})
    else:  # six tasks: a seeded split, four to train on and two to test
        out.update({"split.n_test_tasks": 2})
    return out
