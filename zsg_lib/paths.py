"""Where zsg keeps caches and run records.

Everything derived (Parquet caches, embeddings, the demo suite, run records) lives under one
root: ``$ZSG_HOME`` if set, else ``.cache/zsg`` under the current directory. Deleting it is
always safe; it is rebuilt on demand.

>>> import os; os.environ["ZSG_HOME"] = "/tmp/zsg-doctest"
>>> str(cache_dir("embeddings"))
'/tmp/zsg-doctest/embeddings'
>>> del os.environ["ZSG_HOME"]
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root of this checkout (``params/``, ``book/`` and ``_config.yml`` live here).
REPO_ROOT = Path(__file__).resolve().parent.parent


def zsg_home() -> Path:
    """The root of every cache and run record."""
    # An empty ZSG_HOME counts as unset: Path("") would silently mean the current folder.
    home = os.environ.get("ZSG_HOME") or Path.cwd() / ".cache" / "zsg"
    return Path(home).resolve()


def cache_dir(kind: str) -> Path:
    """A sub-folder of :func:`zsg_home` for one kind of artefact (not created)."""
    return zsg_home() / kind
