"""Sweeps in parallel: worker slots and devices, the status lock, schedulers, bad flags."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import pytest

from zsg_lib.cli import batch, main as cli, workers
from zsg_lib.errors import ParamsError

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "sweeps" / "tiny-smoke.yaml"

# A stand-in chapter: logs each execution with the GPU it was given, fails when asked to.
CHAPTER = '''\
# %% tags=["parameters"]
profile = "cpu-demo"
overrides = {}

# %%
import os, pathlib
with pathlib.Path(overrides["log"]).open("a") as f:
    f.write(f"{overrides['x']} {os.environ.get('CUDA_VISIBLE_DEVICES', '-')}\\n")
if overrides.get("fail"):
    raise ValueError(f"run {overrides['x']} was told to fail")
'''


def _specs(chapter: Path, log: Path, xs=(1, 2, 3), fail_x: int | None = None) -> list[dict]:
    return [{"name": f"stub--x={x}", "chapter": str(chapter), "profile": "tiny",
             "overrides": {"x": x, "log": str(log), **({"fail": True} if x == fail_x else {})}}
            for x in xs]


def _bad_flag(capsys, *argv: str) -> str:
    assert cli.main(["batch", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zsg: error: ") and len(err.splitlines()) == 1, err
    return err


def test_bad_flags_fail_before_any_run(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert "--jobs 0" in _bad_flag(capsys, str(SMOKE), "--out", str(out), "--jobs", "0")
    err = _bad_flag(capsys, str(SMOKE), "--out", str(out), "--jobs", "3", "--devices", "0,1")
    assert "--jobs 3 with --devices 0,1" in err and "more jobs than devices" in err
    assert "--devices" in _bad_flag(capsys, str(SMOKE), "--out", str(out), "--devices", "0,,1")
    assert "sweep file" in _bad_flag(capsys, "03_similarity", "--jobs", "2")
    assert not out.exists()


def test_slurm_without_sbatch_names_the_flag(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    err = _bad_flag(capsys, str(SMOKE), "--out", str(tmp_path / "out"), "--jobs", "2",
                    "--scheduler", "slurm")
    assert "--scheduler slurm" in err and "sbatch" in err
    assert not (tmp_path / "out" / batch.STATUS_FILE).exists()


def test_missing_submitit_names_the_flag(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    with pytest.raises(ParamsError, match=r"--scheduler submitit-local: needs submitit"):
        workers.make_executor("submitit-local", tmp_path, 2)
    with pytest.raises(ParamsError, match="--scheduler 'pbs'"):
        workers.make_executor("pbs", tmp_path, 2)


def test_slots_share_visible_gpus_and_follow_cuda_visible_devices(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert workers.visible_devices() == ["2", "3"]
    assert workers.plan_slots(3) == ["2", "3", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert workers.plan_slots(2) == [None, None]


def test_status_updates_from_many_writers_keep_every_entry(tmp_path) -> None:
    (tmp_path / batch.STATUS_FILE).write_text(json.dumps({"runs": {"other": {"status": "ok"}}}))

    def writer(w: int) -> None:
        for k in range(15):
            batch.update_status(tmp_path, f"w{w}-{k}", {"status": "ok", "k": k})

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    status = batch.read_status(tmp_path)
    assert len(status) == 6 * 15 + 1 and status["other"] == {"status": "ok"}
    merged = batch.update_status(tmp_path, "w0-0", {"status": "skipped"}, merge=True)
    assert merged == {"status": "skipped", "k": 0}


class _FakeJob:
    def __init__(self, value: dict, polls: int) -> None:
        self.value, self.polls = value, polls

    def done(self) -> bool:
        self.polls -= 1
        return self.polls < 0

    def result(self) -> dict:
        if "boom" in self.value:
            raise RuntimeError("worker killed")
        return self.value


class _FakeExecutor:
    """Records what is in flight at each submission; jobs end after a few polls."""

    def __init__(self) -> None:
        self.flying: list[_FakeJob] = []
        self.devices_in_flight: list[list[str]] = []

    def submit(self, fn, spec, chapter, out_dir, device, progress) -> _FakeJob:
        assert fn is batch.run_member
        self.flying = [j for j in self.flying if j.polls >= 0]
        job = _FakeJob({"name": spec["name"], "status": "ok", "device": device,
                        **({"boom": 1} if spec.get("boom") else {})}, polls=len(spec["name"]))
        self.flying.append(job)
        self.devices_in_flight.append([j.value["device"] for j in self.flying])
        return job


def test_dispatch_keeps_one_member_per_device_in_flight(tmp_path) -> None:
    members = [(i, {"name": "m" * i, "chapter": "c", **({"boom": 1} if i == 4 else {})},
                Path("c.py")) for i in range(1, 6)]
    ex, done = _FakeExecutor(), {}
    batch._dispatch(ex, members, tmp_path, ["0", "1"], False,
                    lambda i, rec: done.__setitem__(i, rec), poll_s=0)
    assert sorted(done) == [1, 2, 3, 4, 5]
    assert all(len(d) == len(set(d)) <= 2 for d in ex.devices_in_flight)
    assert {done[i]["device"] for i in (1, 2, 3, 5)} <= {"0", "1"}
    # A worker that dies is recorded by the parent, under the lock, as failed.
    assert done[4]["status"] == "failed" and "worker killed" in done[4]["error"]
    assert batch.read_status(tmp_path)["mmmm"]["status"] == "failed"


def test_run_member_pins_its_kernel_and_restores_the_env(tmp_path, monkeypatch) -> None:
    seen = {}

    def fake_run_chapter(chapter, params, out_dir, name, progress):
        seen["device"] = os.environ.get("CUDA_VISIBLE_DEVICES")
        return Path(out_dir) / f"{name}.ipynb"

    monkeypatch.setattr(batch, "run_chapter", fake_run_chapter)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    spec = {"name": "a", "chapter": "c.py", "profile": "tiny", "overrides": {}}
    rec = batch.run_member(spec, "c.py", tmp_path, device="1")
    assert seen["device"] == "1" and "CUDA_VISIBLE_DEVICES" not in os.environ
    assert rec["status"] == "ok" and rec["device"] == "1"
    assert batch.read_status(tmp_path)["a"]["status"] == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["local", "submitit-local"])
def test_parallel_sweep_records_each_member_once_and_resumes(tmp_path, scheduler) -> None:
    if scheduler != "local":
        pytest.importorskip("submitit")
    chapter = tmp_path / "stub.py"
    chapter.write_text(CHAPTER)
    log, out = tmp_path / "executions.log", tmp_path / "sweep"
    out.mkdir()
    (out / batch.STATUS_FILE).write_text(json.dumps({"runs": {"other": {"status": "ok"}}}))
    lines: list[str] = []
    table = batch.run_specs(_specs(chapter, log, fail_x=2), out, log=lines.append, jobs=2,
                            devices=["0", "1"], scheduler=scheduler)
    assert list(table["status"]) == ["ok", "failed", "ok"], table
    assert "ValueError: run 2 was told to fail" in table.loc[1, "error"]
    runs = dict(line.split() for line in log.read_text().splitlines())
    assert sorted(runs) == ["1", "2", "3"] and set(runs.values()) <= {"0", "1"}
    status = batch.read_status(out)
    assert status["other"] == {"status": "ok"}
    assert {status[f"stub--x={x}"]["device"] for x in (1, 2, 3)} <= {"0", "1"}
    assert any("in 2 workers" in line for line in lines)

    table = batch.run_specs(_specs(chapter, log), out, log=lambda _: None, jobs=2,
                            devices=["0", "1"], scheduler=scheduler)
    assert list(table["status"]) == ["skipped", "ok", "skipped"]
    assert sorted(x.split()[0] for x in log.read_text().splitlines()) == ["1", "2", "2", "3"]
