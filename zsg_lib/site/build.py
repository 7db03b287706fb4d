"""The book build: execute every chapter with a profile and build the site (Jupyter Book v1).

:func:`build_site` runs ``jupyter-book build`` with ``--all -W -n --keep-going`` so that a
failing cell fails the build, with the execution cache keyed by profile and library version.
While it runs, the kernels' training events (:mod:`zsg_lib.study.progress`) become one terminal
line per run with the book's ETA; a failing chapter ends the output with its chapter, cell
and error (:func:`failure_lines`).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import ParamsError
from ..pages.render import write_vega_bundle
from ..profiles.params import is_profile_path, resolve_profile_path
from ..study import progress
from ..study.progress import SITE_ENV


class SiteBuildError(RuntimeError):
    """The book could not be built (a chapter failed, or the configuration is broken)."""


def _digest(root: Path, paths: Iterable[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in sorted(paths):
        h.update(p.relative_to(root).as_posix().encode())  # not where the checkout lives
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def profile_label(profile: str) -> str:
    """``profile`` as part of a file name: a name as it is; a YAML path as its stem and a short
    hash of where it lives (two ``mine.yaml`` in different folders keep apart caches).

    >>> profile_label("cpu-demo")
    'cpu-demo'
    >>> profile_label("/home/me/mine.yaml").startswith("mine.")
    True
    """
    if not is_profile_path(profile):  # a name from params/
        return str(profile)
    path = Path(profile).expanduser().resolve()
    return f"{path.stem}.{hashlib.sha256(str(path).encode()).hexdigest()[:6]}"


def cache_key(root: str | Path, profile: str) -> str:
    """Name of the execution cache for ``profile``: changes with the library or parameters.

    Jupyter Book's cache only looks at a notebook's code; the chapters' results also depend on
    ``zsg_lib``, ``params/`` and the profile's own file wherever it lives, so they are part of
    the key.

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> a = cache_key(d, "tiny"); (d / "params").mkdir()
    >>> _ = (d / "params" / "t.yaml").write_text("x: 1")
    >>> a != cache_key(d, "tiny") and cache_key(d, "tiny").startswith("tiny-")
    True
    >>> mine = d / "mine.yaml"; _ = mine.write_text("x: 1"); b = cache_key(d, str(mine))
    >>> _ = mine.write_text("x: 2"); b != cache_key(d, str(mine))
    True
    """
    root = Path(root)
    files = [p for d in ("zsg_lib", "params") for p in (root / d).rglob("*") if p.is_file()
             and p.suffix in {".py", ".yaml", ".yml"} and "__pycache__" not in p.parts]
    try:
        own = resolve_profile_path(profile).read_bytes().hex()
    except ParamsError:  # a stub book's profile name: no file
        own = ""
    return f"{profile_label(profile)}-{_digest(root, files, profile + own)}"


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
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Execute every chapter with ``profile`` and build the site; return the HTML folder.

    ``output`` is the folder that receives ``_build/html`` (default: ``root``). Raises
    :class:`SiteBuildError` when the build fails, for example when a cell raises. ``echo``
    receives the progress lines (default: printed, unless ``quiet``).
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
    if "zsg_lib.site.extension" not in extensions:
        sphinx_cfg["extra_extensions"] = [*extensions, "zsg_lib.site.extension"]
    label = profile_label(profile)
    derived = output / "_build" / f".config-{label}.yml"
    atomic_write_text(derived, yaml.safe_dump(config, sort_keys=False))

    # PYTHONUNBUFFERED: jupyter-book's own lines reach the terminal as they happen
    env = {**os.environ, "ZSG_PROFILE": profile, SITE_ENV: "1", "TQDM_DISABLE": "1",
           "PYTHONUNBUFFERED": "1"}
    env.setdefault("ZSG_HOME", str(root / ".cache" / "zsg"))
    _prune_caches(cache_root, label, keep=key)
    # One events file for every kernel of this build, emptied first (see progress.py).
    events = output / "_build" / f".progress-{label}.jsonl"
    atomic_write_text(events, "")
    env[progress.PROGRESS_ENV] = str(events)
    env.pop(progress.CHAPTER_ENV, None)  # the site extension names each chapter as it reads it
    if echo is None:
        echo = (lambda _: None) if quiet else (lambda text: print(text, flush=True))
    board = progress.Board(*planned_work_of(profile))
    start = time.monotonic()
    with progress.Tailer(events, board, echo):
        returncode, log = _run_streaming(build_command(root, derived, output), root, env, quiet)
    if returncode != 0:
        for line in board.unfinished():
            echo(line)
        problems = warnings_in(log)
        raise SiteBuildError(
            f"jupyter-book build failed (exit {returncode}) for profile {profile!r}:\n"
            + "\n".join(problems or ["(no warning found; see the log above)"])
            + "".join(f"\n{line}" for line in failure_lines(log))
        )
    html = output / "_build" / "html"
    if not quiet:
        print(f"zsg: site built in {time.monotonic() - start:.0f} s -> {html}/index.html")
    return html


def planned_work_of(profile: str) -> tuple[int | None, int | None]:
    """The whole book's number of training runs and of their steps with ``profile``
    (``None, None`` if it is no profile of ``params/``, e.g. a test's stub book)."""
    try:
        from ..profiles.params import load_profile
        from ..study.chapter_runs import planned_runs, planned_steps

        loaded = load_profile(profile)
        return planned_runs(loaded), planned_steps(loaded)
    except Exception:  # noqa: BLE001 - the counts only feed the ETA; the build goes on
        return None, None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SAVED = re.compile(r"^(?P<chapter>\S+): WARNING: Notebook exception traceback saved in: "
                    r"(?P<log>\S+)")
_RULE = "------------------"


def failed_cell(traceback_text: str) -> tuple[str, str]:
    """(source of the cell that raised, last line of the error) from a myst-nb error log.

    >>> failed_cell("CellExecutionError: ... following cell:\\n------------------\\n"
    ...             "x = 1\\nraise KeyError(x)\\n------------------\\n\\nKeyError: 1\\n")
    ('x = 1\\nraise KeyError(x)', 'KeyError: 1')
    """
    text = _ANSI.sub("", traceback_text)
    parts = text.split(_RULE)
    source = parts[1].strip("\n") if len(parts) >= 3 else ""
    last = [t.strip() for t in text.splitlines() if t.strip()]
    return source, (last[-1] if last else "")


def _cell_number(chapter: Path, source: str) -> str:
    """``code cell 3 of 9`` for the cell with this source in the chapter ('' if not found)."""
    try:
        import jupytext

        code = [c for c in jupytext.read(chapter).cells if c.cell_type == "code"]
    except Exception:  # noqa: BLE001 - only a nicer message is at stake
        return ""
    for i, cell in enumerate(code, 1):
        if cell.source.strip() == source.strip():
            return f"code cell {i} of {len(code)}"
    return ""


def failure_lines(log: str) -> list[str]:
    """For each chapter that raised: one line naming chapter and cell, one with the error.

    >>> failure_lines("all fine")
    []
    """
    out: list[str] = []
    for line in _ANSI.sub("", log).splitlines():
        m = _SAVED.search(line.strip())
        if not m or not Path(m["log"]).exists():
            continue
        chapter = Path(m["chapter"])
        source, error = failed_cell(Path(m["log"]).read_text(errors="replace"))
        first = next((s for s in source.splitlines() if s.strip()), "")
        where = _cell_number(chapter, source) or "a cell"
        out.append(f"FAILED chapter {chapter.stem} ({chapter}), {where}: {first}")
        out.append(f"  {error}")
    return out



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


def _run_streaming(cmd: list[str], cwd: Path, env: dict[str, str],
                   quiet: bool) -> tuple[int, str]:
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


def _prune_caches(cache_root: Path, label: str, keep: str) -> None:
    """Delete execution caches of the profile ``label`` made for older library versions."""
    import shutil

    stale = re.compile(rf"{re.escape(label)}-[0-9a-f]{{12}}")
    for d in cache_root.glob(f"{glob.escape(label)}-*"):
        if d.is_dir() and d.name != keep and stale.fullmatch(d.name):
            shutil.rmtree(d, ignore_errors=True)
