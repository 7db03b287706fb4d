"""The embedded default data: a demo suite of small related tasks, generated offline.

The suite has 125 tasks in 18 families (see :mod:`zsg_lib.data.demo_tasks`): CLDR names
(countries, languages, currencies, dates, weekdays) translated between language pairs, numbers
and ordinals to words and back (num2words), number/date/currency formatting across locales,
arithmetic, string edits, list operations, yes/no classification, language identification,
country facts and numeral systems. Each task uses 3 of its family's instruction templates,
chosen per task, with the task's own fields (language pair, locale...) filled in, and has
``instances_per_task`` (default 50) distinct instances of roughly 10–40 tokens.

Generation is deterministic: the same seed (and Babel/num2words versions) gives a
byte-identical JSON file. The file is written in Flan-mini's JSON format (``source`` = task)
and read back through :func:`~zsg_lib.data.load_flan_mini`, the same path as real data.

**Default split** (:data:`TEST_TASKS`): 25 test tasks, 100 training tasks, the same for
every seed (the seed changes the instances, not which tasks are held out).

- 16 test tasks have close relatives in training: one held-out task per family, e.g.
  ``month_names_en_fr`` is held out while ``month_names_en_de`` (same family) and
  ``country_names_en_fr`` (same language pair) are trained on.
- 9 test tasks have no relative: the families ``country_facts`` and ``numeral_systems``
  are held out whole.

A task's *relatives* are the training tasks of its family, plus training tasks of other
families with the same language pair, language or locale. ``DemoData.families`` lists every
task with its family, split, relatives and an example, for the book to show.

>>> import tempfile
>>> demo = demo_dataset(cache_dir=tempfile.mkdtemp())
>>> demo.table.num_rows, len(demo.train_tasks), len(demo.test_tasks)
(6250, 100, 25)
>>> row = demo.families.set_index("task").loc["month_names_en_fr"]
>>> row.split, bool(row.has_relative), "month_names_en_de" in row.relatives
('test', True, True)
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..atomic import atomic_write_bytes
from ..paths import cache_dir as default_cache_dir
from .demo_tasks import TaskSpec, all_specs
from .flan_mini import load_flan_mini
from .split import TaskSplit, split_tasks

#: Bump when the generated content changes, so a cached file is not reused.
DEMO_VERSION = 1
TEMPLATES_PER_TASK = 3

#: Held-out tasks with close relatives among the training tasks (one per family).
TEST_WITH_RELATIVES: tuple[str, ...] = (
    "country_names_en_it",
    "language_names_fr_en",
    "currency_names_en_es",
    "month_names_en_fr",
    "weekday_names_en_de",
    "number_words_fr",
    "ordinal_words_de",
    "words_to_numbers_es",
    "number_format_de_DE",
    "date_format_long_fr_FR",
    "currency_format_ja_JP_JPY",
    "arith_multiply",
    "string_remove_vowels",
    "list_sort_descending",
    "classify_prime",
    "language_id_month",
)
#: Families held out whole: their test tasks have no relative in training.
HELD_OUT_FAMILIES: tuple[str, ...] = ("country_facts", "numeral_systems")
#: The default test tasks.
TEST_TASKS: tuple[str, ...] = TEST_WITH_RELATIVES + tuple(
    s.name for s in all_specs() if s.family in HELD_OUT_FAMILIES
)


@dataclass(frozen=True)
class DemoData:
    """The demo suite: instances, the default split, the task table and the JSON file."""

    table: pa.Table
    train_tasks: tuple[str, ...]
    test_tasks: tuple[str, ...]
    families: pd.DataFrame
    path: Path

    def split(self) -> TaskSplit:
        """The default train/test split of :attr:`table`."""
        return split_tasks(self.table, train_tasks=self.train_tasks, test_tasks=self.test_tasks)


class _Keep(dict):
    """Format mapping that leaves unknown placeholders (the instance slots) in place."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def task_templates(seed: int = 0) -> dict[str, tuple[str, ...]]:
    """The instruction templates each task uses, its own fields filled in (slots kept)."""
    out = {}
    for spec in all_specs():
        rng = random.Random(f"{seed}/{spec.name}/templates")
        chosen = rng.sample(spec.templates, min(TEMPLATES_PER_TASK, len(spec.templates)))
        out[spec.name] = tuple(t.format_map(_Keep(spec.fields)) for t in chosen)
    return out


