"""The build's progress lines: events from kernels, the board's lines and ETA, the tailer,
the hook in experiment._train, and a failing chapter's last lines."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest

from zsg_lib.site import build
from zsg_lib.study import chapter_runs, checks, progress


def _started(label: str, steps: int = 4, **kw) -> dict:
    return {"event": "run_started", "label": label, "steps": steps, **kw}


def _finished(label: str, run_id: str, seconds: float = 10.0, reused: bool = False,
              **kw) -> dict:
    return {"event": "run_finished", "label": label, "steps": 4, "run_id": run_id,
            "seconds": seconds, "reused": reused, **kw}


def test_board_counts_distinct_runs_and_estimates_from_trained_ones() -> None:
    b = progress.Board(planned=4)
    assert b.line(_started("random-seed1", chapter="02_perm")) == \
        "zsg: [02_perm] random seed 1: run 1/4 started (4 steps)"
    assert b.line(_finished("random-seed1", "r1", seconds=20)).endswith(
        "run 1/4 trained in 20 s (4 steps); book ETA 60 s (3 runs left)")
    # A cached run advances the count but not the mean; so does not a shared one.
    assert b.line(_finished("nft-seed1", "r2", seconds=0.2, reused=True)).endswith(
        "run 2/4 cached (read back); book ETA 40 s (2 runs left)")
    assert b.line(_finished("rt-seed1", "r1", reused=True, chapter="03_similarity")) == \
        "zsg: [03_similarity] rt seed 1: shared with an earlier run of this build (read back)"
    assert b.line(_finished("fft-seed1", "r3", seconds=40)).endswith(
        "run 3/4 trained in 40 s (4 steps); book ETA 30 s (1 run left)")
    assert b.line({"event": "something_else"}) is None


def test_eta_follows_the_latest_runs_not_the_slow_first_ones() -> None:
    """Chapter 1's runs (from step 0, with generation) take about twice a branched run; after
    a few branched runs the ETA is theirs."""
    b = progress.Board(planned=20)
    for k in range(3):
        b.line(_finished(f"random-seed{k}", f"slow{k}", seconds=240))
    for k in range(progress.ETA_RECENT_RUNS):
        line = b.line(_finished(f"nft-seed{k}", f"fast{k}", seconds=100 + k))
    left = 20 - 3 - progress.ETA_RECENT_RUNS
    assert line.endswith(f"book ETA {progress.duration(102 * left)} ({left} runs left)")


def test_eta_per_step_holds_steady_as_warm_ups_and_comparisons_alternate() -> None:
    """A warm-up of 8 steps and a comparison of 40 alternate in chapter 2; the ETA goes by
    seconds per step and the steps left, so it does not swing with whichever ran last."""
    b = progress.Board(planned=10, planned_steps=8 * 2 + 40 * 8)
    etas = []
    for k in range(2):
        b.line({**_finished(f"warmup-seed{k}", f"w{k}", seconds=24.0), "steps": 8})
        line = b.line({**_finished(f"nft-seed{k}", f"n{k}", seconds=120.0), "steps": 40})
        etas.append(line)
    # 3 s per step throughout; 6 runs of 40 steps left
    assert etas[-1].endswith(f"book ETA {progress.duration(3.0 * 6 * 40)} (6 runs left)")
    assert etas[0].endswith(f"book ETA {progress.duration(3.0 * 7 * 40 + 3.0 * 8)} "
                            "(8 runs left)")
    # a cached run's steps are done too: they leave the ETA
    line = b.line({**_finished("fft-seed0", "f0", seconds=0.1, reused=True), "steps": 40})
    assert line.endswith(f"book ETA {progress.duration(3.0 * 5 * 40)} (5 runs left)")


def test_planned_steps_count_each_run_once() -> None:
    from zsg_lib.profiles.params import load_profile

    p = load_profile("cpu-demo")
    n, seeds = chapter_runs.planned_runs(p), len(p.seeds)
    assert chapter_runs.planned_steps(p) == (n - seeds) * p.train.max_steps + seeds * p.warmup.steps
    cold = load_profile("cpu-demo", {"warmup.steps": 0})
    assert chapter_runs.planned_steps(cold) == chapter_runs.planned_runs(cold) * cold.train.max_steps
    assert build.planned_work_of("cpu-demo") == (n, chapter_runs.planned_steps(p))
    assert build.planned_work_of("no-such-profile") == (None, None)


def test_board_without_a_plan_or_past_it() -> None:
    b = progress.Board(planned=None)
    assert b.line(_started("custom", profile="tiny")) == "zsg: [tiny] custom: run 1 started (4 steps)"
    assert "ETA" not in b.line(_finished("custom", "c1"))
    over = progress.Board(planned=1)
    over.line(_finished("a-seed0", "a"))
    assert "run 2 (1 planned)" in over.line(_finished("b-seed0", "b"))


def test_runs_read_back_at_once_get_no_started_line() -> None:
    b = progress.Board(planned=2)
    assert b.line(_started("nft-seed0", run_id="n", ready=True)) is None
    assert b.line(_finished("nft-seed0", "n", reused=True)).endswith("run 1/2 cached (read back)")
    assert b.line(_started("rt-seed0", run_id="n")) is None  # shared with a run already done
    assert b.line(_started("fft-seed0", run_id="f")).endswith("run 2/2 started (4 steps)")
    assert b.unfinished() == ["zsg: run fft seed 0 in ? started and did not finish"]


def test_an_unfinished_run_is_named() -> None:
    b = progress.Board(planned=2)
    b.line(_started("tma-window3-seed1", chapter="05_tma"))
    b.line(_started("nft-seed0"))
    b.line(_finished("nft-seed0", "n"))
    assert b.unfinished() == ["zsg: run tma-window3 seed 1 in 05_tma started and did not finish"]


def test_events_reach_the_tailer_in_order_even_split_mid_line(tmp_path, monkeypatch) -> None:
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(events))
    monkeypatch.setenv(progress.CHAPTER_ENV, "01_early")
    seen: list[str] = []
    tailer = progress.Tailer(events, progress.Board(planned=2), seen.append, interval=0.01)

    def kernel() -> None:  # what a chapter's kernel does through experiment._train
        progress.run_started("nft-seed0", 4, profile="tiny")
        progress.run_finished("nft-seed0", 4, reused=False, run_id="n0", profile="tiny")

    with tailer:
        t = threading.Thread(target=kernel)
        t.start()
        t.join()
        with events.open("ab") as f:  # a line caught half-written is kept for the next poll
            f.write(json.dumps(_started("fft-seed0"))[:20].encode())
        tailer.poll()
        with events.open("ab") as f:
            f.write(json.dumps(_started("fft-seed0"))[20:].encode() + b"\nnot json\n")
    assert seen[0] == "zsg: [01_early] nft seed 0: run 1/2 started (4 steps)"
    assert seen[1].startswith("zsg: [01_early] nft seed 0: run 1/2 trained in ")
    assert seen[2] == "zsg: [?] fft seed 0: run 2/2 started (4 steps)"
    assert len(seen) == 3
    rows = [json.loads(x) for x in events.read_text().splitlines()[:2]]
    assert rows[1]["reused"] is False and rows[1]["seconds"] >= 0 and rows[1]["run_id"] == "n0"


def test_a_relative_events_path_reaches_kernels_in_another_folder(tmp_path, monkeypatch) -> None:
    """``zsg batch`` with its default (relative) output folder: papermill's kernel runs in the
    notebook's folder, and its run lines must still reach the terminal."""
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    with progress.reporting("runs/batch/events.jsonl", progress.Board(planned=1), lines.append):
        elsewhere = tmp_path / "book"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)  # where the kernel runs
        progress.run_started("random-seed0", 4)
        progress.run_finished("random-seed0", 4, False, "r0")
    assert any("random seed 0: run 1/1 started (4 steps)" in line for line in lines)
    assert not (elsewhere / "runs").exists()


