"""Issue 10 in training and run records: a non-finite loss never becomes a DONE run, a damaged
record fails naming its folder (and does not sink load_runs), writers' temp files are cleaned
exactly, and two processes starting the same run train it once (tiny model, CPU)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from factories import conv

from zsg_lib import atomic
from zsg_lib.errors import TrainError
from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, load_runs, loop as loop_module, records as runs, train_run

REPO = Path(__file__).resolve().parents[1]


TRAIN = instances_from_records([{"id": f"t{i}", "task": f"k{i % 2}",
                                 "messages": conv(f"{i}+{i}?", str(2 * i))} for i in range(8)])
TEST = instances_from_records([{"id": f"x{i}", "task": "k0",
                                "messages": conv(f"{i}-1?", str(i - 1))} for i in range(3)])
ORDER = [f"t{i}" for i in range(8)]


def cfg(**kw) -> TrainConfig:
    base = {"model": "tiny", "bf16_autocast": False, "batch_size": 2, "eval_every": 2,
            "learning_rate": 1e-2, "lora_dropout": 0.0}
    return TrainConfig(**{**base, **kw})


def run(root: Path, **kw):
    return train_run(cfg(**kw), TRAIN, TEST, ORDER, runs_root=root, progress=False)


def only_run_dir(root: Path) -> Path:
    (d,) = [p for p in root.iterdir() if p.is_dir()]
    return d


# --------------------------------------------------------------------------- 3. NaN losses


def nan_after(monkeypatch, calls: int) -> None:
    """Make the training loss NaN from the ``calls``-th micro-batch on."""
    real = loop_module.response_token_losses
    seen = {"n": 0}

    def fake(model, batch):
        sums, counts = real(model, batch)
        seen["n"] += 1
        return (sums * float("nan") if seen["n"] >= calls else sums), counts

    monkeypatch.setattr(loop_module, "response_token_losses", fake)


def test_nan_training_loss_fails_naming_step_and_folder(tmp_path, monkeypatch):
    nan_after(monkeypatch, calls=3)  # batch_size 2, one micro-batch per step: step 3
    with pytest.raises(TrainError, match=r"training loss became non-finite \(nan\) at step 3"
                       ) as err:
        run(tmp_path)
    run_dir = only_run_dir(tmp_path)
    assert str(run_dir) in str(err.value) and "delete the folder" in str(err.value)
    assert not runs.is_done(run_dir)
    assert load_runs(tmp_path).params.empty  # nothing finished to analyse


def test_a_failed_nan_run_is_not_reused_later(tmp_path, monkeypatch):
    nan_after(monkeypatch, calls=2)
    with pytest.raises(TrainError, match="at step 2"):
        run(tmp_path)
    monkeypatch.undo()
    rec = run(tmp_path)  # the same run id, trained now, not read back
    assert rec.reused is False and runs.is_done(rec.path)
    assert rec.path == only_run_dir(tmp_path)
    assert rec.log["train_loss"].notna().all()


def test_huge_learning_rate_makes_a_non_finite_loss_that_is_refused(tmp_path):
    with pytest.raises(TrainError, match=r"loss became non-finite \((nan|inf)\) at step \d+"):
        run(tmp_path, learning_rate=1e20, eval_every=1, max_steps=4)
    assert not runs.is_done(only_run_dir(tmp_path))


def test_non_finite_test_loss_mean_fails(tmp_path, monkeypatch):
    real = loop_module.score_examples
    scored = {"n": 0}

    def fake(*args, **kw):
        rows = real(*args, **kw)
        scored["n"] += 1
        if scored["n"] == 2:  # the second scoring: step 2
            rows[0]["loss"] = float("inf")
        return rows

    monkeypatch.setattr(loop_module, "score_examples", fake)
    with pytest.raises(TrainError, match=r"mean test loss became non-finite \(inf\) at step 2"):
        run(tmp_path)
    assert not runs.is_done(only_run_dir(tmp_path))


# --------------------------------------------------------------------------- 6. temp files


def test_atomic_temp_names_carry_the_writers_pid(tmp_path):
    with atomic.atomic_path(tmp_path / "a.txt") as tmp:
        assert atomic.writer_pid(tmp.name) == os.getpid()
        tmp.write_text("x")
    assert (tmp_path / "a.txt").read_text() == "x" and not list(tmp_path.glob(".tmp-*"))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # exited and reaped: no process has this pid (until reused)


def test_clean_stale_temps_removes_only_dead_writers(tmp_path):
    dead = dead_pid()
    stale = tmp_path / f".tmp-checkpoint.pt.{dead}.k2j9x0a1"
    stale.write_bytes(b"half a checkpoint")
    stale_dir = tmp_path / f".tmp-step-4.{dead}.q8w7e6r5"
    stale_dir.mkdir()
    live = tmp_path / f".tmp-log.parquet.{os.getpid()}.a1b2c3d4"
    live.write_bytes(b"being written")
    legacy = tmp_path / ".tmp-scores.parquet.a1b2c3d4"  # no pid: cannot tell, left alone
    legacy.write_bytes(b"?")
    removed = atomic.clean_stale_temps(tmp_path)
    assert sorted(removed) == sorted([stale, stale_dir])
    assert live.exists() and legacy.exists() and not stale.exists() and not stale_dir.exists()


def test_a_run_start_cleans_what_killed_writers_left(tmp_path):
    rec = run(tmp_path, max_steps=2)
    (rec.path / runs.DONE).unlink()  # as if killed before the end
    dead = dead_pid()
    leftovers = [rec.path / f".tmp-checkpoint.pt.{dead}.aaaaaaaa",
                 rec.path / f".tmp-log.parquet.{dead}.bbbbbbbb"]
    for p in leftovers:
        p.write_bytes(b"truncated")
    (rec.path / "adapters").mkdir()
    adapter_tmp = rec.path / "adapters" / f".tmp-step-2.{dead}.cccccccc"
    adapter_tmp.mkdir()
    again = run(tmp_path, max_steps=2)
    assert again.reused is False and runs.is_done(again.path)
    assert not any(p.exists() for p in [*leftovers, adapter_tmp])


# --------------------------------------------------------------------------- 6. damage


def test_truncated_checkpoint_fails_naming_the_folder(tmp_path):
    rec = run(tmp_path, max_steps=2)
    (rec.path / runs.DONE).unlink()
    (rec.path / runs.CHECKPOINT).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(TrainError, match=r"checkpoint.pt is unreadable .*delete the folder to "
                                         r"retrain") as err:
        run(tmp_path, max_steps=2)
    assert str(rec.path) in str(err.value)


def test_truncated_score_table_fails_naming_the_folder(tmp_path):
    rec = run(tmp_path, max_steps=2)
    scores = rec.path / runs.SCORES
    scores.write_bytes(scores.read_bytes()[: scores.stat().st_size // 2])
    with pytest.raises(TrainError, match=r"scores.parquet is unreadable .*truncated\?\): delete "
                                         r"the folder to retrain") as err:
        run(tmp_path, max_steps=2)  # the finished run is read back, and checked
    assert str(rec.path) in str(err.value)


def test_unreadable_done_or_params_fail_naming_the_folder(tmp_path):
    rec = run(tmp_path, max_steps=2)
    (rec.path / runs.DONE).write_text("{not json")
    with pytest.raises(TrainError, match=rf"{rec.path}: DONE is unreadable"):
        runs.read_record(rec.path)
    (rec.path / runs.PARAMS).write_text('{"format_version": 1, "run_')
    with pytest.raises(TrainError, match=rf"{rec.path}: params.json is unreadable"):
        run(tmp_path, max_steps=2)


def test_disk_full_write_fails_naming_the_folder_and_leaves_no_done(tmp_path, monkeypatch):
    def full(*args, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runs.pq, "write_table", full)
    with pytest.raises(TrainError, match=r"could not write order.parquet \(\[Errno 28\] No "
                                         r"space left on device\); free space") as err:
        run(tmp_path, max_steps=2)
    run_dir = only_run_dir(tmp_path)
    assert str(run_dir) in str(err.value) and not runs.is_done(run_dir)
    assert not list(run_dir.glob(".tmp-*"))  # the atomic write removed its temp file


def test_disk_full_checkpoint_names_the_checkpoint(tmp_path, monkeypatch):
    def full(*args, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(TrainError, match=r"could not write checkpoint.pt"):
        run(tmp_path, max_steps=4, checkpoint_every=1)
    assert not runs.is_done(only_run_dir(tmp_path))


def test_load_runs_skips_and_lists_a_damaged_run(tmp_path):
    good = run(tmp_path, max_steps=2)
    bad = run(tmp_path, max_steps=3)
    log = bad.path / runs.LOG
    log.write_bytes(log.read_bytes()[:20])
    with pytest.warns(UserWarning, match=r"skipped 1 damaged run\(s\).*log.parquet"):
        tables = load_runs(tmp_path)
    assert tables.params.run_id.tolist() == [good.run_id]
    assert set(tables.scores.run_id) == {good.run_id}
    assert [d for d, _ in tables.skipped] == [bad.path]
    assert "log.parquet is unreadable" in tables.skipped[0][1]


def test_load_runs_skips_a_run_with_unreadable_params(tmp_path):
    good = run(tmp_path, max_steps=2)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / runs.PARAMS).write_text("{")
    (broken / runs.DONE).write_text("{}")
    with pytest.warns(UserWarning, match="broken"):
        tables = load_runs(tmp_path)
    assert tables.params.run_id.tolist() == [good.run_id]
    assert tables.skipped[0][0] == broken and "params.json" in tables.skipped[0][1]
    assert load_runs(good.path).skipped == []


# --------------------------------------------------------------------------- 6. two processes

JOB = r'''
import json, os, sys, time
from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, train_run

root, marker = sys.argv[1], sys.argv[2]
conv = lambda q, a: [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
train = instances_from_records([{"id": f"t{i}", "task": "k", "messages": conv(f"{i}?", str(i))}
                                for i in range(8)])
test = instances_from_records([{"id": "x", "task": "k", "messages": conv("9?", "9")}])

def on_step(step, row):  # every trained step, by whom; slow enough to overlap
    with open(marker, "a") as f:
        f.write(f"{os.getpid()} {step}\n")
    time.sleep(0.4)

cfg = TrainConfig(model="tiny", bf16_autocast=False, batch_size=2, eval_every=2,
                  learning_rate=1e-2, lora_dropout=0.0)
rec = train_run(cfg, train, test, [f"t{i}" for i in range(8)], runs_root=root,
                progress=False, on_step=on_step)
print(json.dumps({"run_id": rec.run_id, "reused": rec.reused, "pid": os.getpid()}))
'''


def test_two_processes_starting_the_same_run_train_it_once(tmp_path):
    script, marker, root = tmp_path / "job.py", tmp_path / "steps.txt", tmp_path / "runs"
    script.write_text(JOB)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    def start():
        return subprocess.Popen([sys.executable, str(script), str(root), str(marker)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = start()
    deadline = time.time() + 180
    while time.time() < deadline and first.poll() is None and not marker.exists():
        time.sleep(0.05)
    assert marker.exists(), f"the first process never trained: {first.stderr.read()[-2000:]}"
    second = start()  # the first is mid-run: it holds the lock, nothing is DONE yet
    outs = []
    for proc in (first, second):
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert outs[0]["run_id"] == outs[1]["run_id"]
    assert [o["reused"] for o in outs] == [False, True]
    trainers = {line.split()[0] for line in marker.read_text().splitlines()}
    assert trainers == {str(outs[0]["pid"])}  # only the first process ran any step
    assert [int(line.split()[1]) for line in marker.read_text().splitlines()] == [1, 2, 3, 4]
