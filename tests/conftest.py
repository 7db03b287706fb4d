"""Shared fixtures: the book built once per test session, and a tiny stub book.

``book_site`` builds the real book (the pages of ``_toc.yml``) with the ``tiny`` profile
into ``_build/tiny/_build/html``; test_chapters and test_browser share that one build.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from zsg_lib.pages.render import BUNDLE_NAME
from zsg_lib.site.build import build_site
from zsg_lib.site.extension import toc_pages

REPO = Path(__file__).resolve().parents[1]
TEST_PROFILE = os.environ.get("ZSG_TEST_PROFILE", "tiny")
# Tests train many tiny models of different shapes: compiling each would cost more than it
# saves. tests/test_compiled.py compiles on purpose.
os.environ.setdefault("ZSG_COMPILE", "0")


@dataclass(frozen=True)
class BookSite:
    """A built site: where its HTML is, and its pages in toc order (without extension)."""

    root: Path
    html: Path
    pages: list[str]
    profile: str


STUB_CHART = '''\
# %% [markdown]
# # A stub chapter
# Two charts, one with tooltips, and math: $WSD_i = w_{avg} AD_i + w_{min} MD_i$.

# %% tags=["parameters"]
n = 5

# %%
import altair as alt
import pandas as pd

from zsg_lib.pages.render import enable_offline_altair

enable_offline_altair()
df = pd.DataFrame({"x": range(n), "y": [i * i for i in range(n)]})
df["label"] = [f"p{i}" for i in range(n)]
alt.Chart(df).mark_point(size=400, filled=True).encode(x="x:Q", y="y:Q", tooltip=["label", "y"])

# %%
alt.Chart(df).mark_bar().encode(x="label:N", y="y:Q", tooltip=["label"])
'''

STUB_FAILING = '''\
# %% [markdown]
# # A failing chapter

# %%
raise RuntimeError("boom from the stub chapter")
'''


def make_stub_book(root: Path, failing: bool = False) -> Path:
    """Write a two-page book (intro + one chart chapter, + a failing chapter) under ``root``."""
    # The book's static files (favicon), not the generated bundle: the build writes it.
    shutil.copytree(REPO / "book" / "_static", root / "book" / "_static", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(BUNDLE_NAME))
    shutil.copy(REPO / "_config.yml", root / "_config.yml")
    chapters = ["book/01_chart"] + (["book/02_failing"] if failing else [])
    toc = "format: jb-book\nroot: book/intro\nchapters:\n" + "".join(
        f"  - file: {c}\n" for c in chapters
    )
    (root / "_toc.yml").write_text(toc)
    (root / "book" / "intro.md").write_text("# Stub book\n\nAn introduction.\n")
    (root / "book" / "01_chart.py").write_text(STUB_CHART)
    if failing:
        (root / "book" / "02_failing.py").write_text(STUB_FAILING)
    return root


def randomize_adapters(model, seed: int, scale: float = 0.3) -> None:
    """Draw every trainable (adapter) weight at random: a fresh LoRA adapter has B = 0 and
    adds nothing, so folding, sharing or masking mistakes would not show."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)


@pytest.fixture(scope="session")
def random_adapters():
    """:func:`randomize_adapters`, for tests of LoRA-wrapped models."""
    return randomize_adapters


@pytest.fixture(scope="session")
def make_stub():
    """:func:`make_stub_book`, for tests that need a book of their own."""
    return make_stub_book


@pytest.fixture(scope="session")
def stub_site(tmp_path_factory: pytest.TempPathFactory) -> BookSite:
    """The stub book, built once."""
    root = make_stub_book(tmp_path_factory.mktemp("stub-book"))
    html = build_site(root, profile="stub", cache_root=root / ".cache", quiet=True)
    return BookSite(root, html, toc_pages(root), "stub")


@pytest.fixture(scope="session")
def book_site(request: pytest.FixtureRequest) -> BookSite:
    """The real book, executed with the test profile and built once per session.

    A chapter that fails makes this fixture (and every test using it) fail, with the
    chapter and the exception in the message. The build's progress lines (one per run, the
    ETA) go to the terminal past pytest's capture, so CI's log shows the build moving.
    """
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def echo(line: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"[book:{TEST_PROFILE}] {line}", flush=True)

    html = build_site(REPO, profile=TEST_PROFILE, output=REPO / "_build" / TEST_PROFILE,
                      quiet=True, echo=echo)
    return BookSite(REPO, html, toc_pages(REPO), TEST_PROFILE)
