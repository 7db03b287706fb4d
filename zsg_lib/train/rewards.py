"""Reward-model scores of generated responses (:func:`reward_scores`): a sequence-
classification model's score of each (prompt, predicted response)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def reward_scores(path: str, conversations: Mapping[str, Sequence[Mapping[str, str]]],
                  predictions: Mapping[str, str], device: str | torch.device = "cpu",
                  batch_size: int = 8) -> dict[str, float]:
    """Score each (prompt, predicted response) with a sequence-classification reward model.

    The reward model's own chat template formats the conversation when it has one.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    rm = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1).to(device).eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    rm.config.pad_token_id = tok.pad_token_id
    texts: dict[str, str] = {}
    for i, pred in predictions.items():
        msgs = [dict(m) for m in conversations[i][:-1]] + [{"role": "assistant", "content": pred}]
        if getattr(tok, "chat_template", None):
            texts[i] = tok.apply_chat_template(msgs, tokenize=False)
        else:
            texts[i] = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in msgs)
    keys = list(texts)
    scores: dict[str, float] = {}
    with torch.inference_mode():
        for start in range(0, len(keys), batch_size):
            chunk = keys[start : start + batch_size]
            enc = tok([texts[k] for k in chunk], return_tensors="pt", padding=True,
                      truncation=True, max_length=2048).to(device)
            logits = rm(**enc).logits[:, 0].float().tolist()
            scores.update(zip(chunk, logits))
    return scores