def demo_records(seed: int = 0, instances_per_task: int = 50) -> list[dict]:
    """Every demo instance as a Flan-mini record, task by task."""
    records = []
    templates = task_templates(seed)
    for spec in all_specs():
        # Seeding by name (str seeds hash with SHA-512) keeps each task independent of others.
        rng = random.Random(f"{seed}/{spec.name}")
        for i, (slots, answer) in enumerate(spec.items(rng, instances_per_task)):
            prompt = rng.choice(templates[spec.name]).format(**slots)
            records.append({
                "id": f"{spec.name}-{i:03d}",
                "source": spec.name,
                "conversations": [{"from": "human", "value": prompt},
                                  {"from": "gpt", "value": answer}],
            })
    return records


def demo_json(seed: int = 0, instances_per_task: int = 50) -> bytes:
    """The suite as Flan-mini JSON bytes: an array with one record per line."""
    lines = [json.dumps(r, ensure_ascii=False) for r in demo_records(seed, instances_per_task)]
    return ("[\n" + ",\n".join(lines) + "\n]\n").encode("utf-8")


def _fingerprint(seed: int, n: int) -> str:
    raw = f"v{DEMO_VERSION}|{version('babel')}|{version('num2words')}|{seed}|{n}"
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def _related(a: TaskSpec, b: TaskSpec) -> bool:
    if a.family == b.family:
        return True
    shared = set(a.fields) & set(b.fields) & {"src", "tgt", "lang", "region"}
    return bool(shared) and all(a.fields[k] == b.fields[k] for k in shared)


#: What a task maps from and to, by family: (kind of mapping, source, output). Decided from
#: the tasks' content: name translations map ``src`` names to ``tgt`` names; number words
#: map digits to words of ``lang`` (cardinal or ordinal) or back; formats write a value in a
#: ``region``'s conventions; the computed families map within themselves.
_NAMES = ("country_names", "language_names", "currency_names", "month_names", "weekday_names")


def mapping(spec: TaskSpec) -> tuple[str, str, str]:
    """``(kind, source, output)`` of a demo task (see ``_NAMES`` above).

    >>> from zsg_lib.data.demo_tasks import all_specs
    >>> by = {s.name: s for s in all_specs()}
    >>> mapping(by["month_names_en_fr"]), mapping(by["words_to_numbers_es"])
    (('names', 'English', 'French'), ('number words', 'Spanish', 'digits'))
    """
    f, fam = spec.fields, spec.family
    if fam in _NAMES:
        return "names", f["src"], f["tgt"]
    if fam in ("number_words", "ordinal_words"):
        return "number words", "digits", f["lang"]
    if fam == "words_to_numbers":
        return "number words", f["lang"], "digits"
    if fam in ("number_format", "date_format", "currency_format"):
        return "format", "value", f["region"]
    return fam, fam, fam


