"""The ``zsg`` command: bad input is one line and exit code 2, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zsg_lib.cli import main as cli

REPO = Path(__file__).resolve().parents[1]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("zsg: error: ")
    return err


def test_sweep_with_unknown_key_names_file_and_key(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "bad-sweep.yaml"
    sweep.write_text("profile: tiny\nchapters: [03_similarity]\ngird: {seeds: [[0]]}\n")
    assert cli.main(["batch", str(sweep), "--out", str(tmp_path / "out")]) == 2
    err = _one_error_line(capsys)
    assert "bad-sweep.yaml" in err and "gird" in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_bad_override_names_the_key(capsys) -> None:
    assert cli.main(["batch", "03_similarity", "--profile", "tiny", "--set", "train.lr=3"]) == 2
    err = _one_error_line(capsys)
    assert "params/tiny.yaml" in err and "train.lr" in err


def test_malformed_set_and_unknown_profile(capsys) -> None:
    assert cli.main(["batch", "03_similarity", "--set", "max_steps"]) == 2
    assert "KEY=VALUE" in _one_error_line(capsys)
    assert cli.main(["book", "--profile", "no-such-profile"]) == 2
    assert "no-such-profile" in _one_error_line(capsys)


def test_book_checks_every_chapters_data_before_the_first_run(tmp_path: Path, capsys,
                                                              monkeypatch) -> None:
    """`zsg book` refuses a profile its last chapter cannot run on the data before the build
    starts (issue 26: chapter 8 refused niv2-sample after chapters 1-7 had trained an hour)."""
    import yaml

    from zsg_lib.site import build

    profile = yaml.safe_load((REPO / "params" / "tiny.yaml").read_text())
    profile["probes"]["candidates"] = 10_000  # more than any seed's training sample
    path = tmp_path / "late.yaml"
    path.write_text(yaml.safe_dump(profile))
    monkeypatch.setattr(build, "build_site", lambda *a, **k: pytest.fail("the build started"))
    assert cli.main(["book", "--profile", str(path)]) == 2
    err = _one_error_line(capsys)
    assert "late.yaml" in err and "probes.candidates: 10000" in err


def test_unknown_chapter(capsys) -> None:
    assert cli.main(["batch", "07_nothing", "--profile", "tiny"]) == 2
    assert "07_nothing" in _one_error_line(capsys)


def test_console_script_exit_code(tmp_path: Path) -> None:
    """The installed entry point (``python -m zsg_lib.cli.main``) returns 2 to the shell."""
    proc = subprocess.run([sys.executable, "-m", "zsg_lib.cli.main", "batch", str(tmp_path / "x.yaml")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.startswith("zsg: error: ") and "x.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_data_writes_the_suite(tmp_path: Path, capsys) -> None:
    assert cli.main(["demo-data", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "instances" in out and list(tmp_path.glob("demo-suite-*.json"))


@pytest.mark.slow
def test_batch_of_a_chapter_prints_a_line_per_run_and_the_eta(tmp_path: Path, capsys,
                                                            monkeypatch) -> None:
    """`zsg batch` says what it is doing while the runs train (issue 30): papermill's cell
    counter is off, the kernels' run events come back as lines, with the chapter's ETA."""
    monkeypatch.setenv("ZSG_HOME", str(tmp_path / "home"))
    code = cli.main(["batch", "03_similarity", "--profile", "tiny", "--set", "seeds=[0]",
                     "--set", "train.max_steps=2", "--out", str(tmp_path / "out")])
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = out.out.splitlines()
    assert lines[0] == "zsg batch: 03_similarity with profile 'tiny'"
    # the warm-up and nft, fft, rt: 4 runs planned, each a started and a finished line
    started = [ln for ln in lines
               if ln.startswith("zsg: [03_similarity] ") and "started" in ln]
    assert [ln.split("] ")[1].split(":")[0] for ln in started] == [
        "warmup seed 0", "nft seed 0", "fft seed 0", "rt seed 0"]
    assert "run 1/4 started (2 steps)" in started[0]
    trained = [ln for ln in lines if "trained in" in ln]
    assert len(trained) == 4 and "batch ETA" in trained[0] and "(3 runs left)" in trained[0]
    assert trained[-1].endswith("(0 runs left)")
    assert "Executing" not in out.err  # papermill's bar is off
    assert lines[-1].startswith("zsg batch: 03_similarity.py done in")
