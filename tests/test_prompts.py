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
    # the answer carries its own leading space: "Assistant:" + " Allemagne" (issue 9)
    assert src == "System: Be brief.\n\nUser: Translate to French: Germany\n\nAssistant:"
    assert ex.target_ids[-1] == plain_tok.eos_token_id
    assert plain_tok.decode(ex.target_ids[:-1]) == " Allemagne"


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


# --- tokens as at generation time (issue 9: a boundary must not split or merge a token) ------

ANSWERS = ["EUR", "Allemagne", "42", "forty-two", "yes", "la France", "(b)", "Paris."]


def _conv(answer: str, system: bool = False) -> list[dict[str, str]]:
    head = [{"role": "system", "content": "Be brief."}] if system else []
    return [*head, {"role": "user", "content": "Currency of France? Answer:"},
            {"role": "assistant", "content": answer}]


def _whole_text_ids(tok, conv, chat: bool) -> tuple[list[int], list[int]]:
    """What the model sees at generation time: the prompt it is given, and the whole text
    (prompt + the answer it should write, through its end token), each tokenized at once."""
    if chat:
        prompt = tok.apply_chat_template(conv[:-1], tokenize=False, add_generation_prompt=True)
        whole = tok(tok.apply_chat_template(conv, tokenize=False),
                    add_special_tokens=False)["input_ids"]
        end = len(whole) - 1 - whole[::-1].index(tok.eos_token_id)
        return tok(prompt, add_special_tokens=False)["input_ids"], whole[: end + 1]
    turns = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in conv[:-1])
    prompt = turns + "\n\nAssistant:"
    whole = tok(prompt + " " + conv[-1]["content"])["input_ids"] + [tok.eos_token_id]
    return tok(prompt)["input_ids"], whole


def check_generation_tokens(tok, template: str, chat: bool) -> None:
    for answer in ANSWERS:
        for system in (False, True):
            conv = _conv(answer, system)
            ex = encode_instance(tok, conv, template=template)
            prompt_ids, whole_ids = _whole_text_ids(tok, conv, chat)
            assert ex.input_ids == whole_ids, (template, answer)
            assert ex.source_ids == prompt_ids, (template, answer)
            # labels cover exactly the response and its end token
            assert ex.labels[ex.n_source:] == whole_ids[len(prompt_ids):]
            assert ex.target_ids[-1] == tok.eos_token_id
            assert tok.decode(ex.target_ids, skip_special_tokens=True).strip() == answer


@pytest.mark.parametrize("template", ["plain", "chat"])
def test_tiny_tokens_match_generation(tok, template):
    check_generation_tokens(tok, template, chat=template == "chat")


def test_tiny_tokens_match_generation_without_a_chat_template(plain_tok):
    check_generation_tokens(plain_tok, "auto", chat=False)


def test_plain_prompt_does_not_end_in_a_lone_space_token(plain_tok):
    ex = encode_instance(plain_tok, _conv("EUR"), template="plain")
    assert not plain_tok.decode(ex.source_ids).endswith(" ")
    assert plain_tok.decode(ex.target_ids[:1]).startswith(" ")  # the answer's own space


def test_empty_system_prompt_replaces_the_default(tok):
    conv = _conv("EUR")
    given = encode_instance(tok, conv, template="chat", system_prompt="")
    assert tok.decode(given.source_ids).startswith("<|im_start|>system\n<|im_end|>")
    assert encode_instance(tok, conv, template="chat").n_source < given.n_source  # tiny: none
    # a conversation's own system turn wins
    own = encode_instance(tok, _conv("EUR", system=True), template="chat", system_prompt="")
    assert "Be brief." in tok.decode(own.source_ids)


@pytest.mark.slow
@pytest.mark.parametrize("template", ["plain", "chat"])
def test_embedded_tokens_match_generation(template):
    from transformers import AutoTokenizer

    from zsg_lib.train.models import EMBEDDED_GGUF, embedded_model_dir

    tok = AutoTokenizer.from_pretrained(str(embedded_model_dir()), gguf_file=EMBEDDED_GGUF)
    check_generation_tokens(tok, template, chat=template == "chat")
    # SmolLM2's template adds a default system prompt; an empty system turn is much shorter
    conv = _conv("EUR")
    default = encode_instance(tok, conv, template="chat")
    empty = encode_instance(tok, conv, template="chat", system_prompt="")
    assert empty.n_source < default.n_source - 10