def relation(test: TaskSpec, train: TaskSpec) -> str | None:
    """How a training task relates to a test task, from what each maps:

    * ``helpful``: the same kind of mapping from the same source to the same output language
      or format (e.g. ``weekday_names_en_fr`` for ``month_names_en_fr``);
    * ``mirror``: the same vocabulary the other way round (``month_names_fr_en``,
      ``words_to_numbers_fr`` for ``number_words_fr``): near in embedding space, teaching the
      opposite output;
    * ``sibling``: the same family otherwise (another language pair or region);
    * ``None``: unrelated.

    >>> from zsg_lib.data.demo_tasks import all_specs
    >>> by = {s.name: s for s in all_specs()}
    >>> [relation(by["number_words_fr"], by[t]) for t in
    ...  ("ordinal_words_fr", "words_to_numbers_fr", "number_words_de", "arith_square")]
    ['helpful', 'mirror', 'sibling', None]
    """
    if test.name == train.name:
        return None
    kind, src, out = mapping(test)
    t_kind, t_src, t_out = mapping(train)
    if kind == t_kind and (src, out) == (t_src, t_out):
        return "helpful"
    if kind == t_kind and src != out and (src, out) == (t_out, t_src):
        return "mirror"
    return "sibling" if test.family == train.family else None


def relatives_kind(helpful: list[str], mirror: list[str]) -> str:
    """A test task's kind of relatives: ``helpful + mirror``, ``helpful``, ``mirror only``,
    ``none``."""
    if helpful and mirror:
        return "helpful + mirror"
    if helpful:
        return "helpful"
    return "mirror only" if mirror else "none"


def relatives_of(families: pd.DataFrame, column: str = "relatives") -> dict[str, set[str]]:
    """Task → its relatives, from a task table (:func:`task_table`: ``relatives``, or the
    ``helpful`` or ``mirror`` ones, joined by ", ").

    >>> rel = relatives_of(pd.DataFrame({"task": ["a", "b"], "relatives": ["b, c", ""]}))
    >>> sorted(rel["a"]), rel["b"]
    (['b', 'c'], set())
    """
    return {t: set(filter(None, (r or "").split(", ")))
            for t, r in zip(families["task"], families[column])}


def task_table(table: pa.Table, test_tasks: tuple[str, ...]) -> pd.DataFrame:
    """One row per task: family, split, relatives in training (all of them; the ``helpful``
    and ``mirror`` ones, see :func:`relation`; and the task's ``relatives_kind``), size and
    an example."""
    specs = all_specs()
    train = [s for s in specs if s.name not in test_tasks]
    first = {}
    for task, msgs in zip(table.column("task").to_pylist(),
                          table.column("messages").to_pylist(), strict=True):
        first.setdefault(task, msgs)
    counts = pd.Series(table.column("task").to_pylist()).value_counts()
    rows = []
    for s in specs:
        relatives = [t.name for t in train if t.name != s.name and _related(s, t)]
        kinds = {t.name: relation(s, t) for t in train}
        helpful = [t for t, k in kinds.items() if k == "helpful"]
        mirror = [t for t, k in kinds.items() if k == "mirror"]
        rows.append({
            "task": s.name, "family": s.family,
            "split": "test" if s.name in test_tasks else "train",
            "has_relative": bool(relatives), "relatives": ", ".join(relatives),
            "helpful": ", ".join(helpful), "mirror": ", ".join(mirror),
            "relatives_kind": relatives_kind(helpful, mirror),
            "n_instances": int(counts.get(s.name, 0)),
            "example_prompt": first[s.name][0]["content"],
            "example_response": first[s.name][-1]["content"],
        })
    return pd.DataFrame(rows)


def demo_dataset(cache_dir: str | Path | None = None, seed: int = 0,
                 instances_per_task: int = 50) -> DemoData:
    """Generate (or reuse) the demo suite under ``cache_dir`` and load it.

    ``cache_dir`` defaults to ``$ZSG_HOME/demo``. The JSON file is written atomically and
    reused while the seed, size and package versions are unchanged.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir("demo")
    path = root / f"demo-suite-seed{seed}-{_fingerprint(seed, instances_per_task)}.json"
    if not path.exists():
        atomic_write_bytes(path, demo_json(seed, instances_per_task))
    table = load_flan_mini(path, cache_dir=root / "parquet")
    test = TEST_TASKS
    train = tuple(s.name for s in all_specs() if s.name not in test)
    return DemoData(table, train, test, task_table(table, test), path)
