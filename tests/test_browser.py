"""The built site in a real browser: every page of the toc, every chart drawn, offline.

Headless Chromium from Debian (``/usr/bin/chromium``, installed by ``make browser``) driven by
Playwright for Python; never a downloaded browser. The site is served from 127.0.0.1 and every
request to another host is blocked and recorded, so a chart that needs a CDN fails here.
Screenshots of each page go to ``_build/screenshots/<profile>/``.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# Every chart container has drawn its marks (an SVG or canvas made by Vega).
ALL_DRAWN = """() => [...document.querySelectorAll('.zsg-chart')].every(
    c => c.querySelector('svg.marks, canvas.marks') || c.textContent.startsWith('Chart'))"""

ALL_MATH = """() => [...document.querySelectorAll('span.math, div.math')].every(
    m => m.querySelector('mjx-container'))"""

# Every output block (and what it holds) stays inside the content column, and no printed text
# scrolls sideways. Folded outputs are opened first, so they are measured too.
OVERFLOWS = """() => {
    document.querySelectorAll('details').forEach(d => { d.open = true; });
    const column = document.querySelector('article.bd-article');
    const right = column.getBoundingClientRect().right;
    const bad = [];
    for (const out of document.querySelectorAll('div.cell_output')) {
        const parts = [out, ...out.querySelectorAll('pre, table, .zsg-chart, svg, img')];
        for (const el of parts) {
            const r = el.getBoundingClientRect();
            if (r.width === 0) continue;
            const what = el.tagName.toLowerCase() + (el.className && el.className.baseVal === undefined
                ? '.' + String(el.className).split(' ')[0] : '');
            const text = (out.innerText || '').trim().slice(0, 60);
            if (r.right > right + 1) {
                bad.push(`${what} ends ${Math.round(r.right - right)}px past the column: ${text}`);
            } else if (el.tagName === 'PRE' && el.scrollWidth > el.clientWidth + 1) {
                bad.push(`${what} scrolls sideways by ${el.scrollWidth - el.clientWidth}px: ${text}`);
            }
        }
    }
    return [column.getBoundingClientRect().width, bad];
}"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep pytest output readable
        pass


@pytest.fixture(scope="module")
def served(book_site: Any) -> Iterator[str]:
    """The site at http://127.0.0.1:PORT/, served from a thread."""
    handler = functools.partial(_Quiet, directory=str(book_site.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: run `make browser` (Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _open(browser: Any, url: str) -> tuple[Any, list[str], list[str]]:
    """Open ``url``; return the page, its console errors and the blocked off-site requests."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    offsite: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r: Any) -> None:
        if urlparse(r.request.url).hostname in ("127.0.0.1", None):
            r.continue_()
        else:
            offsite.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url, wait_until="load")
    return page, errors, offsite


def _is_chapter(page: str) -> bool:
    """Chapter pages (``book/01_...``) must show charts; intro and summary may not."""
    return Path(page).name[:1].isdigit()


def test_every_page_renders_its_charts_offline(book_site: Any, served: str, browser: Any) -> None:
    shots = REPO / "_build" / "screenshots" / book_site.profile
    shots.mkdir(parents=True, exist_ok=True)
    assert book_site.pages and any(_is_chapter(p) for p in book_site.pages)
    report: dict[str, tuple[int, int]] = {}
    links: list[str] = []  # the summary's links to the findings' cards in the chapters
    cards: set[str] = set()
    for name in book_site.pages:
        page, errors, offsite = _open(browser, served + name + ".html")
        try:
            page.wait_for_function(ALL_DRAWN, timeout=60_000)
            # Math typeset by the site's own MathJax (no CDN): every formula becomes mjx-container.
            page.wait_for_function(ALL_MATH, timeout=30_000)
            containers = page.locator(".zsg-chart").count()
            drawn = page.locator(".zsg-chart :is(svg.marks, canvas.marks)").count()
            # A chart that bypassed enable_offline_altair() (Altair's CDN renderer) shows here.
            cdn_charts = page.locator("[id^='altair-viz']").count()
            page.screenshot(path=str(shots / f"{Path(name).name}.png"), full_page=True)
            width, overflows = page.evaluate(OVERFLOWS)
            first_output = page.locator("div.cell_output").first
            opens_with_chart = first_output.locator(".zsg-chart").count() > 0
            links += [urljoin(name, a) for a in page.eval_on_selector_all(
                "a.zsg-finding-link", "els => els.map(e => e.getAttribute('href'))")]
            cards |= {f"{name}.html#{i}" for i in page.eval_on_selector_all(
                ".zsg-finding", "els => els.map(e => e.id)")}
        finally:
            page.close()
        report[name] = (containers, drawn)
        assert not overflows, f"{name}: outputs wider than the {width:.0f}px column: {overflows}"
        if Path(name).name == "summary":
            assert opens_with_chart, "the summary does not open with its forest plot"
        assert not offsite, f"{name}: requests off the site {offsite}"
        assert not errors, f"{name}: console errors {errors}"
        assert cdn_charts == 0, f"{name}: {cdn_charts} chart(s) bypass enable_offline_altair()"
        assert drawn == containers, f"{name}: {drawn} of {containers} charts drawn"
        if _is_chapter(name):
            assert containers > 0, f"{name}: a chapter page with no chart"
    assert links, "the summary links no finding to its chapter"
    assert set(links) <= cards, f"summary links to no card: {sorted(set(links) - cards)}"
    print("charts per page (containers, drawn):", report)


def test_tooltips_work(book_site: Any, served: str, browser: Any) -> None:
    """Hovering a mark shows Vega's tooltip: the charts stayed interactive."""
    chapters = [p for p in book_site.pages if _is_chapter(p)]
    for name in chapters:
        page, _, _ = _open(browser, served + name + ".html")
        try:
            page.wait_for_function(ALL_DRAWN, timeout=60_000)
            marks = page.locator(".zsg-chart svg.marks [role='graphics-symbol']")
            for i in range(min(marks.count(), 20)):
                mark = marks.nth(i)
                if not mark.is_visible():
                    continue
                mark.scroll_into_view_if_needed()
                mark.hover(force=True)
                tip = page.locator("#vg-tooltip-element.visible")
                if tip.count() and tip.inner_text().strip():
                    return
        finally:
            page.close()
    pytest.fail(f"no tooltip appeared when hovering marks on {chapters}")


LAB_CHAPTER = "01_early_generalization"  # a real chapter: trains, judges, draws four charts


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """JupyterLab on 127.0.0.1 serving a folder with a copy of a real chapter and the repo's
    jupytext.toml; its kernels run the ``tiny`` profile with a fresh ``ZSG_HOME``."""
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    (tmp_path / "book").mkdir()
    shutil.copy(REPO / "jupytext.toml", tmp_path)
    shutil.copy(REPO / "book" / f"{LAB_CHAPTER}.py", tmp_path / "book")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "ZSG_SITE_BUILD"}
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / ".jupyter")  # no user settings leak in
    # Every cell in the page (JupyterLab 4 otherwise renders only the cells in view).
    settings = tmp_path / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp_path / ".jupyter" / "lab" / "user-settings")
    env.update(ZSG_PROFILE="tiny", ZSG_HOME=str(tmp_path / "zsg-home"), ZSG_COMPILE="0")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
           "--ip=127.0.0.1", "--IdentityProvider.token=zsgtest", f"--ServerApp.root_dir={tmp_path}",
           "--expose-app-in-browser"]
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}api/status?token=zsgtest", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
        yield url, tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


