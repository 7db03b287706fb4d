"""Turn a conversation into token ids and labels for supervised tuning.

The last message is the response; every earlier turn is the prompt (the *source*).

* **Template**: the tokenizer's chat template when it has one (``template="auto"``), else a
  plain one: ``"User: ...\\n\\nAssistant:"``, a space, the response and the eos token.
* **Tokens as at generation time**: prompt and response are cut from the tokenization of the
  *whole* text, and the prompt's own tokens must be its prefix, so the ids trained on are the
  ids the model reads and writes when it generates from the prompt (no token split or merged
  at the boundary; :class:`~zsg_lib.errors.TrainError` if a template cannot do that).
* **Labels**: ``-100`` on every prompt token, so the loss counts response tokens only. The
  response ends with the template's end-of-turn token (eos) so the model learns to stop;
  whatever the template writes after it (a newline) is dropped.
* **Truncation** (the paper's NIV2 limits, 1024 source / 128 target tokens, as parameters):
  the source keeps its *last* ``max_source_len`` tokens (truncated from the left: the end of
  the prompt holds the instance input and the assistant header, without which generation is
  meaningless; a long task definition loses its beginning). The target keeps its *first*
  ``max_target_len`` tokens.
* A response that ends with zero tokens (``max_target_len=0`` or an empty response in the plain
  template without eos) is counted, never divided by: :func:`encode_many` reports such ids.

>>> from zsg_lib.train.models import tiny_model
>>> _, tok = tiny_model()
>>> ex = encode_instance(tok, [{"role": "user", "content": "2+2?"},
...                            {"role": "assistant", "content": "4"}])
>>> tok.decode(ex.target_ids)
'4<|im_end|>'
>>> ex.labels[:ex.n_source] == [-100] * ex.n_source, len(ex.input_ids) == len(ex.labels)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import TrainError
from .config import TEMPLATES, Template

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedExample:
    """One tokenised instance: ``input_ids`` = source + target; ``labels`` masks the source."""

    input_ids: list[int]
    labels: list[int]
    n_source: int
    n_target: int
    source_truncated: bool = False
    target_truncated: bool = False
    ends_with_eos: bool = False  # the response's last token is the end-of-turn token

    @property
    def source_ids(self) -> list[int]:
        """The prompt tokens (what generation starts from)."""
        return self.input_ids[: self.n_source]

    @property
    def target_ids(self) -> list[int]:
        """The response tokens the loss is taken over."""
        return self.input_ids[self.n_source :]


@dataclass
class EncodingReport:
    """What truncation did to a set of instances (ids, so a user can look them up)."""

    n: int = 0
    source_truncated: list[str] = field(default_factory=list)
    target_truncated: list[str] = field(default_factory=list)
    zero_target: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        """Counts only, for logs and run records."""
        return {
            "n": self.n, "source_truncated": len(self.source_truncated),
            "target_truncated": len(self.target_truncated), "zero_target": len(self.zero_target),
        }


def _messages(messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    if len(msgs) < 2:
        raise TrainError("a conversation needs a prompt turn and a response turn")
    return msgs


def _plain_texts(msgs: list[dict[str, str]]) -> tuple[str, str]:
    """The plain template's prompt and whole text. The prompt ends with ``"Assistant:"`` and
    the response starts with its own space: word-piece tokenizers attach a leading space to the
    next word (``"ĠEUR"``), so a prompt ending in a space would leave a lone space token before
    a response word the model never writes that way."""
    turns = [f"{m['role'].capitalize()}: {m['content']}" for m in msgs[:-1]]
    prompt = "\n\n".join(turns) + "\n\nAssistant:"
    response = msgs[-1]["content"]
    return prompt, prompt + (" " + response if response else "")


def _with_system(msgs: list[dict[str, str]], system_prompt: str | None) -> list[dict[str, str]]:
    if system_prompt is None or msgs[0]["role"] == "system":
        return msgs
    return [{"role": "system", "content": system_prompt}, *msgs]


def _split_whole(tokenizer: Any, prompt: str, whole: str,
                 special: bool) -> tuple[list[int], list[int]]:
    """Token ids of ``prompt`` and of the rest of ``whole``, cut from the tokenization of the
    whole text, so prompt + response is exactly what the model sees (and, generating from the
    prompt, writes). A boundary that splits or merges a token is an error."""
    src = tokenizer(prompt, add_special_tokens=special)["input_ids"]
    ids = tokenizer(whole, add_special_tokens=special)["input_ids"]
    if ids[: len(src)] != src:
        raise TrainError(
            "the prompt's tokens are not a prefix of the whole conversation's tokens (the "
            f"template's prompt/response boundary merges or splits a token near "
            f"{prompt[-20:]!r}); use another template"
        )
    return src, ids[len(src):]


def _chat_parts(tokenizer: Any, msgs: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    source = tokenizer.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(msgs, tokenize=False)
    if not full.startswith(source):
        raise TrainError(
            "the tokenizer's chat template does not write the prompt as a prefix of the whole "
            "conversation; use template='plain'"
        )
    src, tgt = _split_whole(tokenizer, source, full, special=False)
    eos = tokenizer.eos_token_id
    if eos is not None and eos in tgt:  # drop what follows the end-of-turn token
        last = len(tgt) - 1 - tgt[::-1].index(eos)
        tgt = tgt[: last + 1]
    return src, tgt


def _plain_parts(tokenizer: Any, msgs: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    src, tgt = _split_whole(tokenizer, *_plain_texts(msgs), special=True)
    if tokenizer.eos_token_id is not None:
        tgt = tgt + [tokenizer.eos_token_id]
    return src, tgt


def uses_chat_template(tokenizer: Any, template: Template = "auto") -> bool:
    """Whether ``template`` resolves to the tokenizer's chat template."""
    if template not in TEMPLATES:
        raise TrainError(f"template {template!r}: use one of {TEMPLATES}")
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if template == "chat" and not has_chat:
        raise TrainError("template 'chat' asked for, but the tokenizer has no chat template")
    return has_chat if template == "auto" else template == "chat"


