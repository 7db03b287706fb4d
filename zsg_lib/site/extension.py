"""The Sphinx side of the site: the extension ``_config.yml`` loads, and the table of contents.

:func:`setup` (``sphinx.extra_extensions: [zsg_lib.site.extension]``) writes the Vega bundle into
the static folder and sets site mode for the kernels, so a plain ``jupyter-book build .``
gets offline charts too; :func:`toc_pages` reads ``_toc.yml``. A chapter the profile cannot
run (:func:`~zsg_lib.profiles.params.chapter_refusal`) is built as its introduction and a note
saying why (:func:`not_run_source`), so every profile gets the whole site. The build driver is
:mod:`zsg_lib.site.build`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from ..errors import ZsgError
from ..pages.render import write_vega_bundle
from ..profiles.chapters import CHAPTERS
from ..profiles.params import Profile, chapter_refusal, default_profile, load_profile
from ..study.progress import CHAPTER_ENV, SITE_ENV


def setup(app: Any) -> dict[str, Any]:
    """Sphinx hook (``sphinx.extra_extensions`` in ``_config.yml``).

    Writes the bundle into the first ``html_static_path`` folder and sets ``ZSG_SITE_BUILD``
    for the kernels myst-nb starts, so the build needs no step before it; names each kernel's
    chapter (``ZSG_CHAPTER``) for the build's progress lines.
    """

    def _on_config(app: Any, config: Any) -> None:
        static = [Path(app.confdir) / p for p in config.html_static_path]
        if static:
            write_vega_bundle(static[0])
        os.environ[SITE_ENV] = "1"
        # No progress bar in the pages: the terminal gets one line a run (study.progress), and
        # a widget bar would make the page load Jupyter's widget manager from a CDN.
        os.environ["TQDM_DISABLE"] = "1"
        os.environ.setdefault("ZSG_HOME", str(Path(app.confdir) / ".cache" / "zsg"))

    def _on_source_read(app: Any, docname: str, source: list[str]) -> None:
        # Sphinx reads one document at a time and myst-nb starts the notebook's kernel while
        # reading it, so the kernel inherits the name of its own chapter for its progress events.
        chapter = Path(docname).name
        os.environ[CHAPTER_ENV] = chapter
        reason = not_run_reason(default_profile(), chapter)
        if reason:  # the page without its code: nothing of it executes
            source[0] = not_run_source(source[0], default_profile(), reason)

    app.connect("config-inited", _on_config)
    app.connect("source-read", _on_source_read)
    app.connect("html-page-context", _drop_thebe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


@functools.lru_cache(maxsize=8)
def _loaded(profile: str) -> Profile | None:
    """The profile, read once per build process; ``None`` when it does not load."""
    try:
        return load_profile(profile)
    except ZsgError:
        return None


def not_run_reason(profile: str, chapter: str) -> str | None:
    """Why ``chapter`` cannot run on ``profile`` (its profile error), or ``None`` when it can
    (or is not a chapter, or the profile does not load: the kernel then says so itself).

    >>> not_run_reason("cpu-demo", "02_permutations") is None
    True
    >>> import tempfile, yaml; from zsg_lib.profiles.params import resolve_profile_path
    >>> mine = yaml.safe_load(resolve_profile_path("tiny").read_text())
    >>> mine["chapters"] = {"permutations": []}
    >>> path = Path(tempfile.mkdtemp()) / "mine.yaml"; _ = path.write_text(yaml.safe_dump(mine))
    >>> print(not_run_reason(str(path), "02_permutations"))
    /...mine.yaml: chapters.permutations: lists no arrangement, so chapter 02_permutations ...
    """
    loaded = _loaded(profile) if chapter in CHAPTERS else None
    return chapter_refusal(loaded, chapter) if loaded else None


def not_run_source(text: str, profile: str, reason: str) -> str:
    r"""A chapter's jupytext (percent) source as the page of a chapter that does not run: its
    header and first cell (the title and the claim it tests), then a note with the reason.

    >>> src = "# ---\n# jupyter: {}\n# ---\n\n# %% [markdown]\n# # 2. Order\n\n# %%\nx = 1\n"
    >>> print(not_run_source(src, "mine", "chapters.permutations: lists no arrangement"))
    # ---
    # jupyter: {}
    # ---
    <BLANKLINE>
    # %% [markdown]
    # # 2. Order
    <BLANKLINE>
    # %% [markdown]
    # ```{note}
    # **Not run with profile `mine`.** chapters.permutations: lists no arrangement. The summary
    # page marks this chapter's findings *not measured*.
    # ```
    <BLANKLINE>
    """
    cells = text.split("\n# %%")
    kept = cells[0] + ("\n# %%" + cells[1] if len(cells) > 1 else "")
    note = (f"**Not run with profile `{profile}`.** {reason.rstrip('.')}. The summary page "
            "marks this chapter's findings *not measured*.")
    import textwrap

    lines = textwrap.wrap(note, 92, break_on_hyphens=False, break_long_words=False)
    return (kept.rstrip("\n") + "\n\n# %% [markdown]\n# ```{note}\n"
            + "".join(f"# {line}\n" for line in lines) + "# ```\n")


def toc_pages(root: str | Path = ".") -> list[str]:
    """The pages of ``_toc.yml`` in reading order, as paths without extension.

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> _ = (d / "_toc.yml").write_text("root: book/intro\\nparts:\\n- chapters:\\n"
    ...     "  - file: book/01_a\\n    sections:\\n    - file: book/01b\\n")
    >>> toc_pages(d)
    ['book/intro', 'book/01_a', 'book/01b']
    """
    import yaml

    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text()) or {}
    pages = [toc["root"]] if toc.get("root") else []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                pages.append(str(node["file"]))
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)

    walk(toc)
    return [p.rsplit(".", 1)[0] if p.endswith((".md", ".py", ".ipynb")) else p for p in pages]


def _drop_thebe(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Remove sphinx-thebe's scripts: live code is off, and Jupyter Book adds its config
    script twice (a console error) naming a CDN (unpkg) the offline site must not need."""
    scripts = context.get("script_files")
    if scripts:
        context["script_files"] = [
            js for js in scripts
            if "sphinx-thebe" not in str(getattr(js, "filename", js) or "")
            and "THEBE_JS_URL" not in str(getattr(js, "attributes", {}).get("body", ""))
        ]
