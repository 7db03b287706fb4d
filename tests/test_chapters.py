"""Every chapter of the book executes end to end on the tiny profile (papermill).

The chapters run in the order of ``_toc.yml`` in one temporary ``ZSG_HOME``, so later
chapters read back the runs earlier ones trained, as in the real book build.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zsg_lib.profiles.chapters import CHAPTERS as CATALOG

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
CHAPTERS = list(CATALOG)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def zsg_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("zsg-home")
    old = os.environ.get("ZSG_HOME")
    os.environ["ZSG_HOME"] = str(home)  # the kernel inherits it
    yield home
    if old is None:
        os.environ.pop("ZSG_HOME", None)
    else:
        os.environ["ZSG_HOME"] = old


def test_every_toc_page_is_a_chapter_here() -> None:
    """The catalog, the table of contents and the files in book/ name the same chapters."""
    from zsg_lib.site.extension import toc_pages

    assert [p.split("/")[-1] for p in toc_pages(REPO)] == CHAPTERS
    assert sorted(p.stem for p in BOOK.glob("*.py")) == sorted(CHAPTERS)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_executes_on_tiny_profile(chapter: str, book_site) -> None:
    """Each chapter as the site build executed it (one execution, shared with the browser test).

    The build fails on any cell error (``-W``), so here we check what a reader gets: the page
    carries the chapter's outputs, its charts, and no traceback. The built HTML is checked
    rather than ``jupyter_execute/`` because a cached rebuild writes that copy without outputs.
    """
    source = jupytext_read(BOOK / f"{chapter}.py")
    tags = [c.metadata.get("tags", []) for c in source.cells]
    assert any("parameters" in t for t in tags), "papermill needs a cell tagged 'parameters'"
    page = book_site.html / "book" / f"{chapter}.html"
    assert page.exists(), f"{chapter} was not built"
    html = page.read_text(encoding="utf-8")
    assert html.count('class="cell_output') >= 1, f"{chapter}: no cell outputs on the page"
    assert "Traceback" not in html and 'class="output traceback' not in html
    if chapter not in ("intro", "summary", "06_beyond"):
        assert html.count('class="zsg-chart') >= 1, f"{chapter}: no chart on the page"


def jupytext_read(path: Path):
    import jupytext

    return jupytext.read(path)


def test_bad_profile_fails_in_the_first_cells(zsg_home: Path, tmp_path: Path) -> None:
    import jupytext
    import papermill as pm

    nb = jupytext.read(BOOK / "03_similarity.py")
    with pytest.raises(pm.PapermillExecutionError, match=r"train.max_steps: expected int"):
        pm.execute_notebook(nb, str(tmp_path / "bad.ipynb"),
                            parameters={"profile": "tiny", "overrides": {"train.max_steps": "x"}},
                            kernel_name="python3", cwd=str(BOOK), progress_bar=False)
