"""Batch runs through papermill: failures recorded, other runs kept, reruns resume."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from zsg_lib.cli import batch

pytestmark = pytest.mark.slow  # each run starts a kernel (~3 s)

# A stand-in chapter: logs each execution, fails when asked to.
CHAPTER = '''\
# %% tags=["parameters"]
profile = "cpu-demo"
overrides = {}

# %%
import pathlib
with pathlib.Path(overrides["log"]).open("a") as f:
    f.write(f"{overrides['x']}\\n")
if overrides.get("fail"):
    raise ValueError(f"run {overrides['x']} was told to fail")
result = overrides["x"] * 2
'''


def _specs(chapter: Path, log: Path, fail_x: int | None) -> list[dict]:
    return [
        {"name": f"stub--x={x}", "chapter": str(chapter), "profile": "tiny",
         "overrides": {"x": x, "log": str(log), **({"fail": True} if x == fail_x else {})}}
        for x in (1, 2, 3)
    ]


def test_sweep_records_failures_keeps_others_and_resumes(tmp_path: Path) -> None:
    chapter = tmp_path / "stub.py"
    chapter.write_text(CHAPTER)
    log, out = tmp_path / "executions.log", tmp_path / "sweep"
    out.mkdir()
    # A record from another sweep in the same folder must survive.
    (out / batch.STATUS_FILE).write_text(json.dumps({"runs": {"other": {"status": "ok"}}}))

    table = batch.run_specs(_specs(chapter, log, fail_x=2), out, log=lambda _: None)
    assert list(table["status"]) == ["ok", "failed", "ok"]
    assert "ValueError: run 2 was told to fail" in table.loc[1, "error"]
    assert (out / "stub--x=2.failed.ipynb").exists() and not (out / "stub--x=2.ipynb").exists()
    done = nbformat.read(out / "stub--x=1.ipynb", as_version=4)
    assert done.metadata["zsg"]["complete"] is True
    assert any("parameters" in c.metadata.get("tags", []) for c in done.cells)  # tag kept
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in done.cells)
    status = batch.read_status(out)
    assert status["other"] == {"status": "ok"} and status["stub--x=3"]["status"] == "ok"
    assert not list(out.glob(".*running*"))

    # Rerun with the failure fixed: finished runs are skipped, only x=2 executes again.
    table = batch.run_specs(_specs(chapter, log, fail_x=None), out, log=lambda _: None)
    assert list(table["status"]) == ["skipped", "ok", "skipped"]
    assert log.read_text().split() == ["1", "2", "3", "2"]
    assert (out / "stub--x=2.ipynb").exists() and not (out / "stub--x=2.failed.ipynb").exists()
    assert batch.read_status(out)["other"] == {"status": "ok"}


def test_changed_parameters_rerun(tmp_path: Path) -> None:
    chapter = tmp_path / "stub.py"
    chapter.write_text(CHAPTER)
    log = tmp_path / "executions.log"
    spec = _specs(chapter, log, fail_x=None)[:1]
    batch.run_specs(spec, tmp_path / "out", log=lambda _: None)
    spec[0]["overrides"]["x"] = 5  # same name, different parameters: not complete
    assert list(batch.run_specs(spec, tmp_path / "out", log=lambda _: None)["status"]) == ["ok"]
    assert log.read_text().split() == ["1", "5"]


def test_run_chapter_failure_names_the_cell(tmp_path: Path) -> None:
    chapter = tmp_path / "stub.py"
    chapter.write_text(CHAPTER)
    params = {"overrides": {"x": 7, "log": str(tmp_path / "l"), "fail": True}}
    with pytest.raises(batch.RunFailed, match=r"cell \d+ raised ValueError: run 7 was told"):
        batch.run_chapter(chapter, params, tmp_path, progress=False)


def test_unknown_chapter_fails_before_any_run(tmp_path: Path) -> None:
    specs = [{"name": "a", "chapter": str(tmp_path / "missing.py")}]
    with pytest.raises(batch.ParamsError, match="missing.py"):
        batch.run_specs(specs, tmp_path / "out", log=lambda _: None)
    assert not (tmp_path / "out" / batch.STATUS_FILE).exists()


def test_the_tiny_sweep_runs_and_resumes(tmp_path: Path, monkeypatch) -> None:
    """The repository's test sweep (a real chapter, two seeds) through the same runner."""
    monkeypatch.setenv("ZSG_HOME", str(tmp_path / "home"))  # its runs train here, not cached
    sweep = Path(__file__).resolve().parents[1] / "params" / "sweeps" / "tiny-smoke.yaml"
    lines: list[str] = []
    table = batch.run_sweep(sweep, tmp_path, log=lines.append)
    assert list(table["status"]) == ["ok"] * len(table) and len(table) >= 2, table
    assert all(Path(p).exists() for p in table["notebook"])
    assert any("[1/" in line for line in lines)  # progress per member
    # which member runs, then the same per-run lines and ETA as `zsg book`, named by member
    first = next(line for line in lines if "running (03_similarity" in line)
    member = first.split("] ", 1)[1].split(":", 1)[0]
    runs = [line for line in lines if line.startswith(f"zsg: [{member}] ")]
    assert any("warmup seed 0: run 1/" in line and "started" in line for line in runs), lines
    assert any("trained in" in line and "ETA" in line for line in runs), lines
    assert lines.index(first) < lines.index(runs[0])
    again = batch.run_sweep(sweep, tmp_path, log=lambda _: None)
    assert set(again["status"]) == {"skipped"}
