"""The Sphinx side of the site: the extension ``_config.yml`` loads, and the table of contents.

:func:`setup` (``sphinx.extra_extensions: [zsg_lib.site.extension]``) writes the Vega bundle into
the static folder and sets site mode for the kernels, so a plain ``jupyter-book build .``
gets offline charts too; :func:`toc_pages` reads ``_toc.yml``. The build driver is
:mod:`zsg_lib.site.build`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..pages.render import write_vega_bundle
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
        os.environ[CHAPTER_ENV] = Path(docname).name

    app.connect("config-inited", _on_config)
    app.connect("source-read", _on_source_read)
    app.connect("html-page-context", _drop_thebe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


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
