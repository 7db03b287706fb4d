"""Probes (issue #28): a step on a chosen batch from a saved state, the test set scored, the
state restored bit for bit; records on disk, resumed and read back."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
from factories import conv

from zsg_lib.errors import TrainError
from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, probes, train_run
from zsg_lib.train.loop import Loop
from zsg_lib.train.models import load_model
from zsg_lib.train.prompts import encode_many

TRAIN = instances_from_records([{"id": f"t{i}", "task": f"k{i % 3}",
                                 "messages": conv(f"{i} + {i}?", str(2 * i))} for i in range(24)])
TEST = instances_from_records([{"id": f"x{i}", "task": f"k{i % 3}",
                                "messages": conv(f"{i} + 1?", str(i + 1))} for i in range(6)])
# dropout on and a cosine schedule: a restore must carry the RNG and the schedule position too
BASE = dict(model="tiny", bf16_autocast=False, learning_rate=1e-2, lora_dropout=0.1,
            schedule="cosine", batch_size=2, eval_every=1, schedule_steps=9)
IDS = TRAIN.column("id").to_pylist()
BATCHES = [IDS[6:8], IDS[8:10], IDS[10:12]]


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A warm-up that kept its final state (3 steps on the first 6 ids)."""
    return train_run(TrainConfig(**BASE, max_steps=3, keep_final_state=True), TRAIN, TEST,
                     IDS[:6], runs_root=tmp_path_factory.mktemp("runs"), progress=False)


def arm_config(**kw) -> TrainConfig:
    return TrainConfig(**{**BASE, "max_steps": 4, **kw})


