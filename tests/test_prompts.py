"""Prompt formatting, label masking, truncation."""

from __future__ import annotations

import pytest

from zsg_lib.errors import TrainError
from zsg_lib.train.models import tiny_model
from zsg_lib.train.prompts import IGNORE_INDEX, encode_instance, encode_many

CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Translate to French: Germany"},
    {"role": "assistant", "content": "Allemagne"},
]


@pytest.fixture(scope="module")
def tok():
    return tiny_model()[1]


@pytest.fixture(scope="module")
def plain_tok():
    return tiny_model(chat_template=0)[1]


def test_chat_template_labels_mask_every_prompt_token(tok):
    ex = encode_instance(tok, CONV)
    full = tok.apply_chat_template(CONV, tokenize=False)
    assert tok.decode(ex.input_ids) == full.rstrip("\n")  # newline after the eos dropped
    assert ex.labels[: ex.n_source] == [IGNORE_INDEX] * ex.n_source
    assert ex.labels[ex.n_source :] == ex.target_ids
    assert tok.decode(ex.target_ids) == "Allemagne<|im_end|>"
    assert "Be brief." in tok.decode(ex.source_ids)


def test_plain_template_when_no_chat_template(plain_tok):
    ex = encode_instance(plain_tok, CONV)
    src = plain_tok.decode(ex.source_ids)
    assert src == "System: Be brief.\n\nUser: Translate to French: Germany\n\nAssistant: "
    assert ex.target_ids[-1] == plain_tok.eos_token_id
    assert plain_tok.decode(ex.target_ids[:-1]) == "Allemagne"


def test_template_choice_errors(plain_tok, tok):
    with pytest.raises(TrainError, match="no chat template"):
        encode_instance(plain_tok, CONV, template="chat")
    with pytest.raises(TrainError, match="template 'fancy'"):
        encode_instance(tok, CONV, template="fancy")
    assert encode_instance(tok, CONV, template="plain").n_source != encode_instance(tok, CONV).n_source


def test_source_truncated_from_the_left_target_from_the_right(tok):
    long = [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "yes " * 50}]
    full = encode_instance(tok, long, 4096, 4096)
    ex = encode_instance(tok, long, max_source_len=16, max_target_len=5)
    assert ex.source_truncated and ex.target_truncated
    assert ex.source_ids == full.source_ids[-16:]  # the end of the prompt survives
    assert ex.target_ids == full.target_ids[:5]
    assert len(ex.input_ids) == len(ex.labels) == 21


def test_zero_token_responses_are_reported(tok):
    enc, rep = encode_many(tok, ["a", "b"], [CONV, CONV], max_target_len=0)
    assert rep.zero_target == ["a", "b"] and rep.summary()["zero_target"] == 2
    assert enc["a"].n_target == 0 and all(l == IGNORE_INDEX for l in enc["a"].labels)
    _, rep = encode_many(tok, ["a"], [CONV])
    assert rep.zero_target == [] and rep.n == 1


def test_bad_limits_and_conversations(tok):
    with pytest.raises(TrainError, match="max_source_len"):
        encode_instance(tok, CONV, max_source_len=0)
    with pytest.raises(TrainError, match="response turn"):
        encode_instance(tok, CONV[:1])
