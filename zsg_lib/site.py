"""The published site: offline Altair charts and the Jupyter Book build.

Charts are Altair (Vega-Lite). Altair's default renderer loads Vega from a CDN, which shows an
error with no internet. In the site, Vega, Vega-Lite and vega-embed are served by the site
itself instead:

* :func:`write_vega_bundle` writes ``vl_convert.javascript_bundle()`` (one file, no imports)
  into the book's ``_static/`` folder, wrapped in ``(function(){ ... })();`` because its
  top-level ``const`` names otherwise collide with the theme's scripts. The bundle sets
  ``window.vegaEmbed``; Sphinx adds it to the ``<head>`` of every page with a path relative to
  that page (``html_js_files``), so the chart HTML never names a path.
* :func:`enable_offline_altair`, called in each chapter's first cell, picks a renderer:
  ``"site"`` while Jupyter Book builds the site (this module, loaded as a Sphinx extension,
  sets ``ZSG_SITE_BUILD=1`` for the kernels it starts): a small ``<div>`` plus a script that
  calls the site's ``vegaEmbed``; ``"inline"`` elsewhere (JupyterLab, papermill batches):
  Altair's self-contained HTML with the bundle inside each chart, which works offline in any
  frontend (JupyterLab 4 renders Vega-Lite up to v5 natively, Altair 6 emits v6).
* :func:`build_site` runs ``jupyter-book build`` with ``--all -W -n --keep-going`` so that a
  failing cell fails the build, with the execution cache keyed by profile and library version.

>>> bundle = wrap_bundle("window.vegaEmbed = 1;")
>>> bundle.splitlines()[1]
'(function(){'
>>> mode = enable_offline_altair("site")
>>> import altair as alt
>>> html = alt.Chart(alt.Data(values=[{"x": 1}])).mark_point().encode(x="x:Q")._repr_mimebundle_()
>>> html = html[0] if isinstance(html, tuple) else html
>>> 'class="zsg-chart"' in html["text/html"] and "cdn.jsdelivr" not in html["text/html"]
True
>>> _ = alt.renderers.enable("default")
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from .atomic import atomic_write_text
from .errors import ZsgError

BUNDLE_NAME = "zsg-vega.js"
SITE_ENV = "ZSG_SITE_BUILD"
RENDERER = "zsg-site"
Mode = Literal["site", "inline"]

# The vega-embed options of every chart: tooltips on; the actions menu keeps the offline
# exports and drops the links that need the internet (Vega editor).
# SVG rather than canvas: crisp, accessible marks that a test (or a reader) can hover.
EMBED_OPTIONS: dict[str, Any] = {
    "renderer": "svg",
    "tooltip": True,
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
}


class SiteBuildError(RuntimeError):
    """The book could not be built (a chapter failed, or the configuration is broken)."""


# --- the Vega bundle ---------------------------------------------------------------------


def wrap_bundle(js: str, version: str = "") -> str:
    """Wrap a bundle in a function scope; it still publishes ``window.vegaEmbed``."""
    head = f"/* vl-convert {version} bundle: vega, vega-lite, vega-embed */"
    return f"{head}\n(function(){{\n{js}\n}})();\n"


def write_vega_bundle(static_dir: str | Path) -> Path:
    """Write the wrapped Vega bundle to ``static_dir/zsg-vega.js``; return its path.

    The file is rewritten only when its content changes, so a rebuild leaves it alone.
    """
    import vl_convert

    path = Path(static_dir) / BUNDLE_NAME
    text = wrap_bundle(vl_convert.javascript_bundle(), getattr(vl_convert, "__version__", ""))
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)
        path.chmod(0o644)  # served to every reader of the site (atomic writes are 0600)
    return path


# --- the renderers -----------------------------------------------------------------------

_SITE_TEMPLATE = """\
<div class="zsg-chart" id="{id}"></div>
<script type="text/javascript">
(function() {{
  var el = document.getElementById("{id}");
  var spec = {spec};
  var opts = {opts};
  function draw() {{
    window.vegaEmbed(el, spec, opts).catch(function(err) {{
      el.textContent = "Chart error: " + err;
      console.error(err);
    }});
  }}
  // The bundle is a synchronous <head> script; wait for it anyway if a theme defers it.
  if (window.vegaEmbed) {{ draw(); }} else {{
    window.addEventListener("load", function() {{
      if (window.vegaEmbed) {{ draw(); }} else {{
        el.textContent = "Chart not shown: _static/{bundle} did not load.";
        console.error("zsg: _static/{bundle} did not load");
      }}
    }});
  }}
}})();
</script>
"""


def site_chart_html(spec: Mapping[str, Any], embed_options: Mapping[str, Any] | None = None,
                    ) -> str:
    """The HTML of one chart in the site: a container and a call to the site's ``vegaEmbed``.

    >>> s = site_chart_html({"mark": "point"})
    >>> s.startswith('<div class="zsg-chart" id="zsg-chart-') and '"mark": "point"' in s
    True
    """
    opts = {**EMBED_OPTIONS, **(embed_options or {})}
    # "</" inside a JSON string would end the <script> early.
    spec_js = json.dumps(spec, sort_keys=True).replace("</", "<\\/")
    return _SITE_TEMPLATE.format(
        id=f"zsg-chart-{uuid.uuid4().hex[:12]}",
        spec=spec_js,
        opts=json.dumps(opts),
        bundle=BUNDLE_NAME,
    )


def _site_renderer(spec: dict, **metadata: Any) -> dict[str, str]:
    return {
        "text/html": site_chart_html(spec, metadata.get("embed_options")),
        "text/plain": "<Altair chart>",
    }


def site_mode() -> bool:
    """True while the Jupyter Book build executes chapters (``ZSG_SITE_BUILD=1``)."""
    return os.environ.get(SITE_ENV, "") == "1"


def enable_offline_altair(mode: Mode | None = None) -> Mode:
    """Make Altair charts render with no internet; return the mode chosen.

    ``mode=None`` picks ``"site"`` during the site build and ``"inline"`` otherwise.
    """
    import altair as alt

    mode = mode or ("site" if site_mode() else "inline")
    if mode == "site":
        if RENDERER not in alt.renderers.names():
            alt.renderers.register(RENDERER, _site_renderer)
        alt.renderers.enable(RENDERER)
    elif mode == "inline":
        alt.renderers.enable("html", template="inline", embed_options=EMBED_OPTIONS)
    else:
        raise ZsgError(f"enable_offline_altair: unknown mode {mode!r} (use 'site' or 'inline')")
    return mode


# --- Sphinx extension: a plain `jupyter-book build .` gets the bundle and site mode too ---


def setup(app: Any) -> dict[str, Any]:
    """Sphinx hook (``sphinx.extra_extensions`` in ``_config.yml``).

    Writes the bundle into the first ``html_static_path`` folder and sets ``ZSG_SITE_BUILD``
    for the kernels myst-nb starts, so the build needs no step before it.
    """

    def _on_config(app: Any, config: Any) -> None:
        static = [Path(app.confdir) / p for p in config.html_static_path]
        if static:
            write_vega_bundle(static[0])
        os.environ[SITE_ENV] = "1"
        os.environ.setdefault("ZSG_HOME", str(Path(app.confdir) / ".cache" / "zsg"))

    app.connect("config-inited", _on_config)
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


def page_source(root: str | Path, page: str) -> Path | None:
    """The source file of a toc page (``.py``, ``.md`` or ``.ipynb``), or None if missing."""
    for ext in (".py", ".md", ".ipynb"):
        if (Path(root) / f"{page}{ext}").exists():
            return Path(root) / f"{page}{ext}"
    return None


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


# --- the build ---------------------------------------------------------------------------


def _digest(root: Path, paths: Iterable[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in sorted(paths):
        h.update(p.relative_to(root).as_posix().encode())  # not where the checkout lives
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def cache_key(root: str | Path, profile: str) -> str:
    """Name of the execution cache for ``profile``: changes with the library or parameters.

    Jupyter Book's cache only looks at a notebook's code; the chapters' results also depend on
    ``zsg_lib`` and ``params/``, so they are part of the key.

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> a = cache_key(d, "tiny"); (d / "params").mkdir()
    >>> _ = (d / "params" / "t.yaml").write_text("x: 1")
    >>> a != cache_key(d, "tiny") and cache_key(d, "tiny").startswith("tiny-")
    True
    """
    root = Path(root)
    files = [p for d in ("zsg_lib", "params") for p in (root / d).rglob("*") if p.is_file()
             and p.suffix in {".py", ".yaml", ".yml"} and "__pycache__" not in p.parts]
    return f"{profile}-{_digest(root, files, profile)}"


def build_command(root: Path, config: Path, output: Path) -> list[str]:
    """The ``jupyter-book build`` command: all pages, warnings (a failing cell) are errors."""
    runner = "import sys; from jupyter_book.cli.main import main; sys.exit(main())"
    return [sys.executable, "-c", runner, "build", str(root), "--config", str(config),
            "--path-output", str(output), "--all", "-W", "-n", "--keep-going"]


def build_site(
    root: str | Path = ".",
    profile: str = "cpu-demo",
    output: str | Path | None = None,
    cache_root: str | Path | None = None,
    execute: bool = True,
    quiet: bool = False,
) -> Path:
    """Execute every chapter with ``profile`` and build the site; return the HTML folder.

    ``output`` is the folder that receives ``_build/html`` (default: ``root``). Raises
    :class:`SiteBuildError` when the build fails, for example when a cell raises.
    """
    import yaml

    root = Path(root).resolve()
    output = Path(output).resolve() if output else root
    config_file = root / "_config.yml"
    if not config_file.exists():
        raise SiteBuildError(f"{config_file}: not found (run from the repository root)")
    config = yaml.safe_load(config_file.read_text()) or {}
    write_vega_bundle(root / "book" / "_static")

    # The execution cache lives outside _build so `make clean` of the html keeps it apart,
    # one folder per profile and library version; older folders of the profile are stale.
    cache_root = Path(cache_root) if cache_root else root / ".cache" / "jupyter-book"
    key = cache_key(root, profile)
    execute_cfg = config.setdefault("execute", {})
    execute_cfg["execute_notebooks"] = "cache" if execute else "off"
    execute_cfg["cache"] = str((cache_root / key).resolve())
    sphinx_cfg = config.setdefault("sphinx", {})
    extensions = sphinx_cfg.setdefault("extra_extensions", []) or []
    if "zsg_lib.site" not in extensions:
        sphinx_cfg["extra_extensions"] = [*extensions, "zsg_lib.site"]
    derived = output / "_build" / f".config-{profile}.yml"
    atomic_write_text(derived, yaml.safe_dump(config, sort_keys=False))

    env = {**os.environ, "ZSG_PROFILE": profile, SITE_ENV: "1"}
    env.setdefault("ZSG_HOME", str(root / ".cache" / "zsg"))
    _prune_caches(cache_root, profile, keep=key)
    start = time.monotonic()
    returncode, log = _run_streaming(build_command(root, derived, output), root, env, quiet)
    if returncode != 0:
        problems = warnings_in(log)
        raise SiteBuildError(
            f"jupyter-book build failed (exit {returncode}) for profile {profile!r}:\n"
            + "\n".join(problems or ["(no warning found; see the log above)"])
        )
    html = output / "_build" / "html"
    if not quiet:
        print(f"zsg: site built in {time.monotonic() - start:.0f} s -> {html}/index.html")
    return html


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def warnings_in(log: str) -> list[str]:
    """The distinct WARNING/ERROR lines of a Sphinx log, colour codes removed.

    >>> warnings_in("ok\\n\\x1b[91m/b/c.py: WARNING: Executing notebook failed\\x1b[39;49;00m\\nok")
    ['/b/c.py: WARNING: Executing notebook failed']
    """
    seen: set[str] = set()
    out: list[str] = []
    for line in _ANSI.sub("", log).splitlines():
        line = line.strip()
        if not re.search(r"(^|: )(WARNING|ERROR):", line) or line in seen:
            continue
        seen.add(line)
        out.append(line)
        saved = re.search(r"traceback saved in: (\S+)", line)
        if saved and Path(saved.group(1)).exists():  # add the exception itself
            text = _ANSI.sub("", Path(saved.group(1)).read_text(errors="replace"))
            last = [t.strip() for t in text.splitlines() if t.strip()]
            out.extend(f"  {t}" for t in last[-1:])
    return out


# Printed by every kernel jupyter-cache starts; says nothing about the book.
_NOISE = ("Kernel is running over TCP without encryption",)


def _run_streaming(cmd: list[str], cwd: Path, env: dict[str, str], quiet: bool) -> tuple[int, str]:
    """Run ``cmd``, echoing its output as it comes (unless quiet); return (exit code, log)."""
    lines: list[str] = []
    with subprocess.Popen(cmd, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if not quiet and not any(n in line for n in _NOISE):
                print(line, end="", flush=True)
    return proc.returncode, "".join(lines)


def _prune_caches(cache_root: Path, profile: str, keep: str) -> None:
    """Delete execution caches of ``profile`` made for older library versions."""
    import shutil

    stale = re.compile(rf"{re.escape(profile)}-[0-9a-f]{{12}}")
    for d in cache_root.glob(f"{profile}-*"):
        if d.is_dir() and d.name != keep and stale.fullmatch(d.name):
            shutil.rmtree(d, ignore_errors=True)