def _equal(a, b, where="") -> None:
    """Bit-for-bit equality of two nested states (tensors, dicts, lists, plain values)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _equal(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            _equal(x, y, f"{where}[{k}]")
    else:
        assert a == b, where


def test_restore_is_bit_for_bit(warm, tmp_path):
    cfg = probes.probe_config(arm_config(), 1)
    base, tok = load_model("tiny", cfg.resolved_precision)
    enc = lambda t: encode_many(tok, t.column("id").to_pylist(),  # noqa: E731
                                t.column("messages").to_pylist(),
                                max_source_len=cfg.max_source_len,
                                max_target_len=cfg.max_target_len, template=cfg.template)[0]
    test_by_id = {i: (m, t) for i, m, t in zip(*(TEST.column(c).to_pylist()
                                                 for c in ("id", "messages", "task")))}
    start = probes._start(cfg, warm.path)
    loop = Loop(cfg, base, tok, torch.device("cpu"), tmp_path, IDS, enc(TRAIN), enc(TEST),
                test_by_id, False, None, probes.Branch(start.step, start.state, None, warm.path))
    with probes.Prober(loop, start.state, warm.path) as prober:
        at_state = pd.DataFrame(prober.score())
        first = pd.DataFrame(prober.probe(BATCHES[0], 1)[0])
        moved = prober.snapshot()
        assert not torch.equal(moved["trainable"][next(iter(moved["trainable"]))],
                               start.state["trainable"][next(iter(moved["trainable"]))])
        for batch in (BATCHES[1], BATCHES[0]):  # another probe in between
            prober.restore()
            _equal(prober.snapshot(), {**start.state, "rng_by_rank": [start.state["rng"]]})
            assert prober.sched.last_epoch == start.state["scheduler"]["last_epoch"]
            again = pd.DataFrame(prober.probe(batch, 1)[0])
        prober.restore()
        # the state as loaded from the file: weights, optimizer moments and steps, schedule, RNG
        _equal(prober.snapshot(), {**start.state, "rng_by_rank": [start.state["rng"]]})
        pd.testing.assert_frame_equal(pd.DataFrame(prober.score()), at_state)
    pd.testing.assert_frame_equal(again, first)  # the same batch after another: the same Δ


def test_a_probe_is_the_branched_runs_first_step(warm, tmp_path):
    got = probes.run_probes(arm_config(), TRAIN, TEST, warm, BATCHES, probes_root=tmp_path)
    assert got.computed == 3 and got.deltas["probe"].tolist() == sorted([0, 1, 2] * 6)
    for k, batch in enumerate(BATCHES):
        # a fresh load of the state and the same step, by the run's own loop
        arm = train_run(arm_config(max_steps=1), TRAIN, TEST, batch, runs_root=tmp_path / "runs",
                        progress=False, start_from=warm)
        after = arm.scores[arm.scores["step"] == 4].set_index("id")["loss"]
        before = warm.scores[warm.scores["step"] == 3].set_index("id")["loss"]
        mine = got.deltas[got.deltas["probe"] == k].set_index("id")
        pd.testing.assert_series_equal(mine["loss"], after.loc[mine.index], check_names=False,
                                       check_exact=True)
        pd.testing.assert_series_equal(mine["loss_before"], before.loc[mine.index],
                                       check_names=False, check_exact=True)
        pd.testing.assert_series_equal(mine["dloss"], (after - before).loc[mine.index],
                                       check_names=False, check_exact=True)
        assert mine["train_loss"].iloc[0] == arm.log["train_loss"].iloc[0]
    assert got.deltas.groupby("probe")["dloss"].mean().nunique() == 3  # batches differ


def test_a_killed_probe_set_resumes_to_the_same_records(warm, tmp_path, monkeypatch):
    whole = probes.run_probes(arm_config(), TRAIN, TEST, warm, BATCHES,
                              probes_root=tmp_path / "whole")

    def kill(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        probes.run_probes(arm_config(), TRAIN, TEST, warm, BATCHES, probes_root=tmp_path / "k",
                          on_probe=kill)
    folder = tmp_path / "k" / whole.set_id
    assert len(list((folder / probes.PROBES).glob("*.parquet"))) == 2
    resumed = probes.run_probes(arm_config(), TRAIN, TEST, warm, BATCHES,
                                probes_root=tmp_path / "k")
    assert resumed.computed == 1
    timing = [c for c in whole.deltas if c.startswith("seconds")]
    pd.testing.assert_frame_equal(resumed.deltas.drop(columns=timing),
                                  whole.deltas.drop(columns=timing))

    # finished: read back without loading a model; a set with one more batch computes one
    monkeypatch.setattr(probes, "load_model", lambda *a, **k: pytest.fail("recomputed"))
    again = probes.run_probes(arm_config(), TRAIN, TEST, warm, BATCHES,
                              probes_root=tmp_path / "k")
    assert again.computed == 0
    pd.testing.assert_frame_equal(again.deltas, resumed.deltas)
    monkeypatch.undo()
    more = probes.run_probes(arm_config(), TRAIN, TEST, warm, [*BATCHES, IDS[12:14]],
                             probes_root=tmp_path / "k")
    assert more.computed == 1 and more.set_id == whole.set_id


def test_steps_and_their_batches(warm, tmp_path):
    two = probes.run_probes(arm_config(), TRAIN, TEST, warm, [IDS[6:8], IDS[6:10]], steps=2,
                            probes_root=tmp_path)
    arm = train_run(arm_config(max_steps=2), TRAIN, TEST, IDS[6:10],
                    runs_root=tmp_path / "runs", progress=False, start_from=warm)
    after = arm.scores[arm.scores["step"] == 5].set_index("id")["loss"]
    mine = two.deltas[two.deltas["probe"] == 1].set_index("id")["loss"]
    pd.testing.assert_series_equal(mine, after.loc[mine.index], check_names=False,
                                   check_exact=True)
    one = probes.run_probes(arm_config(), TRAIN, TEST, warm, [IDS[6:8]], probes_root=tmp_path)
    assert one.set_id != two.set_id  # the steps are part of the set's identity


def test_bad_input_fails_before_any_work(warm, tmp_path, monkeypatch):
    monkeypatch.setattr(probes, "load_model", lambda *a, **k: pytest.fail("loaded a model"))
    run = lambda cfg=None, state=warm, batches=BATCHES, **kw: probes.run_probes(  # noqa: E731
        cfg or arm_config(), TRAIN, TEST, state, batches, probes_root=tmp_path, **kw)
    with pytest.raises(TrainError, match=r"state: .*nowhere is not a run folder"):
        run(state=tmp_path / "nowhere")
    with pytest.raises(TrainError, match="learning_rate: 0.01 there, 0.001 here"):
        run(cfg=arm_config(learning_rate=1e-3))
    with pytest.raises(TrainError, match="lora_r: 16 there, 8 here"):
        run(cfg=arm_config(lora_r=8))
    with pytest.raises(TrainError, match=r"batches\[1\]: id 'nope' is not in the training"):
        run(batches=[IDS[6:8], ["t1", "nope"]])
    with pytest.raises(TrainError, match=r"batches\[0\]: 3 ids; a probe's batch is the run's "
                                         r"step \(2"):
        run(batches=[IDS[6:9]])
    with pytest.raises(TrainError, match=r"batches\[0\]: id 't6' appears twice"):
        run(batches=[["t6", "t6"]])
    with pytest.raises(TrainError, match="steps: expected a positive integer"):
        run(steps=0)
    no_final = train_run(TrainConfig(**BASE, max_steps=1), TRAIN, TEST, IDS[:2],
                         runs_root=tmp_path / "runs", progress=False)
    with pytest.raises(TrainError, match="kept no final state"):
        run(state=no_final)
    with pytest.raises(TrainError, match="precision: None there, 'fp32' here"):
        run(cfg=dataclasses.replace(arm_config(), precision="fp32"))
    # a state handed over in memory: its own precision is checked
    state = {**probes.states.load_final_state(warm.path), "precision": "bf16"}
    with pytest.raises(TrainError, match="state: the Branch was trained on bf16 base weights"):
        run(state=probes.Branch(3, state))
