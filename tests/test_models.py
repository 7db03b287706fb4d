"""Model loading: tiny models, errors before anything loads, the embedded default (slow)."""

from __future__ import annotations

import pytest
import torch

from zsg_lib.errors import TrainError
from zsg_lib.train import models


def test_tiny_model_is_seeded_and_memoised():
    a, _ = models.tiny_model(seed=3)
    b, _ = models.tiny_model(seed=3)
    c, _ = models.tiny_model(seed=4)
    wa, wb, wc = (m.model.layers[0].self_attn.q_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert models.load_model("tiny")[0] is models.load_model("tiny")[0]
    big, _ = models.load_model("tiny:hidden_size=64,num_hidden_layers=3")
    assert big.config.hidden_size == 64 and big.config.num_hidden_layers == 3


def test_tiny_name_errors():
    with pytest.raises(TrainError, match="key=integer"):
        models.load_model("tiny:hidden_size=big")
    with pytest.raises(TrainError, match=r"model 'tiny:hidden=64': unknown tiny-model key "
                                         r"'hidden'; known: vocab_size, hidden_size, "):
        models.load_model("tiny:hidden=64")


def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(TrainError, match="no-such-model"):
        models.load_model(str(missing))


def test_unknown_precision():
    with pytest.raises(TrainError, match="precision 'fp8'"):
        models.load_model("tiny", precision="fp8")


def test_pad_token_falls_back_to_eos_or_fails():
    _, tok = models.tiny_model(pad_token=0)
    assert tok.pad_token is None
    models.ensure_pad_token(tok)
    assert tok.pad_token_id == tok.eos_token_id
    _, tok = models.tiny_model(pad_token=0)
    tok.eos_token = None
    with pytest.raises(TrainError, match="no pad token and no eos"):
        models.ensure_pad_token(tok)


def test_model_identity():
    assert models.model_identity(None) == models.model_identity("embedded")
    assert models.model_identity("tiny:hidden_size=8") == "tiny:hidden_size=8"


@pytest.mark.slow
def test_embedded_default_trains_and_scores(tmp_path):
    """The real path: SmolLM2 from the GGUF file, a 2-step LoRA run with scoring."""
    from zsg_lib.schema import instances_from_records
    from zsg_lib.train import TrainConfig, train_run

    model, tok = models.load_model(None)
    assert tok.chat_template and tok.pad_token_id is not None
    assert model.config.vocab_size > 40_000
    conv = lambda q, a: [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    train = instances_from_records(
        [{"id": f"t{i}", "task": "add", "messages": conv(f"{i}+{i}?", str(2 * i))}
         for i in range(4)])
    test = instances_from_records(
        [{"id": f"x{i}", "task": "add", "messages": conv(f"{i}+1?", str(i + 1))}
         for i in range(3)])
    cfg = TrainConfig(batch_size=2, eval_every=2, generate_at=(2,), max_new_tokens=4)
    rec = train_run(cfg, train, test, ["t0", "t1", "t2", "t3"], runs_root=tmp_path,
                    progress=False)
    assert len(rec.log) == 2 and len(rec.scores) == 3 * 2
    assert rec.scores["loss"].notna().all()
    final = rec.scores[rec.scores.step == 2]
    assert final["rougeL"].notna().all() and final["prediction"].notna().all()
    # the cached base model is left without adapters
    assert type(model.model.layers[0].self_attn.q_proj).__name__ == "Linear"
