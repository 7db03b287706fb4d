"""LoRA under bf16 autocast: the adapter's term is added in fp32 (forward.lora_under_autocast)."""

import pytest
import torch
from factories import conv

from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, forward, train_run
from zsg_lib.train.loop import _unwrap, _wrap
from zsg_lib.train.models import tiny_model

CFG = TrainConfig(model="tiny", bf16_autocast=True, lora_r=4)


@pytest.fixture
def q_proj():
    """A tiny model's first q_proj under LoRA, its base weight in bf16 (as cpu-demo stores it)
    and an adapter whose term is ~1e-4 of the layer's output: a trained adapter's size early."""
    base, _ = tiny_model()
    model = _wrap(base, CFG)
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    torch.manual_seed(0)
    with torch.no_grad():
        base_weight = layer.get_base_layer().weight
        base_weight.data = torch.randn_like(base_weight).bfloat16()
        layer.lora_A["default"].weight.normal_()
        layer.lora_B["default"].weight.normal_(std=1e-5)
    yield model, layer
    _unwrap(model, CFG)


def _term(layer, x):
    """The adapter's term in fp32: s * B A x."""
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    return layer.scaling["default"] * (x @ a.T @ b.T)


def test_the_adapter_term_survives_the_sum(q_proj):
    model, layer = q_proj
    model.eval()  # no LoRA dropout: the term below is the whole difference
    x = torch.randn(16, layer.in_features)
    term = _term(layer, x)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        base = layer.get_base_layer()(x)
        rounded = layer(x)  # peft's sum in bf16: a term under half a bf16 step is lost
        with forward.lora_under_autocast(model, True, "cpu"):
            widened = layer(x)
        after = layer(x)
    assert (term.abs() / base.float().abs()).median() < 1e-3
    assert (rounded == base).float().mean() > 0.9  # lost but where the output is near 0
    assert widened.dtype == torch.float32
    # the term arrives whole, to the bf16 rounding of autocast's LoRA matmuls
    assert torch.linalg.norm(widened - base.float() - term) < 0.02 * torch.linalg.norm(term)
    assert torch.equal(after, rounded)  # the hooks are gone after the block


def test_nested_blocks_widen_once_and_leave_nothing(q_proj):
    model, layer = q_proj
    hooks = layer.get_base_layer()._forward_hooks
    with forward.lora_under_autocast(model, True, "cpu"):
        with forward.lora_under_autocast(model, True, "cpu"):
            assert len(hooks) == 1  # a compiled layer would recompile on every change
        assert len(hooks) == 1
    assert len(hooks) == 0
    with forward.lora_under_autocast(model, False, "cpu"):  # no autocast: nothing to do
        assert len(hooks) == 0


def test_training_and_scoring_add_the_term_in_fp32(tmp_path, monkeypatch):
    calls = {"n": 0, "grad": 0}

    def counting(module, args, output):
        calls["n"] += 1
        calls["grad"] += torch.is_grad_enabled()
        return output.float()

    monkeypatch.setattr(forward, "_widened", counting)
    train = instances_from_records([
        {"id": f"t{i}", "task": "add", "messages": conv(f"{i}+1?", str(i + 1))}
        for i in range(4)])
    test = instances_from_records([{"id": "x", "task": "add", "messages": conv("9+1?", "10")}])
    cfg = TrainConfig(model="tiny", batch_size=2, bf16_autocast=True, eval_every=1, device="cpu")
    train_run(cfg, train, test, ["t0", "t1", "t2", "t3"], runs_root=tmp_path, progress=False)
    assert calls["grad"] > 0  # the training steps
    assert calls["n"] > calls["grad"]  # and the scoring passes
