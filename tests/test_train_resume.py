"""A run killed mid-way (SIGKILL, a real subprocess) resumes to the same records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from factories import kill_and_resume

from zsg_lib.train import records as runs

SCRIPT = '''
import sys, time
from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, train_run

def conv(q, a):
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]

def tables():
    train = instances_from_records([{"id": f"t{i}", "task": f"k{i % 3}",
        "messages": conv(f"{i} times 3?", str(3 * i))} for i in range(40)])
    test = instances_from_records([{"id": f"x{i}", "task": f"k{i % 3}",
        "messages": conv(f"{i} times 3 is?", str(3 * i))} for i in range(6)])
    return train, test

# dropout on, so the resumed run must also restore the RNG to match
CFG = TrainConfig(model="tiny", bf16_autocast=False, batch_size=3, eval_every=2,
                  checkpoint_every=3, lora_dropout=0.1, learning_rate=5e-3, schedule="cosine",
                  max_steps=24, generate_at=(12,), max_new_tokens=3)
ORDER = [f"t{i}" for i in range(40)][::-1][:36]

def main(root, delay):
    train, test = tables()
    on_step = (lambda step, row: time.sleep(delay)) if delay else None
    train_run(CFG, train, test, ORDER, runs_root=root, progress=False, on_step=on_step)

if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
'''



def _tables(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    log = pd.read_parquet(run_dir / runs.LOG).drop(columns=["seconds"])
    scores = pd.read_parquet(run_dir / runs.SCORES)
    return log, scores


def test_killed_run_resumes_to_identical_records(tmp_path):
    run_dir, clean_dir = kill_and_resume(SCRIPT, tmp_path, wait_s=120, after_s=0.4)
    log_k, scores_k = _tables(run_dir)
    log_c, scores_c = _tables(clean_dir)
    assert log_k["step"].tolist() == list(range(1, 25))  # no step lost or duplicated
    assert len(scores_k) == len(scores_c) == 6 * 13  # steps 0, 2, ..., 24 (12 with generation)
    pd.testing.assert_frame_equal(log_k, log_c, check_exact=False, atol=1e-6, rtol=0)
    pd.testing.assert_frame_equal(scores_k, scores_c, check_exact=False, atol=1e-6, rtol=0)
