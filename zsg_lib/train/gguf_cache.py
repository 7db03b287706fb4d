"""The embedded GGUF model dequantized once: a safetensors copy in ``cache_dir("models")``.

Transformers dequantizes a GGUF file on every load (~20 s for SmolLM2-135M here).
:func:`load_gguf` does it once, keyed by the file's hash, the transformers version and the
precision, writes the result atomically (weights last: a folder with its weights is complete)
and loads that copy afterwards — the same weights bit for bit. :func:`zsg_lib.quiet.quiet_loading` keeps
the loading bars out of executed notebooks.

>>> gguf_cache_key.__name__, DTYPES["bf16"]
('gguf_cache_key', torch.bfloat16)
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path
from ..errors import TrainError
from ..paths import cache_dir
from ..quiet import quiet_loading
from .config import Precision

# 4bit: the layers bitsandbytes leaves unquantized (embeddings, norms, LM head) stay fp32
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "4bit": torch.float32}
GGUF_CACHE_KIND = "models"
GGUF_CACHE_FORMAT = 1  # bump when what is written changes
WEIGHTS_FILE = "model.safetensors"


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, memoised per process while its size and mtime stay the same.

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "f"; _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:12]
    'ba7816bf8f01'
    """
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def gguf_cache_key(gguf_path: str | os.PathLike, precision: Precision) -> dict[str, Any]:
    """What the dequantised weights depend on: the file's bytes, the converter, the dtype.

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "m.gguf"; _ = p.write_bytes(b"x")
    >>> sorted(gguf_cache_key(p, "fp32"))
    ['format', 'gguf_sha256', 'precision', 'transformers']
    """
    import transformers

    return {"gguf_sha256": file_sha256(gguf_path), "transformers": transformers.__version__,
            "precision": precision, "format": GGUF_CACHE_FORMAT}


def gguf_cache_dir(gguf_path: str | os.PathLike, precision: Precision,
                   root: str | os.PathLike | None = None) -> Path:
    """The cache folder of one GGUF file at one precision (``<stem>-<precision>-<digest>``).

    ``root`` defaults to ``cache_dir("models")``; any change of the key is a new folder.
    """
    key = gguf_cache_key(gguf_path, precision)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(root) if root is not None else cache_dir(GGUF_CACHE_KIND)
    return root / f"{Path(gguf_path).stem}-{precision}-{digest}"


def unmark_quantized(model: Any) -> None:
    # GGUF weights arrive dequantised into plain fp32/bf16 layers; dropping the "quantized"
    # marks lets transformers' Trainer (and so TRL) train the model, and lets it be saved.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _dequantize(gguf_path: Path, precision: Precision) -> tuple[Any, Any]:
    """The direct path: transformers reads and dequantises the GGUF file (slow)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": gguf_path.name}
    # transformers warns that packed GGUF weights run fastest in fp32 before it finds that
    # it has no GGUF kernels here and dequantises every layer: advice that does not apply
    gguf_log = logging.getLogger("transformers.quantizers.quantizer_gguf")
    level = gguf_log.level
    gguf_log.setLevel(logging.ERROR)
    try:
        with quiet_loading():
            tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kw)
            model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), **kw,
                                                         dtype=DTYPES[precision])
    finally:
        gguf_log.setLevel(level)
    unmark_quantized(model)
    return model, tok


def _read_cached(folder: Path, precision: Precision) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_loading():
        tok = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=DTYPES[precision])
    unmark_quantized(model)
    return model, tok


def _write_cached(folder: Path, model: Any, tok: Any) -> None:
    """Stage with transformers' own writer, then publish file by file with atomic renames,
    the weights last: a folder with its weights file is complete, whoever wrote it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".stage-{folder.name}-"))
    try:
        with quiet_loading():  # save_pretrained draws a bar of its own
            model.save_pretrained(str(stage), safe_serialization=True)
            tok.save_pretrained(str(stage))
        names = sorted(p.name for p in stage.iterdir() if p.is_file())
        if WEIGHTS_FILE not in names:  # e.g. sharded: never publish what we cannot read back
            raise OSError(f"save_pretrained wrote no {WEIGHTS_FILE} ({names})")
        for name in [n for n in names if n != WEIGHTS_FILE] + [WEIGHTS_FILE]:
            with atomic_path(folder / name) as tmp:
                os.replace(stage / name, tmp)  # same file system: a rename, no copy
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def load_gguf(gguf_path: str | os.PathLike, precision: Precision = "fp32",
              cache: bool = True) -> tuple[Any, Any]:
    """A GGUF model dequantised to ``precision`` (fp32 or bf16) and its tokenizer, on CPU.

    The first call dequantises and writes the cache (:func:`gguf_cache_dir`); later calls,
    in any process, read the safetensors back. A cache that cannot be read is rebuilt and
    one that cannot be written only costs a warning: the weights are the same either way.
    """
    path = Path(gguf_path)
    if precision not in ("fp32", "bf16"):
        raise TrainError(f"load_gguf: precision {precision!r}: use 'fp32' or 'bf16'")
    if not cache:
        return _dequantize(path, precision)
    folder = gguf_cache_dir(path, precision)
    if (folder / WEIGHTS_FILE).is_file():
        try:
            return _read_cached(folder, precision)
        except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt, never fatal
            warnings.warn(f"{folder}: unreadable model cache ({exc}); rebuilding it",
                          stacklevel=2)
            shutil.rmtree(folder, ignore_errors=True)
    model, tok = _dequantize(path, precision)
    try:
        _write_cached(folder, model, tok)
    except OSError as exc:
        warnings.warn(f"{folder}: could not cache the dequantised model ({exc})", stacklevel=2)
    return model, tok


def cached_folder(gguf_path: str | os.PathLike, precision: Precision = "fp32") -> Path | None:
    """The cache folder of the dequantised weights (:func:`gguf_cache_dir`), written first
    when absent; ``None`` when it cannot be written. For loaders that read a folder (the
    4-bit quantizer reads the fp32 weights from here instead of dequantising the GGUF again).
    """
    folder = gguf_cache_dir(gguf_path, precision)
    if not (folder / WEIGHTS_FILE).is_file():
        load_gguf(gguf_path, precision)
    return folder if (folder / WEIGHTS_FILE).is_file() else None
