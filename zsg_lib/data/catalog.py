"""The catalog of dataset kinds: every kind, its loader and what it needs.

This is the one list of dataset kinds, as :mod:`zsg_lib.arrange.catalog` is for arrangements.
:func:`zsg_lib.data.load` dispatches through it, the profile checker reads the path shape a
kind needs from it, the book's glue reads which options a kind takes and whether it carries
task labels. Adding a loader touches the loader and this catalog. It is plain data (functions
by name), so reading it runs no loader code.

=============  ======================================  ======  ===================  ==========
kind           loader (module.function)                path    tasks                own split
=============  ======================================  ======  ===================  ==========
``demo``       ``demo.demo_dataset`` (embedded suite)  none    generated            its default
``flan-mini``  ``flan_mini.load_flan_mini``            file    ``source`` field     none
``niv2``       ``niv2.load_niv2``                      folder  task file name       ``splits/``
``p3``         ``p3.load_p3``                          either  ``task_name``        none
``sharegpt``   ``sharegpt.load_sharegpt``              file    none                 none
``norobots``   ``sharegpt.load_norobots``              either  none (``category``)  none
=============  ======================================  ======  ===================  ==========

>>> DATASETS["niv2"].path, DATASETS["niv2"].options, DATASETS["niv2"].own_split
('folder', ('track', 'k_positive'), 'niv2.niv2_split')
>>> [k for k, d in DATASETS.items() if not d.has_tasks]
['sharegpt', 'norobots']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: What a kind's ``path`` is: one ``file``, one ``folder``, ``either``, or ``none`` (the demo
#: is generated; a path, if given, is the folder it is cached in).
PathShape = Literal["file", "folder", "either", "none"]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset kind: ``loader`` (``module.function`` in :mod:`zsg_lib.data`) called with
    the path and the ``options`` it takes (keys of a profile's ``dataset:`` section, keywords
    of :func:`zsg_lib.data.load`); the ``path`` shape it reads (``reads`` says it in words, for
    messages); whether its instances carry task labels; and its own task split: ``None``,
    ``"loaded"`` (the loader's result carries ``train_tasks`` / ``test_tasks``), or a
    ``module.function`` called with the path and the options it takes, returning
    ``(train_tasks, test_tasks)``."""

    loader: str
    what: str
    path: PathShape
    has_tasks: bool
    reads: str = ""
    own_split: str | None = None
    options: tuple[str, ...] = ()
    #: paths inside a folder ``path`` the loader reads, formatted with the options (checked
    #: before any work, so a profile names what is missing rather than the loader later)
    layout: tuple[str, ...] = ()


DATASETS: dict[str, DatasetSpec] = {
    "demo": DatasetSpec("demo.demo_dataset", "the embedded demo task suite", "none",
                        has_tasks=True, own_split="loaded", options=("seed",)),
    "flan-mini": DatasetSpec("flan_mini.load_flan_mini", "Flan-mini (JSON)", "file",
                             has_tasks=True,
                             reads="one file (a JSON array of records or JSON Lines)"),
    "niv2": DatasetSpec("niv2.load_niv2", "Super-NaturalInstructions v2", "folder",
                        has_tasks=True, reads="a folder (with tasks/ and splits/)",
                        own_split="niv2.niv2_split", options=("track", "k_positive"),
                        layout=("tasks", "splits/{track}/train_tasks.txt",
                                "splits/{track}/test_tasks.txt")),
    "p3": DatasetSpec("p3.load_p3", "P3 (JSON Lines, Parquet or an Arrow folder)", "either",
                      has_tasks=True),
    "sharegpt": DatasetSpec("sharegpt.load_sharegpt", "ShareGPT conversations", "file",
                            has_tasks=False,
                            reads="one file (a JSON array of records or JSON Lines)"),
    "norobots": DatasetSpec("sharegpt.load_norobots", "NoRobots conversations", "either",
                            has_tasks=False),
}

#: Every kind, in the catalog's order.
KINDS: tuple[str, ...] = tuple(DATASETS)
#: The kinds a profile's ``dataset.kind`` may name (checked when a profile is built).
DatasetKind = Literal[KINDS]  # type: ignore[valid-type]  # built from the catalog
