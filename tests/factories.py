"""Small builders the test modules share (import as ``from factories import conv``)."""

from __future__ import annotations


def conv(q: str, a: str) -> list[dict[str, str]]:
    """A one-turn conversation: the user asks ``q``, the assistant answers ``a``.

    >>> conv("2+2?", "4")[1]
    {'role': 'assistant', 'content': '4'}
    """
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def save_tiny_model(folder, **kwargs):
    """A tiny random LLaMA (:func:`zsg_lib.train.models.tiny_model` with ``kwargs``) saved as a
    Hugging Face folder (safetensors weights, tokenizer): a model that loads by its path, in
    any precision, 4-bit included. Returns the folder as a string."""
    from pathlib import Path

    from zsg_lib.train.models import tiny_model

    model, tok = tiny_model(**kwargs)
    model.save_pretrained(Path(folder), safe_serialization=True)
    tok.save_pretrained(Path(folder))
    return str(folder)
