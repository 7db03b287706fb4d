"""Scoring with shared prompt prefixes run once per group (train.prefixes, batching, scoring)."""

import pytest
import torch

from zsg_lib.train import batching, forward, scoring
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


@pytest.mark.parametrize("budget", [None, 1])
def test_grouped_scores_equal_the_models_own_loss(encoded, monkeypatch, budget):
    """Per instance, the grouped pass gives the plain full-sequence loss; the packed rows ran,
    whole groups in one row each or (``budget`` 1) every member in a row of its own."""
    model, tok, enc = encoded
    if budget is not None:
        monkeypatch.setattr(batching, "_row_budget", lambda n_prefix: budget)
    calls = []
    real = scoring.token_owners
    monkeypatch.setattr(scoring, "token_owners", lambda b, n: calls.append(n) or real(b, n))
    rows = scoring.score_examples(model, enc, IDS, tok.pad_token_id, batch_size=4)
    assert sum(calls) >= 10  # both tasks' members were scored in packed rows
    assert max(calls) == (1 if budget else 5)
    for r in rows:
        ex = enc[r["id"]]
        b = batching.collate([ex], tok.pad_token_id)
        with torch.no_grad():
            logits = model(input_ids=b.input_ids).logits[0, :-1]
        ce = torch.nn.functional.cross_entropy(logits, b.labels[0, 1:], reduction="none",
                                               ignore_index=-100)
        mask = b.labels[0, 1:] != -100
        assert r["n_tokens"] == ex.n_target
        assert r["loss"] == pytest.approx(ce[mask].mean().item(), abs=1e-5)
        assert r["first_loss"] == pytest.approx(ce[mask][0].item(), abs=1e-5)
        if ex.ends_with_eos:
            assert r["end_loss"] == pytest.approx(ce[mask][-1].item(), abs=1e-5)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_a_packed_row_with_shared_prefixes_trains_as_the_padded_batch(attention,
                                                                      random_adapters):
    """Loss and every adapter gradient of a packed row holding each prefix once equal those of
    the padded batch of the whole examples."""
    from zsg_lib.train import TrainConfig
    from zsg_lib.train.loop import _unwrap, _wrap

    base, tok = tiny_model()
    base.set_attn_implementation(attention)
    c = TrainConfig(model="tiny", bf16_autocast=False, lora_r=4, lora_dropout=0.0)
    model = _wrap(base, c)
    random_adapters(model, seed=1)
    enc, _ = encode_many(tok, IDS, CONVS)
    examples = [enc[i] for i in ["rev0", "add1", "rev3", "alone1", "add4"]]
    assert forward.shares_prefixes(model)

    def loss_and_grads(batch):
        model.zero_grad()
        sums, counts = forward.response_token_losses(model, batch)
        loss = sums.sum() / counts.sum()
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()
                             if p.requires_grad}

    try:
        shared = batching.pack(examples, share_prefixes=True)
        assert shared.visible is not None  # the prefixes were held once
        assert shared.input_ids.shape[1] < sum(len(ex.input_ids) for ex in examples)
        got, got_grads = loss_and_grads(shared)
        want, want_grads = loss_and_grads(batching.collate(examples, tok.pad_token_id))
        assert got == pytest.approx(want, abs=1e-5)
        for name, g in want_grads.items():
            torch.testing.assert_close(got_grads[name], g, atol=1e-5, rtol=1e-4)
    finally:
        _unwrap(model, c)


def test_training_with_shared_prefixes_logs_what_padded_training_logs(tmp_path, monkeypatch):
    """Through the loop: the same losses, tokens and instance ids (the order guard reads each
    example back from its spans of the row)."""
    from zsg_lib.schema import instances_from_records
    from zsg_lib.train import TrainConfig, loop, train_run

    recs = [{"id": i, "task": i.rstrip("0123456789"), "messages": c} for i, c in zip(IDS, CONVS)]
    table = instances_from_records(recs, source="test")
    c = TrainConfig(model="tiny", bf16_autocast=False, lora_r=4, lora_dropout=0.0,
                    batch_size=4, max_steps=3, eval_every=3, template="chat")
    order = IDS[:12]
    seen = []
    real_pack = batching.pack
    monkeypatch.setattr(loop, "pack", lambda *a, **k: seen.append(real_pack(*a, **k)) or seen[-1])
    shared = train_run(c, table, table, order, runs_root=tmp_path / "a", progress=False)
    assert any(b is not None and b.visible is not None for b in seen)
    monkeypatch.setattr(loop, "pack", lambda *a, **k: None)  # every batch padded
    padded = train_run(c, table, table, order, runs_root=tmp_path / "b", progress=False)
    ids = [list(x) for x in shared.log["instance_ids"]]
    assert ids == [list(x) for x in padded.log["instance_ids"]] == [order[:4], order[4:8],
                                                                     order[8:]]
    assert shared.log["tokens"].tolist() == padded.log["tokens"].tolist()
    assert shared.log["train_loss"].tolist() == pytest.approx(padded.log["train_loss"].tolist(),
                                                              abs=1e-5)
    assert shared.scores["loss"].tolist() == pytest.approx(padded.scores["loss"].tolist(),
                                                           abs=1e-5)


def test_scoring_groups_only_where_they_hold_enough_tokens():
    """Groups that save under MIN_GROUPED_SHARE of a pass's tokens give way to one group on
    what all instances share (smaller batches would cost more than the saving)."""
    from zsg_lib.train.prefixes import MIN_GROUPED_SHARE, held_once, scoring_groups
    from zsg_lib.train.prompts import EncodedExample

    def ex(prompt):
        return EncodedExample([*prompt, 99], [-100] * len(prompt) + [99], len(prompt), 1)

    head = list(range(100, 110))  # 10 tokens every prompt opens with (a system prompt)
    # pairs sharing 8 more tokens, then 30 tokens of their own
    few = {f"p{k}{j}": ex(head + [k] * 8 + [200 + 31 * j + k] * 30)
           for k in range(3) for j in range(2)}
    groups = prefix_groups(few, list(few))
    assert held_once(groups) < MIN_GROUPED_SHARE * sum(len(e.input_ids) for e in few.values())
    assert [(g.n_prefix, sorted(g.ids)) for g in scoring_groups(few, list(few))] == \
        [(10, sorted(few))]
    # the same pairs with 40 more shared tokens: grouped
    many = {i: ex(head + [int(i[1])] * 48 + e.input_ids[-31:-1]) for i, e in few.items()}
    assert [g.n_prefix for g in scoring_groups(many, list(many))] == [58, 58, 58]