# The open notebook's code cells: how many ran, how many hold a chart, which failed.
LAB_CELLS = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    const cells = w.content.model.cells;
    const out = {code: 0, ran: 0, charts: 0, errors: []};
    for (let i = 0; i < cells.length; i++) {
        const c = cells.get(i);
        if (c.type !== 'code') continue;
        out.code += 1;
        if (c.executionCount !== null) out.ran += 1;
        for (const o of c.outputs.toJSON()) {
            if (o.output_type === 'error') out.errors.push(`${o.ename}: ${o.evalue}`);
            const html = o.data && o.data['text/html'];
            if (html && String(html).includes('vegaEmbed')) out.charts += 1;
        }
    }
    out.busy = w.sessionContext.session.kernel.status !== 'idle';
    out.drawn = w.node.querySelectorAll('.jp-OutputArea :is(svg.marks, canvas.marks)').length;
    return out;
}"""


def test_jupyterlab_runs_a_real_chapter_with_charts_offline(lab: Any, browser: Any) -> None:
    """Open a chapter of book/ as a notebook (Jupytext), run every cell on the tiny profile:
    every cell runs, every chart draws, nothing is asked of another host; saving writes the
    paired .ipynb."""
    import time

    url, root = lab
    page, _, offsite = _open(browser, f"{url}lab?token=zsgtest")
    try:
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started",
                               timeout=90_000)
        page.evaluate(f"""async () => {{ await window.jupyterapp.started;
            await window.jupyterapp.commands.execute('docmanager:open',
                {{path: 'book/{LAB_CHAPTER}.py', factory: 'Jupytext Notebook'}}); }}""")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_function("""() => { const w = window.jupyterapp.shell.currentWidget;
            return w && w.sessionContext && w.sessionContext.session &&
                   w.sessionContext.session.kernel; }""", timeout=60_000)
        started = time.monotonic()
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        deadline = started + 240
        while True:  # until every code cell ran and every chart drew (or a cell failed)
            state = page.evaluate(LAB_CELLS)
            done = state["ran"] == state["code"] and not state["busy"]
            if state["errors"] or (done and state["drawn"] >= state["charts"]):
                break
            assert time.monotonic() < deadline, f"{LAB_CHAPTER} did not finish: {state}"
            time.sleep(1)
        print(f"{LAB_CHAPTER} ran in JupyterLab in {time.monotonic() - started:.0f} s: {state}")
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty",
                               timeout=30_000)
        shots = REPO / "_build" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 2400})  # more of the notebook in view
        page.screenshot(path=str(shots / "jupyterlab.png"))
    finally:
        page.close()
    assert not state["errors"], f"{LAB_CHAPTER} failed in JupyterLab: {state['errors']}"
    assert state["charts"] > 0 and state["drawn"] >= state["charts"], state
    assert not offsite, f"JupyterLab asked other hosts (a chart needing the network?): {offsite}"
    assert (root / "book" / f"{LAB_CHAPTER}.ipynb").exists(), "saving wrote no paired notebook"
