"""The reward-model score: a sequence-classification model given by path scores generations."""

from __future__ import annotations

import torch
from factories import conv

from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, train_run
from zsg_lib.train.models import tiny_model
from zsg_lib.train.rewards import reward_scores


def _tiny_reward_model(path):
    from transformers import LlamaForSequenceClassification

    base, tok = tiny_model(seed=3)
    config = base.config.__class__.from_dict({**base.config.to_dict(), "num_labels": 1})
    torch.manual_seed(3)
    rm = LlamaForSequenceClassification(config)
    rm.config.pad_token_id = tok.pad_token_id
    rm.save_pretrained(path)
    tok.save_pretrained(path)
    return rm.eval(), tok


def test_batched_reward_equals_scoring_each_text_alone(tmp_path):
    rm, tok = _tiny_reward_model(tmp_path / "rm")
    convs = {"a": conv("2 plus 2?", "4"), "b": conv("spell cat backwards", "tac")}
    preds = {"a": "four, I think", "b": "tac"}
    got = reward_scores(str(tmp_path / "rm"), convs, preds)
    assert set(got) == {"a", "b"} and got["a"] != got["b"]
    for key, pred in preds.items():
        text = tok.apply_chat_template(convs[key][:-1] + [{"role": "assistant", "content": pred}],
                                       tokenize=False)
        with torch.inference_mode():
            alone = rm(**tok([text], return_tensors="pt")).logits[0, 0].item()
        assert abs(alone - got[key]) < 1e-4


def test_run_records_a_reward_at_generation_steps(tmp_path):
    _tiny_reward_model(tmp_path / "rm")
    train = instances_from_records([{"id": f"t{i}", "task": "k", "messages": conv(f"{i}+1?",
                                     str(i + 1))} for i in range(8)])
    test = instances_from_records([{"id": f"x{i}", "task": "k", "messages": conv(f"{i}+2?",
                                    str(i + 2))} for i in range(3)])
    cfg = TrainConfig(model="tiny", bf16_autocast=False, batch_size=2, max_steps=2,
                      eval_every=1, generate_at=(2,), max_new_tokens=3,
                      reward_model=str(tmp_path / "rm"))
    rec = train_run(cfg, train, test, [f"t{i}" for i in range(8)], runs_root=tmp_path / "runs",
                    progress=False)
    at_gen = rec.scores[rec.scores["step"] == 2]
    assert at_gen["reward"].notna().all() and len(at_gen) == 3
    assert rec.scores[rec.scores["step"] < 2]["reward"].isna().all()
