"""Small builders the test modules share (import as ``from factories import conv``)."""

from __future__ import annotations


def conv(q: str, a: str) -> list[dict[str, str]]:
    """A one-turn conversation: the user asks ``q``, the assistant answers ``a``.

    >>> conv("2+2?", "4")[1]
    {'role': 'assistant', 'content': '4'}
    """
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
