"""Two processes (gloo on CPU, as under ``accelerate launch``/``torchrun``) keep the global order.

Each process takes its slice of every global batch; the run's log must still list exactly the
arrangement's chunks, and the records must match a single-process run of the same job.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
from factories import conv

from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, records as runs, step_chunks, train_run

REPO = Path(__file__).resolve().parents[1]

SCRIPT = '''
import sys
from zsg_lib.train import train_run
sys.path.insert(0, sys.argv[2])
from test_train_distributed import CFG, ORDER, tables
train, test = tables()
train_run(CFG, train, test, ORDER, runs_root=sys.argv[1], progress=False)
'''

CFG = TrainConfig(model="tiny", bf16_autocast=False, batch_size=4, eval_every=2,
                  lora_dropout=0.0, learning_rate=5e-3, max_steps=6, checkpoint_every=2)
ORDER = [f"t{i}" for i in (7, 2, 9, 0, 11, 4, 1, 10, 3, 8, 6, 5, 13, 12, 15, 14, 17, 16, 19,
                           18, 21, 20, 23, 22)]


def tables():
    train = instances_from_records([{"id": f"t{i}", "task": f"k{i % 3}",
                                     "messages": conv(f"{i} plus {i}?", str(2 * i) * (1 + i % 3))}
                                    for i in range(24)])
    test = instances_from_records([{"id": f"x{i}", "task": f"k{i % 3}",
                                    "messages": conv(f"{i} plus {i} is?", str(2 * i))}
                                   for i in range(5)])
    return train, test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_keep_the_global_order_and_match_one_process(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    root = tmp_path / "two"
    base_env = {**os.environ, "PYTHONPATH": str(REPO), "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), str(root), str(REPO / "tests")],
                              env={**base_env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for r in range(2)]
    errors = [p.communicate(timeout=300)[1].decode()[-2000:] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors

    (run_dir,) = [d for d in root.iterdir() if d.is_dir()]
    assert runs.is_done(run_dir)
    log = pd.read_parquet(run_dir / runs.LOG)
    chunks = step_chunks(ORDER, CFG.instances_per_step, CFG.max_steps)
    assert [list(ids) for ids in log["instance_ids"]] == chunks

    train, test = tables()
    single = train_run(CFG, train, test, ORDER, runs_root=tmp_path / "one", progress=False)
    assert single.run_id == run_dir.name
    two_scores = pd.read_parquet(run_dir / runs.SCORES)
    merged = single.scores.merge(two_scores, on=["step", "id"], suffixes=("_one", "_two"))
    assert len(merged) == len(single.scores) == len(two_scores)
    assert (merged["loss_one"] - merged["loss_two"]).abs().max() < 1e-4
    assert (single.log["train_loss"] - log["train_loss"]).abs().max() < 1e-4
