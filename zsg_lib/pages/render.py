"""Charts with no internet: the offline Altair renderer every chapter enables, and the Vega
bundle the site serves.

Charts are Altair (Vega-Lite). Altair's default renderer loads Vega from a CDN, which shows an
error with no internet. In the site, Vega, Vega-Lite and vega-embed are served by the site
itself instead:

* :func:`write_vega_bundle` writes ``vl_convert.javascript_bundle()`` (one file, no imports)
  into the book's ``_static/`` folder, wrapped in ``(function(){ ... })();`` because its
  top-level ``const`` names otherwise collide with the theme's scripts. The bundle sets
  ``window.vegaEmbed``; Sphinx adds it to the ``<head>`` of every page with a path relative to
  that page (``html_js_files``), so the chart HTML never names a path.
* :func:`enable_offline_altair`, called in each chapter's first cell, picks a renderer:
  ``"site"`` while Jupyter Book builds the site (:mod:`zsg_lib.site.extension`, loaded as a Sphinx
  extension, sets ``ZSG_SITE_BUILD=1`` for the kernels it starts): a small ``<div>`` plus a
  script that calls the site's ``vegaEmbed``; ``"inline"`` elsewhere (JupyterLab, papermill
  batches): self-contained HTML with the bundle inside each chart (:func:`inline_chart_html`),
  which works offline in any frontend (JupyterLab 4 renders Vega-Lite up to v5 natively,
  Altair 6 emits v6), however many charts a notebook holds.

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

import functools
import json
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ..atomic import atomic_write_text
from ..errors import ZsgError
from ..study.progress import site_mode

BUNDLE_NAME = "zsg-vega.js"
RENDERER = "zsg-site"
INLINE_RENDERER = "zsg-inline"
Mode = Literal["site", "inline"]

# The vega-embed options of every chart: tooltips on; the actions menu keeps the offline
# exports and drops the links that need the internet (Vega editor).
# SVG rather than canvas: crisp, accessible marks that a test (or a reader) can hover.
EMBED_OPTIONS: dict[str, Any] = {
    "renderer": "svg",
    "tooltip": True,
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
}


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


_INLINE_TEMPLATE = """\
<div class="zsg-chart" id="{id}"></div>
<script type="text/javascript">
if (!window.vegaEmbed) {{
{bundle}
}}
(function() {{
  var el = document.getElementById("{id}");
  window.vegaEmbed(el, {spec}, {opts}).catch(function(err) {{
    el.textContent = "Chart error: " + err;
    console.error(err);
  }});
}})();
</script>
"""


@functools.lru_cache(maxsize=1)
def _bundle_js() -> str:
    import vl_convert

    # "</script" would end the <script> early (the bundle holds none today: keep it so)
    return re.sub(r"</(script)", r"<\\/\1", wrap_bundle(vl_convert.javascript_bundle()),
                  flags=re.IGNORECASE)


def inline_chart_html(spec: Mapping[str, Any], embed_options: Mapping[str, Any] | None = None,
                      ) -> str:
    """The HTML of one self-contained chart (JupyterLab, papermill): the Vega bundle (run only
    if the page has no ``vegaEmbed`` yet) and a call to it, every name in a function scope, so
    any number of charts share a page (Altair's inline template declares top-level ``const``
    names, and a notebook's second chart then fails to draw).

    >>> s = inline_chart_html({"mark": "point"})
    >>> s.count("window.vegaEmbed = ") <= 1 and 'class="zsg-chart"' in s and len(s) > 500_000
    True
    """
    opts = {**EMBED_OPTIONS, **(embed_options or {})}
    return _INLINE_TEMPLATE.format(
        id=f"zsg-chart-{uuid.uuid4().hex[:12]}", bundle=_bundle_js(),
        spec=json.dumps(spec, sort_keys=True).replace("</", "<\\/"), opts=json.dumps(opts))


def _inline_renderer(spec: dict, **metadata: Any) -> dict[str, str]:
    return {
        "text/html": inline_chart_html(spec, metadata.get("embed_options")),
        "text/plain": "<Altair chart>",
    }


def _site_renderer(spec: dict, **metadata: Any) -> dict[str, str]:
    return {
        "text/html": site_chart_html(spec, metadata.get("embed_options")),
        "text/plain": "<Altair chart>",
    }


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
        if INLINE_RENDERER not in alt.renderers.names():
            alt.renderers.register(INLINE_RENDERER, _inline_renderer)
        alt.renderers.enable(INLINE_RENDERER)
    else:
        raise ZsgError(f"enable_offline_altair: unknown mode {mode!r} (use 'site' or 'inline')")
    return mode
