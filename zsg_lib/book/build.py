"""The book build: execute every chapter with a profile and build the site (Jupyter Book v1).

:func:`build_site` runs ``jupyter-book build`` with ``--all -W -n --keep-going`` so that a
failing cell fails the build, with the execution cache keyed by profile and library version.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from ..atomic import atomic_write_text
from .render import SITE_ENV, write_vega_bundle


class SiteBuildError(RuntimeError):
    """The book could not be built (a chapter failed, or the configuration is broken)."""


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
    if "zsg_lib.book.site" not in extensions:
        sphinx_cfg["extra_extensions"] = [*extensions, "zsg_lib.book.site"]
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
