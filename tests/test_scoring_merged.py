"""Scoring with the LoRA adapters folded into temporary base weights (inference.merged_lora)."""

import contextlib

import pytest
import torch

from zsg_lib.train import TrainConfig, generation, inference, scoring
from zsg_lib.train.loop import _unwrap, _wrap
from zsg_lib.train.models import tiny_model
from zsg_lib.train.prompts import encode_many

CONVS = [[{"role": "user", "content": f"What is {k} plus {k}? " + "Think. " * (k % 3)},
          {"role": "assistant", "content": f"{2 * k}" + " ok" * (k % 2)}] for k in range(9)]
IDS = [f"i{k}" for k in range(9)]
CFG = TrainConfig(model="tiny", bf16_autocast=False, lora_r=4)


@pytest.fixture
def lora(random_adapters):
    """The tiny model with random adapters (a fresh one has B = 0: folding would add 0)."""
    base, tok = tiny_model()
    model = _wrap(base, CFG)
    random_adapters(model, seed=3)
    enc, _ = encode_many(tok, IDS, CONVS)
    yield model, tok, enc
    _unwrap(model, CFG)


def _bases(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer" in n}


def test_folded_scores_equal_the_side_path_and_the_base_is_untouched(lora, monkeypatch):
    model, tok, enc = lora
    before = _bases(model)
    folded = scoring.score_examples(model, enc, IDS, tok.pad_token_id, batch_size=4)
    monkeypatch.setattr(inference, "merged_lora", lambda m: contextlib.nullcontext(0))
    side = scoring.score_examples(model, enc, IDS, tok.pad_token_id, batch_size=4)
    for a, b in zip(folded, side):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["end_loss"] == pytest.approx(b["end_loss"], abs=1e-5, nan_ok=True)
    with model.disable_adapter():  # the adapters change the scores: folding them matters
        plain = scoring.score_examples(model, enc, IDS[:1], tok.pad_token_id)
    assert abs(plain[0]["loss"] - side[0]["loss"]) > 1e-3
    after = _bases(model)
    assert all(torch.equal(before[n], after[n]) for n in before)  # bit for bit


def test_every_adapted_layer_is_folded_and_put_back_after_an_error(lora):
    model, tok, enc = lora
    n_layers = sum(1 for m in model.modules() if inference.foldable(m))
    assert n_layers > 0
    before = _bases(model)
    with pytest.raises(RuntimeError, match="boom"), torch.no_grad(), \
            inference.merged_lora(model) as n:
        assert n == n_layers
        assert not any(inference.foldable(m) for m in model.modules())  # marked merged
        raise RuntimeError("boom")
    assert sum(1 for m in model.modules() if inference.foldable(m)) == n_layers
    after = _bases(model)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_bf16_base_weights_are_not_folded(lora):
    model, _, _ = lora
    layer = next(m for m in model.modules() if inference.foldable(m))
    layer.get_base_layer().weight.data = layer.get_base_layer().weight.data.bfloat16()
    assert inference.foldable(layer) == []  # rounding W + sBA to bf16 would lose the update


def test_nothing_is_folded_under_bf16_autocast(lora):
    model, _, _ = lora
    with torch.autocast("cpu", torch.bfloat16), inference.merged_lora(model) as n:
        assert n == 0  # autocast's bf16 copy of W + sBA would round the update away
    with inference.merged_lora(model) as n:
        assert n > 0


def test_greedy_generation_is_the_same_folded(lora, monkeypatch):
    model, tok, enc = lora
    folded = generation.generate_greedy(model, tok, enc, IDS, max_new_tokens=6, batch_size=4)
    monkeypatch.setattr(inference, "merged_lora", lambda m: contextlib.nullcontext(0))
    side = generation.generate_greedy(model, tok, enc, IDS, max_new_tokens=6, batch_size=4)
    assert folded == side and any(folded.values())
