"""The site build on a stub book: offline Vega, failing cells fail the build, the cache works."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import altair as alt
import pytest

from zsg_lib.pages import render
from zsg_lib.site import build
from zsg_lib.study import progress

# Tests that build a book start Sphinx and a kernel (~10 s each): marked slow.

CDN = re.compile(r"cdn\.jsdelivr|unpkg\.com|cdnjs|jsdelivr\.net|googleapis", re.I)
REMOTE_ASSET = re.compile(r"<(?:script|link)[^>]+(?:src|href)=\"(?:https?:)?//", re.I)


def _chart_ids(html_file: Path) -> list[str]:
    return re.findall(r'class="zsg-chart" id="([^"]+)"', html_file.read_text())


def _rebuild(book) -> None:
    build.build_site(book.root, profile="stub", cache_root=book.root / ".cache", quiet=True)


@pytest.mark.slow
def test_pages_use_the_local_bundle_and_no_cdn(stub_site) -> None:
    html = stub_site.html
    bundle = html / "_static" / render.BUNDLE_NAME
    text = bundle.read_text()
    assert "(function(){" in text[:200] and text.rstrip().endswith("})();")
    assert "window.vegaEmbed" in text and len(text) > 500_000
    chapter = (html / "book" / "01_chart.html").read_text()
    # A page one folder down reaches the bundle at ../_static/.
    assert re.search(r'<script src="\.\./_static/zsg-vega\.js(\?v=\w+)?"></script>', chapter)
    assert len(_chart_ids(html / "book" / "01_chart.html")) == 2
    for page in html.rglob("*.html"):
        text = page.read_text()
        assert not CDN.search(text), f"{page}: names a CDN"
        assert not REMOTE_ASSET.search(text), f"{page}: loads a remote script or stylesheet"


def test_inline_mode_is_self_contained() -> None:
    """Outside the site (JupyterLab, papermill) a chart carries its own Vega."""
    try:
        assert render.enable_offline_altair("inline") == "inline"
        bundle = alt.Chart(alt.Data(values=[{"x": 1}])).mark_point().encode(x="x:Q")
        html = bundle._repr_mimebundle_()
        html = (html[0] if isinstance(html, tuple) else html)["text/html"]
    finally:
        alt.renderers.enable("default")
    assert "vegaEmbed" in html and not CDN.search(html) and len(html) > 500_000


def test_mode_follows_the_build_env(monkeypatch) -> None:
    monkeypatch.setenv(progress.SITE_ENV, "1")
    try:
        assert render.enable_offline_altair() == "site"
        monkeypatch.delenv(progress.SITE_ENV)
        assert render.enable_offline_altair() == "inline"
    finally:
        alt.renderers.enable("default")


def test_bundle_is_not_rewritten_when_unchanged(tmp_path) -> None:
    path = render.write_vega_bundle(tmp_path)
    before = path.stat().st_mtime_ns
    assert render.write_vega_bundle(tmp_path).stat().st_mtime_ns == before


@pytest.mark.slow
def test_rebuild_uses_the_cache_until_the_library_changes(stub_site) -> None:
    """Chart ids are random per execution: same ids means the chapter was not rerun."""
    page = stub_site.html / "book" / "01_chart.html"
    first = _chart_ids(page)
    _rebuild(stub_site)
    assert _chart_ids(page) == first
    params = stub_site.root / "params"
    params.mkdir(exist_ok=True)
    (params / "stub.yaml").write_text("changed: true\n")  # part of the cache key
    try:
        _rebuild(stub_site)
        assert _chart_ids(page) != first
        # The cache made for the old key is pruned.
        assert len(list((stub_site.root / ".cache").glob("stub-*"))) == 1
    finally:
        shutil.rmtree(params)


@pytest.mark.slow
def test_a_failing_cell_fails_the_build(tmp_path, make_stub) -> None:
    root = make_stub(tmp_path / "book-with-error", failing=True)
    with pytest.raises(build.SiteBuildError) as err:
        build.build_site(root, profile="stub", cache_root=tmp_path / "cache", quiet=True)
    message = str(err.value)
    assert "02_failing.py" in message and "Executing notebook failed" in message
    assert "RuntimeError: boom from the stub chapter" in message
    # The command itself (what CI runs) exits non-zero too.
    derived = root / "_build" / ".config-stub.yml"
    proc = subprocess.run(build.build_command(root, derived, root), cwd=root,
                          capture_output=True, text=True)
    assert proc.returncode != 0


def test_environment_yml_mirrors_the_install() -> None:
    """environment.yml pins what the Makefile and constraints pin (conda users get the same)."""
    import yaml

    repo = Path(__file__).resolve().parents[1]
    env = yaml.safe_load((repo / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    makefile = (repo / "Makefile").read_text()
    # every extra the Makefile installs (`-e '.[book,test]'`, `-e '.[qlora]'`), in one -e line
    made = {x for group in re.findall(r"-e '\.\[([\w,]+)\]'", makefile)
            for x in group.split(",")}
    (editable,) = [line for line in pip if line.startswith("-e .[")]
    assert made >= {"book", "test", "qlora"}
    assert set(editable[len("-e .["):-1].split(",")) == made, (editable, made)
    torch_pin = (repo / "constraints-cpu.txt").read_text().split()[0]
    assert torch_pin in pip
    env_text = (repo / "environment.yml").read_text()
    for pkg in re.findall(r"--no-deps ((?:\S+==\S+ ?)+)", makefile)[0].split():
        assert pkg in env_text, f"{pkg} (Makefile) missing from environment.yml"


def test_jupytext_pairs_book_chapters_only(tmp_path: Path) -> None:
    """Saving a chapter opened as a notebook (what JupyterLab does) writes the paired .ipynb
    and keeps the .py clean; files outside book/ stay unpaired."""
    from jupytext.sync_contentsmanager import TextFileContentsManager

    repo = Path(__file__).resolve().parents[1]
    shutil.copy(repo / "jupytext.toml", tmp_path / "jupytext.toml")
    for folder in ("book", "other"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "ch.py").write_text('# %% tags=["parameters"]\nn = 5\n\n# %%\nn * 2\n')
    cm = TextFileContentsManager(root_dir=str(tmp_path))
    for folder in ("book", "other"):
        model = cm.get(f"{folder}/ch.py", type="notebook")
        assert model["content"].cells[0].metadata["tags"] == ["parameters"]
        model["content"].cells[1].source = "n * 3"
        cm.save({"type": "notebook", "content": model["content"]}, f"{folder}/ch.py")
    assert (tmp_path / "book" / "ch.ipynb").exists()
    assert not (tmp_path / "other" / "ch.ipynb").exists()
    assert (tmp_path / "book" / "ch.py").read_text().startswith('# %% tags=["parameters"]')
    assert "n * 3" in (tmp_path / "book" / "ch.py").read_text()


@pytest.mark.slow
def test_a_chapter_the_profile_cannot_run_is_a_page_that_says_why(tmp_path, make_stub,
                                                                  capsys) -> None:
    """A profile that leaves a chapter nothing to compare still builds the whole site: the
    chapter's page is its introduction and the reason, and none of its code runs."""
    import yaml

    from zsg_lib.cli import main as cli

    root = make_stub(tmp_path / "book")
    repo = Path(__file__).resolve().parents[1]
    shutil.copy(repo / "book" / "02_permutations.py", root / "book" / "02_permutations.py")
    toc = root / "_toc.yml"
    toc.write_text(toc.read_text() + "  - file: book/02_permutations\n")
    data = yaml.safe_load((repo / "params" / "tiny.yaml").read_text())
    data["name"] = "no-permutations"
    data.setdefault("chapters", {})["permutations"] = []
    profile = tmp_path / "no-permutations.yaml"
    profile.write_text(yaml.safe_dump(data))

    html = build.build_site(root, profile=str(profile), cache_root=tmp_path / "cache",
                            quiet=True)
    page = (html / "book" / "02_permutations.html").read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    assert "Permutations: when does a test task generalize?" in text
    assert "Not run with profile" in text and "chapters.permutations" in text
    assert "lists no arrangement" in text
    assert "enable_book_display" not in page  # no code cell of the chapter is on the page
    assert _chart_ids(html / "book" / "01_chart.html")  # the other chapter still executed

    # `zsg book` says so on the terminal before the build, instead of refusing the profile
    monkey = pytest.MonkeyPatch()
    monkey.setattr(build, "build_site", lambda *a, **k: html)
    monkey.setattr(cli, "book_root", lambda: root)
    try:
        assert cli.main(["book", "--profile", str(profile)]) == 0
    finally:
        monkey.undo()
    out = capsys.readouterr().out
    assert "02_permutations does not run with this profile" in out
    assert "03_similarity does not run" not in out
