"""bf16 only where the device computes it natively: "auto" decided before a run is identified."""

import warnings

import pytest

from zsg_lib.errors import TrainError
from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, hardware, train_run


def _set_native(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(hardware, "native_bf16", lambda device: native)


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_device(monkeypatch, native):
    _set_native(monkeypatch, native)
    cfg = hardware.resolve(TrainConfig(device="cpu"))
    assert cfg.bf16_autocast is native
    assert cfg.resolved_precision == ("bf16" if native else "fp32")


def test_explicit_settings_are_kept_and_an_emulated_bf16_warns(monkeypatch):
    _set_native(monkeypatch, False)
    hardware._warn_emulated.cache_clear()
    with pytest.warns(UserWarning, match=r"bf16_autocast: True on a CPU without native bf16"):
        cfg = hardware.resolve(TrainConfig(device="cpu", bf16_autocast=True))
    assert cfg.bf16_autocast is True and cfg.resolved_precision == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fp32 on such a CPU is the right choice: no warning
        assert hardware.resolve(TrainConfig(device="cpu", bf16_autocast=False)).bf16_autocast is False


def test_an_unresolved_auto_has_no_precision_yet():
    with pytest.raises(TrainError, match=r"TrainConfig.bf16_autocast: 'auto' is not resolved"):
        TrainConfig().resolved_precision


def _table(n, prefix):
    return instances_from_records([
        {"id": f"{prefix}{k}", "task": "t", "messages": [
            {"role": "user", "content": f"say {k}"}, {"role": "assistant", "content": str(k)}]}
        for k in range(n)], source="test")


def test_a_run_records_and_is_identified_by_the_resolved_precision(monkeypatch, tmp_path):
    train, test = _table(4, "a"), _table(2, "b")
    order = train.column("id").to_pylist()
    cfg = TrainConfig(model="tiny", batch_size=2, max_steps=1, eval_every=1, device="cpu")
    ids = {}
    for native in (False, True):
        _set_native(monkeypatch, native)
        rec = train_run(cfg, train, test, order, runs_root=tmp_path, progress=False)
        assert rec.params["config"]["bf16_autocast"] is native
        ids[native] = rec.run_id
    assert ids[False] != ids[True]  # fp32 and bf16 records never answer for each other
