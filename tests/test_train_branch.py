"""Runs that branch from a shared warm-up continue it exactly (issue 9, item 3)."""

from __future__ import annotations

import pandas as pd
import pytest
from factories import conv

from zsg_lib.errors import TrainError
from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, records as runs, train_run

TRAIN = instances_from_records([{"id": f"t{i}", "task": f"k{i % 3}",
                                 "messages": conv(f"{i} + {i}?", str(2 * i))} for i in range(24)])
TEST = instances_from_records([{"id": f"x{i}", "task": f"k{i % 3}",
                                "messages": conv(f"{i} + 1?", str(i + 1))} for i in range(4)])
# dropout on and a cosine schedule: the branch must carry RNG and schedule state too
BASE = dict(model="tiny", bf16_autocast=False, learning_rate=1e-2, lora_dropout=0.1,
            schedule="cosine", batch_size=2, eval_every=2, schedule_steps=7)
IDS = TRAIN.column("id").to_pylist()


def test_a_branched_run_equals_the_uninterrupted_one(tmp_path):
    warm = train_run(TrainConfig(**BASE, max_steps=3, keep_final_state=True), TRAIN, TEST,
                     IDS[:6], runs_root=tmp_path, progress=False)
    assert (warm.path / runs.FINAL).exists()
    arm = train_run(TrainConfig(**BASE, max_steps=4), TRAIN, TEST, IDS[6:14],
                    runs_root=tmp_path, progress=False, start_from=warm)
    whole = train_run(TrainConfig(**{**BASE, "eval_every": 1}, max_steps=7), TRAIN, TEST,
                      IDS[:14], runs_root=tmp_path, progress=False)
    assert arm.log["step"].tolist() == [4, 5, 6, 7]  # the step counter continues
    assert [list(x) for x in arm.log["instance_ids"]] == [IDS[6:8], IDS[8:10], IDS[10:12],
                                                          IDS[12:14]]
    tail = whole.log[whole.log["step"] > 3].reset_index(drop=True)
    pd.testing.assert_series_equal(arm.log["train_loss"], tail["train_loss"], atol=1e-5)
    pd.testing.assert_series_equal(arm.log["lr"], tail["lr"], atol=1e-9)
    # scored at the branch point (copied from the warm-up) and every 2 steps after it
    assert sorted(arm.scores["step"].unique()) == [3, 5, 7]
    got = arm.scores.set_index(["step", "id"])["loss"]
    want = whole.scores.set_index(["step", "id"])["loss"]
    for step in (5, 7):
        pd.testing.assert_series_equal(got.loc[step], want.loc[step], atol=1e-5)
    pd.testing.assert_series_equal(got.loc[3], warm.scores.set_index(["step", "id"])["loss"]
                                   .loc[3], atol=0)
    assert arm.params["data"]["branch"] == {"run_id": warm.run_id, "step": 3}


def test_branches_of_one_warm_up_are_distinct_runs_and_reused(tmp_path):
    warm = train_run(TrainConfig(**BASE, max_steps=2, keep_final_state=True), TRAIN, TEST,
                     IDS[:4], runs_root=tmp_path, progress=False)
    a = train_run(TrainConfig(**BASE, max_steps=2), TRAIN, TEST, IDS[4:8],
                  runs_root=tmp_path, progress=False, start_from=warm)
    b = train_run(TrainConfig(**BASE, max_steps=2), TRAIN, TEST, IDS[8:12],
                  runs_root=tmp_path, progress=False, start_from=warm)
    plain = train_run(TrainConfig(**BASE, max_steps=2), TRAIN, TEST, IDS[4:8],
                      runs_root=tmp_path, progress=False)
    assert len({a.run_id, b.run_id, plain.run_id}) == 3
    again = train_run(TrainConfig(**BASE, max_steps=2), TRAIN, TEST, IDS[4:8],
                      runs_root=tmp_path, progress=False, start_from=warm)
    assert again.reused and again.run_id == a.run_id
    # both arms start from the same scores at the branch point
    at = lambda r: r.scores[r.scores["step"] == 2].set_index("id")["loss"]  # noqa: E731
    pd.testing.assert_series_equal(at(a), at(b))


def test_bad_branches_fail_before_training(tmp_path):
    kept_none = train_run(TrainConfig(**BASE, max_steps=2), TRAIN, TEST, IDS[:4],
                          runs_root=tmp_path, progress=False)
    with pytest.raises(TrainError, match="kept no final state"):
        train_run(TrainConfig(**BASE, max_steps=2), TRAIN, TEST, IDS[4:8], runs_root=tmp_path,
                  progress=False, start_from=kept_none)
    warm = train_run(TrainConfig(**BASE, max_steps=2, keep_final_state=True), TRAIN, TEST,
                     IDS[:4], runs_root=tmp_path, progress=False)
    with pytest.raises(TrainError, match="learning_rate: 0.01 there, 0.001 here"):
        train_run(TrainConfig(**{**BASE, "learning_rate": 1e-3}, max_steps=2), TRAIN, TEST,
                  IDS[4:8], runs_root=tmp_path, progress=False, start_from=warm)
    with pytest.raises(TrainError, match="RunRecord"):
        train_run(TrainConfig(**BASE, max_steps=2), TRAIN, TEST, IDS[4:8], runs_root=tmp_path,
                  progress=False, start_from=str(warm.path))
