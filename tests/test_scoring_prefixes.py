"""Scoring with shared prompt prefixes run once per group (train.prefixes, scoring)."""

import pytest
import torch

from zsg_lib.train import scoring
from zsg_lib.train.models import tiny_model
from zsg_lib.train.prefixes import MIN_SHARED_PREFIX, common_prefix_len, prefix_groups
from zsg_lib.train.prompts import encode_many

# Two "tasks" whose instances open with the task's long definition (as NIv2 prompts do), one
# of them also with a system turn, plus instances that share nothing beyond the template.
DEFS = {"rev": "Definition: write the given word backwards, letter by letter, and stop. Input: ",
        "add": "Definition: add the two numbers you are given and answer with the sum. Input: "}
CONVS, IDS = [], []
for task, text in DEFS.items():
    for k in range(5):
        head = ([{"role": "system", "content": "Answer briefly."}] if task == "add" else [])
        CONVS.append([*head, {"role": "user", "content": text + "x" * (k + 1) + " y" * k},
                      {"role": "assistant", "content": "ans " * (k % 3 + 1)}])
        IDS.append(f"{task}{k}")
for k, q in enumerate(["hello there", "what now?", "zzz"]):
    CONVS.append([{"role": "user", "content": q}, {"role": "assistant", "content": "ok " * k}])
    IDS.append(f"alone{k}")


@pytest.fixture(scope="module")
def encoded():
    model, tok = tiny_model()
    enc, _ = encode_many(tok, IDS, CONVS)
    return model, tok, enc


def test_groups_cover_every_id_once_and_share_their_prefix(encoded):
    _, _, enc = encoded
    groups = prefix_groups(enc, IDS)
    flat = [i for g in groups for i in g.ids]
    assert sorted(flat) == sorted(IDS)
    shared = [g for g in groups if g.n_prefix]
    # each task's instances form a group on (at least) the task's definition
    assert {frozenset(g.ids) for g in shared} >= {frozenset(f"rev{k}" for k in range(5)),
                                                  frozenset(f"add{k}" for k in range(5))}
    for g in shared:
        assert g.n_prefix >= MIN_SHARED_PREFIX
        first = enc[g.ids[0]].input_ids
        for i in g.ids:
            assert common_prefix_len(first, enc[i].input_ids) >= g.n_prefix
            assert g.n_prefix < enc[i].n_source  # a member keeps a prompt token of its own
    assert prefix_groups(enc, list(reversed(IDS))) == groups  # order of the ids is irrelevant


def test_grouped_scores_equal_the_models_own_loss(encoded, monkeypatch):
    """Per instance, the grouped pass gives the plain full-sequence loss; the prefix path ran."""
    model, tok, enc = encoded
    calls = []
    real = scoring._suffix_ce
    monkeypatch.setattr(scoring, "_suffix_ce",
                        lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    rows = scoring.score_examples(model, enc, IDS, tok.pad_token_id, batch_size=4)
    assert sum(calls) >= 10  # both tasks' members went through the suffix pass
    for r in rows:
        ex = enc[r["id"]]
        b = scoring.collate([ex], tok.pad_token_id)
        with torch.no_grad():
            logits = model(input_ids=b.input_ids).logits[0, :-1]
        ce = torch.nn.functional.cross_entropy(logits, b.labels[0, 1:], reduction="none",
                                               ignore_index=-100)
        mask = b.labels[0, 1:] != -100
        assert r["n_tokens"] == ex.n_target
        assert r["loss"] == pytest.approx(ce[mask].mean().item(), abs=1e-5)
        assert r["first_loss"] == pytest.approx(ce[mask][0].item(), abs=1e-5)
