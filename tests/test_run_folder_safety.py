"""Issue 31: a run folder is data, never code, and environment faults name the folder.

Resume (``checkpoint.pt``) and branch (``final-state.pt``) states are read with PyTorch's
``weights_only`` unpickler: a crafted state that would run code when unpickled is refused with
a TrainError naming the run folder, the code never runs, and nothing on disk is touched. A
runs root that cannot be written and a file-size limit hit while a checkpoint is written are
TrainErrors naming the folder, with nothing half-written (tiny model, CPU).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from factories import conv

from zsg_lib.errors import TrainError
from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, records as runs, states, train_run

REPO = Path(__file__).resolve().parents[1]
TRAIN = instances_from_records([{"id": f"t{i}", "task": f"k{i % 2}",
                                 "messages": conv(f"{i}+{i}?", str(2 * i))} for i in range(12)])
TEST = instances_from_records([{"id": f"x{i}", "task": "k0",
                                "messages": conv(f"{i}-1?", str(i - 1))} for i in range(3)])
IDS = TRAIN.column("id").to_pylist()
BASE = dict(model="tiny", bf16_autocast=False, batch_size=2, eval_every=2, learning_rate=1e-2,
            lora_dropout=0.0)


class _RunsCode:
    """Unpickling this calls ``marker.touch()``: what a crafted state would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}


def test_a_crafted_checkpoint_is_refused_without_running_it(tmp_path):
    cfg = TrainConfig(**BASE, max_steps=4)
    done = train_run(cfg, TRAIN, TEST, IDS[:8], runs_root=tmp_path, progress=False)
    (done.path / runs.DONE).unlink()  # unfinished: the next start resumes from checkpoint.pt
    marker = tmp_path / "code-ran"
    state = {"step": 2, "trainable": {}, "payload": _RunsCode(marker)}
    torch.save(state, done.path / runs.CHECKPOINT)
    before = _snapshot(done.path)
    with pytest.raises(TrainError) as err:
        train_run(cfg, TRAIN, TEST, IDS[:8], runs_root=tmp_path, progress=False)
    msg = str(err.value)
    assert str(done.path) in msg and "checkpoint.pt" in msg
    assert "refused it without running any of it" in msg and "delete the folder" in msg
    assert not marker.exists()
    assert _snapshot(done.path) == before  # nothing overwritten, nothing marked DONE

    # the same object under plain pickle (no PyTorch zip container) is refused alike
    import pickle
    (done.path / runs.CHECKPOINT).write_bytes(pickle.dumps(state))
    with pytest.raises(TrainError, match=r"checkpoint.pt is not a training state zsg can read"):
        train_run(cfg, TRAIN, TEST, IDS[:8], runs_root=tmp_path, progress=False)
    assert not marker.exists()


def test_a_crafted_branch_state_is_refused_without_running_it(tmp_path):
    warm = train_run(TrainConfig(**BASE, max_steps=2, keep_final_state=True), TRAIN, TEST,
                     IDS[:4], runs_root=tmp_path, progress=False)
    marker = tmp_path / "code-ran"
    torch.save({"step": 2, "payload": _RunsCode(marker)}, warm.path / runs.FINAL)
    with pytest.raises(TrainError) as err:
        train_run(TrainConfig(**BASE, max_steps=2), TRAIN, TEST, IDS[4:8],
                  runs_root=tmp_path, progress=False, start_from=warm)
    assert f"{warm.path}: final-state.pt asks to build" in str(err.value)
    assert not marker.exists()


def test_states_zsg_writes_are_plain_data(tmp_path):
    """What the loop saves loads under the safe reader, key for key (the resume and branch
    tests show it resumes bit-identically)."""
    warm = train_run(TrainConfig(**BASE, max_steps=2, keep_final_state=True), TRAIN, TEST,
                     IDS[:4], runs_root=tmp_path, progress=False)
    state = states.load_final_state(warm.path)
    assert set(state) >= {"step", "trainable", "optimizer", "scheduler", "rng"}
    unsafe = torch.load(warm.path / runs.FINAL, weights_only=False)
    assert state["step"] == unsafe["step"] == 2
    for name, value in unsafe["trainable"].items():
        assert torch.equal(state["trainable"][name], value)


def test_a_runs_root_that_cannot_be_written_names_it(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the runs root should be")
    with pytest.raises(TrainError) as err:
        train_run(TrainConfig(**BASE, max_steps=2), TRAIN, TEST, IDS[:4],
                  runs_root=blocker / "runs", progress=False)
    msg = str(err.value)
    assert str(blocker / "runs") in msg and "cannot create the run folder" in msg
    assert "runs_root" in msg and "$ZSG_HOME" in msg


def test_a_runs_root_without_permission_names_it(tmp_path, monkeypatch):
    # Tests may run as root, for whom chmod does not bite: the OS's refusal is simulated.
    real_mkdir = Path.mkdir

    def refuse(self, *args, **kw):
        if tmp_path / "shared" in self.parents or self == tmp_path / "shared":
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kw)

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(TrainError, match=r"Permission denied.*make .*shared writable"):
        train_run(TrainConfig(**BASE, max_steps=2), TRAIN, TEST, IDS[:4],
                  runs_root=tmp_path / "shared", progress=False)


FILE_SIZE_LIMIT = textwrap.dedent('''
    import resource, signal, sys
    from pathlib import Path
    import torch
    from zsg_lib.errors import TrainError
    from zsg_lib.train import states

    run_dir = Path(sys.argv[1])
    states.save_checkpoint(run_dir, {"step": 1, "x": torch.zeros(10)})  # a good one first
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    try:
        states.save_checkpoint(run_dir, {"step": 2, "x": torch.zeros(100_000)})
    except TrainError as exc:
        print(exc)
''')


def test_a_file_size_limit_while_checkpointing_names_the_folder(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    script = tmp_path / "job.py"
    script.write_text(FILE_SIZE_LIMIT)
    out = subprocess.run([sys.executable, str(script), str(run_dir)], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    assert f"{run_dir}: could not write checkpoint.pt" in out.stdout, out.stderr[-2000:]
    assert "free space or fix the folder" in out.stdout
    assert states.load_checkpoint(run_dir)["step"] == 1  # the previous checkpoint is intact
    assert [p.name for p in run_dir.iterdir()] == [runs.CHECKPOINT]  # no temp file left