def test_outside_a_build_events_do_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    progress.run_started("nft-seed0", 4)
    progress.run_finished("nft-seed0", 4, reused=True)
    assert list(tmp_path.iterdir()) == []


def test_train_hook_reports_start_and_end(tmp_path, monkeypatch) -> None:
    from zsg_lib.study import experiment as ex
    from zsg_lib.train import run as run_module

    events = tmp_path / "events.jsonl"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(events))
    record = SimpleNamespace(reused=True, run_id="abc123")

    def fake_train_run(*a, on_start, **k):  # the record is on disk: read back
        on_start(record.run_id, True)
        return record

    monkeypatch.setattr(run_module, "train_run", fake_train_run)
    P = checks.setup("tiny")
    import pandas as pd

    from zsg_lib.arrange import Arrangement

    arr = Arrangement("nft", [f"i{k}" for k in range(1000)], pd.DataFrame())
    assert ex._train(P, arr, None, None, 0, "nft-seed0", False, branch=False) is record
    start, end = (json.loads(x) for x in events.read_text().splitlines())
    assert start["event"] == "run_started" and start["label"] == "nft-seed0"
    assert start["steps"] == P.train.max_steps and start["profile"] == P.name
    assert start["run_id"] == "abc123" and start["ready"] is True
    assert end["event"] == "run_finished" and end["reused"] is True and end["run_id"] == "abc123"


