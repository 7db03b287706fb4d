"""Compiled decoder layers (zsg_lib.train.compiled): chosen by ZSG_COMPILE, the same records
as the eager loop, eager again after the run."""

from __future__ import annotations

import pandas as pd
import pytest

from zsg_lib.errors import TrainError
from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, compiled, train_run
from zsg_lib.train.models import load_model


def _conv(q: str, a: str) -> list[dict]:
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def test_setting_names_the_variable_on_bad_values(monkeypatch):
    monkeypatch.setenv("ZSG_COMPILE", "yes")
    with pytest.raises(TrainError, match="ZSG_COMPILE='yes'.*auto, 0, 1"):
        compiled.wanted(TrainConfig(bf16_autocast=False), "cpu")


def test_auto_compiles_cpu_lora_with_a_compiler_only(monkeypatch):
    monkeypatch.setenv("ZSG_COMPILE", "auto")
    monkeypatch.setattr(compiled, "cpp_compiler", lambda: "/usr/bin/g++")
    cfg = TrainConfig(bf16_autocast=False)
    assert compiled.wanted(cfg, "cpu")
    assert not compiled.wanted(cfg, "cuda")  # not measured there: ask with ZSG_COMPILE=1
    assert not compiled.wanted(TrainConfig(method="qlora", bf16_autocast=False), "cpu")
    monkeypatch.setattr(compiled, "cpp_compiler", lambda: None)
    assert not compiled.wanted(cfg, "cpu")
    monkeypatch.setenv("ZSG_COMPILE", "1")
    assert compiled.wanted(cfg, "cuda")
    monkeypatch.setenv("ZSG_COMPILE", "0")
    assert not compiled.wanted(cfg, "cpu")


@pytest.mark.slow
@pytest.mark.skipif(compiled.cpp_compiler() is None,
                    reason="compiling needs a C++ compiler (README: compiled where one exists)")
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_compiled_run_records_equal_the_eager_run(tmp_path, monkeypatch, bf16):
    train = instances_from_records([
        {"id": f"t{i}", "task": "add", "messages": _conv(f"{i} plus {i % 3}?", str(i + i % 3))}
        for i in range(12)])
    test = instances_from_records([
        {"id": f"x{i}", "task": "add", "messages": _conv(f"{i} plus 5?", str(i + 5))}
        for i in range(4)])
    order = [f"t{i}" for i in range(12)]
    # dropout on: compiled layers must draw the eager loop's masks
    cfg = TrainConfig(model="tiny", batch_size=2, eval_every=2, learning_rate=1e-2,
                      lora_dropout=0.1, generate_at=(4,), max_new_tokens=3,
                      bf16_autocast=bf16, device="cpu")
    layers = compiled.decoder_layers(load_model("tiny", cfg.resolved_precision, "cpu")[0])
    seen: list[bool] = []

    def on_step(step, row):
        seen.append(all(layer._compiled_call_impl is not None for layer in layers))

    recs = {}
    for setting in ("0", "1"):
        monkeypatch.setenv("ZSG_COMPILE", setting)
        recs[setting] = train_run(cfg, train, test, order, runs_root=tmp_path / setting,
                                  progress=False, on_step=on_step)
    eager, fast = recs["0"], recs["1"]
    assert eager.run_id == fast.run_id  # where it ran is not what the run is
    assert eager.summary["compiled_layers"] is False and fast.summary["compiled_layers"] is True
    assert seen == [False] * 6 + [True] * 6
    assert all(layer._compiled_call_impl is None for layer in layers)  # eager again after
    pd.testing.assert_series_equal(eager.log["instance_ids"].map(list),
                                   fast.log["instance_ids"].map(list))
    # bf16: the fused kernels round their intermediates differently (measured 3e-4, 1.2e-3)
    atol = 3e-3 if bf16 else 1e-5
    pd.testing.assert_series_equal(eager.log["train_loss"], fast.log["train_loss"],
                                   check_exact=False, atol=atol, rtol=0)
    cols = ["id", "step", "loss"]
    pd.testing.assert_frame_equal(eager.scores[cols], fast.scores[cols], check_exact=False,
                                  atol=atol, rtol=0)
    at4 = lambda rec: rec.scores[rec.scores["step"] == 4]["prediction"].tolist()  # noqa: E731
    assert at4(eager) == at4(fast)


@pytest.mark.slow
def test_auto_runs_eager_when_the_compiler_fails(tmp_path, monkeypatch):
    import torch
    import torch._inductor.config as inductor

    train = instances_from_records([
        {"id": f"t{i}", "task": "add", "messages": _conv(f"{i}+1?", str(i + 1))}
        for i in range(4)])
    test = instances_from_records([{"id": "x", "task": "add", "messages": _conv("9+1?", "10")}])
    cfg = TrainConfig(model="tiny", batch_size=2, learning_rate=1e-2, bf16_autocast=False,
                      device="cpu")
    torch._dynamo.reset()  # nothing compiled by earlier tests may be reused
    with inductor.patch({"cpp.cxx": ("/nonexistent/g++",), "fx_graph_cache": False}):
        monkeypatch.setattr(compiled, "cpp_compiler", lambda: "/nonexistent/g++")
        monkeypatch.setenv("ZSG_COMPILE", "1")  # asked for: the broken compiler stops it
        with pytest.raises(Exception, match="nonexistent"):
            train_run(cfg, train, test, ["t0", "t1", "t2", "t3"], runs_root=tmp_path / "1",
                      progress=False)
        torch._dynamo.reset()
        monkeypatch.setenv("ZSG_COMPILE", "auto")
        rec = train_run(cfg, train, test, ["t0", "t1", "t2", "t3"], runs_root=tmp_path / "auto",
                        progress=False)
    monkeypatch.setenv("ZSG_COMPILE", "0")
    ref = train_run(cfg, train, test, ["t0", "t1", "t2", "t3"], runs_root=tmp_path / "0",
                    progress=False)
    pd.testing.assert_series_equal(rec.log["train_loss"], ref.log["train_loss"])  # eager, exactly
