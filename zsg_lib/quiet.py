"""Model-loading progress bars off: an executed notebook keeps every redraw of a bar, and in
the book's site a widget bar would make the page load Jupyter's widget manager from a CDN.

>>> with quiet_loading():
...     pass
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator


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