def test_gradient_features_get_lines_when_computed_not_when_cached(tmp_path, monkeypatch):
    import numpy as np

    from zsg_lib.study import experiment as ex
    from zsg_lib.train import gradient_cache

    events = tmp_path / "events.jsonl"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(events))
    monkeypatch.setenv(progress.CHAPTER_ENV, "07_instance_level")
    cached: set[int] = set()

    def fake_features_for(cfg, table, state, dim, seed, on_compute=None, **kw):
        if len(table) not in cached:  # the first call computes, the second hits the cache
            on_compute(len(table))
            cached.add(len(table))
        return np.zeros((len(table), dim), dtype=np.float32)

    monkeypatch.setattr(gradient_cache, "features_for", fake_features_for)
    monkeypatch.setattr(ex, "branch_point", lambda profile, seed: None)
    P = checks.setup("tiny")
    n = len(ex.prepare(P, 0).train)
    for _ in range(2):
        assert ex.gradient_features(P, 0, "train").shape[0] == n
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["work_started", "work_finished"]
    board = progress.Board(planned=1)
    assert [board.line(e) for e in lines] == [
        f"zsg: [07_instance_level] gradient features (train) seed 0: computing ({n} instances)",
        f"zsg: [07_instance_level] gradient features (train) seed 0: computed in "
        f"{progress.duration(lines[1]['seconds'])} ({n} instances)"]
    assert board.unfinished() == [] and board.done == set()  # not a run: no count, no ETA


def test_failure_lines_name_chapter_cell_and_error(tmp_path) -> None:
    chapter = tmp_path / "book" / "02_failing.py"
    chapter.parent.mkdir()
    chapter.write_text('# %%\nx = 1\n\n# %%\nraise RuntimeError("boom")\n')
    err = tmp_path / "02_failing.err.log"
    err.write_text('nbclient.exceptions.CellExecutionError: An error occurred while executing '
                   'the following cell:\n------------------\nraise RuntimeError("boom")\n'
                   '------------------\n\n\x1b[31mRuntimeError\x1b[39m: boom\n')
    log = (f"\x1b[91m{chapter}: WARNING: Executing notebook failed: CellExecutionError\n"
           f"\x1b[91m{chapter}: WARNING: Notebook exception traceback saved in: {err} "
           "[mystnb.exec]\x1b[39;49;00m\n")
    assert build.failure_lines(log) == [
        f'FAILED chapter 02_failing ({chapter}), code cell 2 of 2: raise RuntimeError("boom")',
        "  RuntimeError: boom",
    ]


STUB_TRAINING = '''\
# %% [markdown]
# # A chapter that reports two runs

# %%
from zsg_lib.study import chapter_runs, checks, progress
progress.run_started("nft-seed0", 3, profile="stub")
progress.run_finished("nft-seed0", 3, reused=False, run_id="r0", profile="stub")
progress.run_started("fft-seed0", 3, profile="stub")
raise RuntimeError("boom mid-run")
'''


@pytest.mark.slow
def test_build_prints_runs_and_ends_with_the_failure(tmp_path, make_stub) -> None:
    root = make_stub(tmp_path / "book")
    (root / "book" / "01_chart.py").write_text(STUB_TRAINING)
    seen: list[str] = []
    with pytest.raises(build.SiteBuildError) as err:
        build.build_site(root, profile="stub", cache_root=tmp_path / "cache", quiet=True,
                         echo=seen.append)
    assert seen[0] == "zsg: [01_chart] nft seed 0: run 1 started (3 steps)"
    assert seen[1].startswith("zsg: [01_chart] nft seed 0: run 1 trained in ")
    assert seen[2] == "zsg: [01_chart] fft seed 0: run 2 started (3 steps)"
    assert seen[3] == "zsg: run fft seed 0 in 01_chart started and did not finish"
    last = str(err.value).splitlines()[-2:]
    assert last[0].startswith("FAILED chapter 01_chart (") and "code cell 1 of 1" in last[0]
    assert last[1] == "  RuntimeError: boom mid-run"
