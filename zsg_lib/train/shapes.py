"""A model's shape and tokenizer without its weights: what ``zsg plan`` needs to cost a run.

:func:`model_config` reads the configuration the way :func:`~zsg_lib.train.models.load_model`
would find the model — the embedded GGUF file's metadata, a local folder's ``config.json``,
the Hugging Face cache for an id (never the network), or :data:`KNOWN_CONFIGS` for a few
published ids — and :func:`shape_of` builds the model on PyTorch's ``meta`` device (shapes, no
memory) to count its parameters exactly. :func:`load_tokenizer` loads only the tokenizer.

>>> from zsg_lib.train.models import load_model
>>> shape = shape_of(model_config("tiny")[0])
>>> shape.n_total == sum(p.numel() for p in load_model("tiny")[0].parameters())
True
>>> shape.lora_per_rank == 2 * sum(i + o for i, o in shape.layer_linears)  # two layers
True
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import TrainError
from .cost import ModelShape

#: Published configurations of ids the profiles name, for planning without the files (the
#: values of the ids' own config.json).
_LLAMA2_7B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
              "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
              "vocab_size": 32000, "tie_word_embeddings": False,
              "max_position_embeddings": 4096}
KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    "meta-llama/Llama-2-7b-hf": _LLAMA2_7B,
    "meta-llama/Llama-2-7b-chat-hf": _LLAMA2_7B,
}


class ShapeUnknown(TrainError):
    """The model's configuration cannot be read here (a hub id not in the local cache)."""


def _is_tiny(name: str | None) -> bool:
    return name is not None and name.startswith("tiny")


def _from_json(path: Path) -> Any:
    from transformers import AutoConfig

    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TrainError(f"{path}: cannot read a model config ({exc})") from None
    if not isinstance(values, dict) or "model_type" not in values:
        raise TrainError(f"{path}: not a Hugging Face config.json (no model_type)")
    return AutoConfig.for_model(**values)


def model_config(name: str | None, config_path: str | Path | None = None) -> tuple[Any, str]:
    """The configuration of model ``name`` (``None``: the embedded default) and where it came
    from. ``config_path`` (a ``config.json`` or a folder holding one) wins. A hub id that is
    neither cached nor known raises :class:`ShapeUnknown`."""
    from transformers import AutoConfig

    from ..quiet import quiet_loading
    from .models import EMBEDDED_GGUF, EMBEDDED_NAME, _parse_tiny, embedded_model_dir, tiny_model

    if config_path is not None:
        path = Path(config_path).expanduser()
        path = path / "config.json" if path.is_dir() else path
        if not path.is_file():
            raise TrainError(f"model config {config_path}: no such file")
        return _from_json(path), str(path)
    if name in (None, EMBEDDED_NAME):
        with quiet_loading():
            config = AutoConfig.from_pretrained(str(embedded_model_dir()), gguf_file=EMBEDDED_GGUF)
        return config, f"embedded {EMBEDDED_GGUF} (GGUF metadata)"
    if _is_tiny(name):
        return tiny_model(**_parse_tiny(name))[0].config, name
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise TrainError(f"model folder {name}: no config.json in it")
        return _from_json(path / "config.json"), str(path / "config.json")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise TrainError(f"model path does not exist: {name}")
    try:
        with quiet_loading():
            return AutoConfig.from_pretrained(name, local_files_only=True), f"{name} (HF cache)"
    except (OSError, ValueError):
        pass
    if name in KNOWN_CONFIGS:
        return AutoConfig.for_model(**KNOWN_CONFIGS[name]), f"{name} (published config)"
    raise ShapeUnknown(f"model {name!r}: not a local folder, not in the Hugging Face cache "
                       "and not a known id: give a local folder, its config.json, or the "
                       "parameter count")


def shape_of(config: Any, target_modules: str | tuple[str, ...] = "all-linear",
             source: str = "") -> ModelShape:
    """Parameter counts of the model ``config`` describes, built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    from ..quiet import quiet_loading

    with torch.device("meta"), quiet_loading():
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    embed = model.get_input_embeddings()
    tied = head.weight is embed.weight
    n_all = sum(p.numel() for p in model.parameters())
    n_head, n_embed = head.weight.numel(), embed.weight.numel()
    linears = [(name, m) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and m is not head]

    def adapted(name: str) -> bool:  # peft's "all-linear": every linear but the output layer
        if target_modules == "all-linear":
            return True
        return name.rsplit(".", 1)[-1] in set(target_modules)

    layer0 = [m for name, m in linears if ".0." in f".{name}."]
    hidden = config.hidden_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return ModelShape(
        n_body=n_all - n_head - (0 if tied else n_embed), n_head=n_head, n_embed=n_embed,
        n_linear=sum(m.weight.numel() for _, m in linears),
        lora_per_rank=sum(m.in_features + m.out_features for name, m in linears
                          if adapted(name)),
        hidden=hidden, layers=config.num_hidden_layers, kv_dim=kv_heads * head_dim,
        intermediate=getattr(config, "intermediate_size", 4 * hidden),
        vocab=config.vocab_size, tied=tied,
        layer_linears=tuple((m.in_features, m.out_features) for m in layer0), source=source)


def shape_from_params(n_params: int) -> ModelShape:
    """A shape from a parameter count alone: every parameter in the body, no head, no
    layers (so no activation or per-layer estimate): FLOPs and weights only."""
    return ModelShape(n_body=n_params, n_head=0, n_embed=0, n_linear=n_params,
                      lora_per_rank=0, hidden=0, layers=0, kv_dim=0, intermediate=0, vocab=0,
                      tied=True, source=f"--params {n_params}")


def load_tokenizer(name: str | None) -> Any:
    """The tokenizer :func:`~zsg_lib.train.models.load_model` would pair with ``name``,
    without the weights (a hub id only from the local cache)."""
    from transformers import AutoTokenizer

    from ..quiet import quiet_loading
    from .models import (
        EMBEDDED_GGUF,
        EMBEDDED_NAME,
        _parse_tiny,
        embedded_model_dir,
        ensure_pad_token,
        tiny_model,
    )

    if _is_tiny(name):
        return tiny_model(**_parse_tiny(name))[1]
    try:
        with quiet_loading():
            if name in (None, EMBEDDED_NAME):
                tok = AutoTokenizer.from_pretrained(str(embedded_model_dir()),
                                                    gguf_file=EMBEDDED_GGUF)
            else:
                path = Path(name).expanduser()
                tok = AutoTokenizer.from_pretrained(str(path) if path.exists() else name,
                                                    local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ShapeUnknown(f"tokenizer of model {name!r}: not found locally ({exc})") from None
    return ensure_pad_token(tok)