def encode_instance(
    tokenizer: Any,
    messages: Sequence[Mapping[str, str]],
    max_source_len: int = 1024,
    max_target_len: int = 128,
    template: Template = "auto",
    system_prompt: str | None = None,
) -> EncodedExample:
    """Tokenise one conversation; see the module docstring for template, labels, truncation.

    ``system_prompt`` (when the conversation has no system turn): ``None`` leaves it to the
    template (SmolLM2's adds a ~20-token default), ``""`` writes an empty system turn.

    >>> from zsg_lib.train.models import tiny_model
    >>> _, tok = tiny_model(chat_template=0)
    >>> msgs = [{"role": "user", "content": "Say hi " * 50}, {"role": "assistant", "content": "hi"}]
    >>> ex = encode_instance(tok, msgs, max_source_len=8, max_target_len=1)
    >>> ex.n_source, ex.n_target, ex.source_truncated, ex.target_truncated
    (8, 1, True, True)
    >>> tok.decode(ex.source_ids).endswith("Assistant:")
    True
    """
    if max_source_len < 1 or max_target_len < 0:
        raise TrainError(
            f"max_source_len={max_source_len}, max_target_len={max_target_len}: "
            "need max_source_len >= 1 and max_target_len >= 0"
        )
    msgs = _with_system(_messages(messages), system_prompt)
    chat = uses_chat_template(tokenizer, template)
    src, tgt = (_chat_parts if chat else _plain_parts)(tokenizer, msgs)
    src_cut, tgt_cut = len(src) > max_source_len, len(tgt) > max_target_len
    src = src[len(src) - max_source_len :] if src_cut else src
    tgt = tgt[:max_target_len]
    return EncodedExample(
        input_ids=src + tgt, labels=[IGNORE_INDEX] * len(src) + tgt,
        n_source=len(src), n_target=len(tgt),
        source_truncated=src_cut, target_truncated=tgt_cut,
        ends_with_eos=bool(tgt) and tgt[-1] == tokenizer.eos_token_id,
    )


def encode_many(
    tokenizer: Any,
    ids: Sequence[str],
    conversations: Sequence[Sequence[Mapping[str, str]]],
    max_source_len: int = 1024,
    max_target_len: int = 128,
    template: Template = "auto",
    system_prompt: str | None = None,
) -> tuple[dict[str, EncodedExample], EncodingReport]:
    """Encode many conversations; return them by id with a truncation report.

    >>> from zsg_lib.train.models import tiny_model
    >>> _, tok = tiny_model()
    >>> conv = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    >>> enc, rep = encode_many(tok, ["x", "y"], [conv, conv], max_target_len=0)
    >>> rep.zero_target, enc["x"].n_target
    (['x', 'y'], 0)
    """
    report = EncodingReport(n=len(ids))
    encoded: dict[str, EncodedExample] = {}
    for id_, conv in zip(ids, conversations, strict=True):
        ex = encode_instance(tokenizer, conv, max_source_len, max_target_len, template,
                             system_prompt)
        encoded[id_] = ex
        if ex.source_truncated:
            report.source_truncated.append(id_)
        if ex.target_truncated:
            report.target_truncated.append(id_)
        if ex.n_target == 0:
            report.zero_target.append(id_)
    return encoded, report
