"""The ordered training loop, scoring, run records and reuse (tiny models, CPU)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from factories import conv

from zsg_lib.errors import TrainError
from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, lr_factor, records as runs, step_chunks, train_run
from zsg_lib.train.models import load_model
from zsg_lib.train.prompts import encode_instance


def table(n: int, prefix: str, task_of=lambda i: f"task{i % 3}"):
    return instances_from_records(
        [{"id": f"{prefix}{i}", "task": task_of(i), "messages": conv(f"{prefix} {i} + {i}?", f"{2 * i}")}
         for i in range(n)])


TRAIN, TEST = table(20, "t"), table(5, "x")
FAST = dict(model="tiny", bf16_autocast=False, learning_rate=1e-2, lora_dropout=0.0)


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**FAST, **kw})


# ------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"method": "dpo"}, "method"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"lora_dropout": 1.5}, "lora_dropout"),
        ({"generate_at": (3,), "max_steps": 2}, "generate_at"),
        ({"method": "qlora", "precision": "fp32"}, "precision"),
        ({"bf16_autocast": "yes"}, "bf16_autocast"),
        ({"template": "fancy"}, "template"),
        ({"dense_scoring": (5, 2)}, "dense_scoring"),
        ({"dense_every": 0}, "dense_every"),
    ],
)
def test_invalid_config_names_the_field(kw, field):
    with pytest.raises(TrainError, match=rf"TrainConfig\.{field}"):
        TrainConfig(**kw)


def test_config_from_dict_and_lists():
    c = TrainConfig.from_dict({"generate_at": [2, 4], "target_modules": ["q_proj"]})
    assert c.generate_at == (2, 4) and c.target_modules == ("q_proj",)
    assert TrainConfig(method="qlora").resolved_precision == "4bit"
    assert json.loads(json.dumps(c.to_dict()))["generate_at"] == [2, 4]


def test_schedule_and_chunks():
    assert lr_factor(3, 10, "constant") == 1.0
    assert lr_factor(0, 4, "cosine") == 1.0
    assert lr_factor(2, 4, "cosine") == pytest.approx(0.55)
    assert step_chunks(list("abcde"), 2, 4) == [["a", "b"], ["c", "d"], ["e"], ["a", "b"]]


# ------------------------------------------------------------------ order


def test_every_step_sees_exactly_the_arranged_instances(tmp_path):
    """Fails if any step trains on other instances than the arrangement's, in its order."""
    order = [f"t{i}" for i in (7, 3, 19, 0, 11, 5, 2, 14, 8, 1, 16)]  # arbitrary, not sorted
    c = cfg(batch_size=2, grad_accum=2, eval_every=100)
    model, tok = load_model("tiny")
    enc = {i: encode_instance(tok, m) for i, m in zip(
        TRAIN.column("id").to_pylist(), TRAIN.column("messages").to_pylist())}
    fed: list[list[list[int]]] = []  # token rows of every training forward

    def hook(module, args, kwargs):
        if torch.is_grad_enabled():  # training forwards only (scoring runs in inference mode)
            ids, mask = kwargs["input_ids"], kwargs.get("attention_mask")
            if mask is None:  # a packed row: each example starts where positions restart
                row, pos = ids[0].tolist(), kwargs["position_ids"][0].tolist()
                starts = [k for k, p in enumerate(pos) if p == 0] + [len(pos)]
                fed.append([row[a:b] for a, b in zip(starts, starts[1:])])
            else:
                fed.append([row[m.bool()].tolist() for row, m in zip(ids, mask)])

    handle = model.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        rec = train_run(c, TRAIN, TEST, order, runs_root=tmp_path, progress=False)
    finally:
        handle.remove()
    expected = step_chunks(order, 4, 3)
    assert [list(x) for x in rec.log["instance_ids"]] == expected
    assert rec.log["n_instances"].tolist() == [4, 4, 3]
    # the micro-batches actually fed are the encoded instances of each chunk, in order
    micro = [chunk[k:k + 2] for chunk in expected for k in range(0, len(chunk), 2)]
    assert fed == [[enc[i].input_ids for i in mb] for mb in micro]
    stored = runs.ORDER
    import pandas as pd
    assert pd.read_parquet(rec.path / stored)["id"].tolist() == order


def test_packed_training_equals_padded_training(tmp_path, monkeypatch):
    """Packing the micro-batch into one row changes only the rounding, not what is learnt."""
    from zsg_lib.train import loop

    order = TRAIN.column("id").to_pylist()[:8]
    c = cfg(batch_size=4, max_steps=2, eval_every=1)
    packed = train_run(c, TRAIN, TEST, order, runs_root=tmp_path / "a", progress=False)
    monkeypatch.setattr(loop, "pack", lambda *a, **k: None)  # every batch padded
    padded = train_run(c, TRAIN, TEST, order, runs_root=tmp_path / "b", progress=False)
    assert packed.log["tokens"].tolist() == padded.log["tokens"].tolist()
    assert packed.log["train_loss"].tolist() == pytest.approx(padded.log["train_loss"].tolist(),
                                                              abs=1e-5)
    assert packed.scores["loss"].tolist() == pytest.approx(padded.scores["loss"].tolist(),
                                                           abs=1e-5)
    assert packed.scores.query("step == 2")["loss"].mean() != pytest.approx(
        packed.scores.query("step == 0")["loss"].mean(), abs=1e-4)  # it trained


def test_fused_optimizer_learns_what_the_per_parameter_loop_learns(tmp_path, monkeypatch):
    """The loop's fused AdamW is the per-parameter update in one kernel: same losses to 1e-6."""
    from zsg_lib.train import loop

    made = []
    real = loop.adamw
    monkeypatch.setattr(loop, "adamw", lambda *a: made.append(real(*a)) or made[-1])
    order = TRAIN.column("id").to_pylist()[:12]
    c = cfg(batch_size=3, max_steps=4, eval_every=2, weight_decay=0.1)
    fused = train_run(c, TRAIN, TEST, order, runs_root=tmp_path / "a", progress=False)
    assert made[0].defaults["fused"] is True
    monkeypatch.setattr(loop, "adamw", lambda p, lr, wd: torch.optim.AdamW(
        p, lr=lr, weight_decay=wd, foreach=False))
    plain = train_run(c, TRAIN, TEST, order, runs_root=tmp_path / "b", progress=False)
    assert fused.log["train_loss"].tolist() == pytest.approx(plain.log["train_loss"].tolist(),
                                                             abs=1e-6)
    assert fused.scores["loss"].tolist() == pytest.approx(plain.scores["loss"].tolist(), abs=1e-6)
    assert fused.scores.query("step == 4")["loss"].mean() != pytest.approx(
        fused.scores.query("step == 0")["loss"].mean(), abs=1e-3)  # it trained


def test_order_with_unknown_ids_is_named(tmp_path):
    with pytest.raises(TrainError, match=r"2 id\(s\).*'nope'.*'t99'"):
        train_run(cfg(), TRAIN, TEST, ["t1", "nope", "t99"], runs_root=tmp_path, progress=False)
    with pytest.raises(TrainError, match="order is empty"):
        train_run(cfg(), TRAIN, TEST, [], runs_root=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())  # nothing written before the checks


# ------------------------------------------------------------------ scoring and records


def test_scores_every_test_instance_at_each_scored_step(tmp_path):
    c = cfg(batch_size=4, eval_every=2, max_steps=5, generate_at=(5,), max_new_tokens=3,
            save_every=2, schedule="cosine")
    rec = train_run(c, TRAIN, TEST, TRAIN.column("id").to_pylist(), runs_root=tmp_path,
                    progress=False)
    s = rec.scores
    assert sorted(s.step.unique()) == [0, 2, 4, 5]
    assert (s.groupby("step").id.apply(sorted).apply(tuple) == tuple(sorted(TEST.column("id").to_pylist()))).all()
    assert s.task.notna().all() and (s.n_tokens > 0).all() and s.loss.gt(0).all()
    gen = s[s.step == 5]
    assert gen.rougeL.notna().all() and gen.exact_match.isin([0.0, 1.0]).all()
    assert s[s.step < 5].prediction.isna().all()
    # learning falls with training on a learnable toy task at lr 1e-2
    curve = runs.load_runs(rec.path).loss_curves().set_index("step")["loss"]
    assert curve[5] < curve[0]
    # cosine, no warm-up: first step at full lr, then decreasing
    lrs = rec.log.lr.tolist()
    assert lrs[0] == pytest.approx(1e-2) and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert (rec.path / "adapters" / "step-2" / "adapter_config.json").exists()
    assert (rec.path / "adapters" / "step-4").exists() and runs.is_done(rec.path)
    assert not (rec.path / runs.CHECKPOINT).exists()
    params = json.loads((rec.path / runs.PARAMS).read_text())
    assert params["run_id"] == rec.run_id and params["versions"]["torch"] == torch.__version__
    assert (rec.log.tokens > rec.log.response_tokens).all()
    # where the run's time went: steps (the log), scoring passes, generation, within the wall
    spent = {k: rec.summary[f"{k}_seconds_this_process"] for k in ("scoring", "generation")}
    assert spent["scoring"] > 0 and spent["generation"] > 0
    assert rec.log.seconds.sum() + sum(spent.values()) < rec.summary["wall_seconds_this_process"]


def test_dense_scoring_scores_every_step_of_its_range(tmp_path):
    c = cfg(batch_size=4, eval_every=4, max_steps=8, dense_scoring=(2, 6), dense_every=2)
    rec = train_run(c, TRAIN, TEST, TRAIN.column("id").to_pylist(), runs_root=tmp_path,
                    progress=False)
    assert sorted(rec.scores.step.unique()) == [0, 2, 4, 6, 8]
    plain = train_run(cfg(batch_size=4, eval_every=4, max_steps=8), TRAIN, TEST,
                      TRAIN.column("id").to_pylist(), runs_root=tmp_path, progress=False)
    assert plain.run_id != rec.run_id  # the scored steps are part of what a run is
    both = rec.scores.merge(plain.scores, on=["step", "id"], suffixes=("", "_plain"))
    assert sorted(both.step.unique()) == [0, 4, 8]  # scoring more often changes no loss
    assert (both.loss - both.loss_plain).abs().max() < 1e-6


@pytest.mark.parametrize("rng", [(9, 9), (1, 9)])
def test_dense_scoring_outside_the_run_fails_before_training(tmp_path, rng):
    c = cfg(batch_size=4, max_steps=8, dense_scoring=rng)
    with pytest.raises(TrainError, match=r"dense_scoring: steps .* outside the run's steps 1–8"):
        train_run(c, TRAIN, TEST, TRAIN.column("id").to_pylist(), runs_root=tmp_path,
                  progress=False)
    assert not any(tmp_path.rglob("*.parquet"))


def test_train_loss_is_on_response_tokens_only(tmp_path):
    """Changing only the prompts of the training set changes inputs but the step-1 loss is
    still the loss of the response tokens: compare to the model's own loss with masked labels."""
    model, tok = load_model("tiny")
    rec = train_run(cfg(batch_size=2, max_steps=1, eval_every=1), TRAIN, TEST, ["t1", "t2"],
                    runs_root=tmp_path, progress=False)
    exs = [encode_instance(tok, m) for m in TRAIN.column("messages").to_pylist()[1:3]]
    width = max(len(e.input_ids) for e in exs)
    ids = torch.tensor([e.input_ids + [tok.pad_token_id] * (width - len(e.input_ids)) for e in exs])
    labels = torch.tensor([e.labels + [-100] * (width - len(e.labels)) for e in exs])
    mask = (torch.arange(width)[None] < torch.tensor([len(e.input_ids) for e in exs])[:, None]).long()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, labels=labels).loss.item()
    assert rec.log.train_loss.iloc[0] == pytest.approx(ref, abs=1e-5)
    assert rec.log.response_tokens.iloc[0] == sum(e.n_target for e in exs)


def test_grad_accum_equals_one_big_batch(tmp_path):
    order = TRAIN.column("id").to_pylist()[:12]
    a = train_run(cfg(batch_size=4, grad_accum=1, eval_every=3), TRAIN, TEST, order,
                  runs_root=tmp_path / "a", progress=False)
    b = train_run(cfg(batch_size=2, grad_accum=2, eval_every=3), TRAIN, TEST, order,
                  runs_root=tmp_path / "b", progress=False)
    assert a.run_id != b.run_id
    assert a.log.train_loss.tolist() == pytest.approx(b.log.train_loss.tolist(), abs=1e-5)
    assert a.scores.loss.tolist() == pytest.approx(b.scores.loss.tolist(), abs=1e-5)


def test_finished_run_is_reused_and_base_model_untouched(tmp_path, monkeypatch):
    base, _ = load_model("tiny")
    before = {k: v.clone() for k, v in base.state_dict().items()}
    attn = base.config._attn_implementation
    order = TRAIN.column("id").to_pylist()[:8]
    starts: list[tuple[str, bool]] = []
    first = train_run(cfg(batch_size=4, eval_every=1), TRAIN, TEST, order, runs_root=tmp_path,
                      run_name="a", progress=False,
                      on_start=lambda run_id, ready: starts.append((run_id, ready)))
    after = base.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert base.config._attn_implementation == attn  # the run's eager switch is undone

    import zsg_lib.train.run as train_mod
    monkeypatch.setattr(train_mod, "load_model", lambda *a, **k: pytest.fail("recomputed"))
    again = train_run(cfg(batch_size=4, eval_every=1), TRAIN, TEST, order, runs_root=tmp_path,
                      run_name="b", progress=False,
                      on_start=lambda run_id, ready: starts.append((run_id, ready)))
    assert again.reused and again.run_id == first.run_id
    assert starts == [(first.run_id, False), (first.run_id, True)]
    assert again.scores.equals(first.scores)
    monkeypatch.undo()
    # a different order, or different test content, is a different run
    other = train_run(cfg(batch_size=4, eval_every=1), TRAIN, TEST, order[::-1],
                      runs_root=tmp_path, progress=False)
    assert other.run_id != first.run_id and not other.reused


def test_full_finetuning_leaves_cached_model_alone(tmp_path):
    base, _ = load_model("tiny")
    w = base.lm_head.weight.clone()
    rec = train_run(cfg(method="full", batch_size=4, eval_every=2, learning_rate=1e-3),
                    TRAIN, TEST, TRAIN.column("id").to_pylist()[:8], runs_root=tmp_path,
                    progress=False)
    assert torch.equal(base.lm_head.weight, w) and len(rec.log) == 2


# ------------------------------------------------------------------ bad input


def test_empty_test_set_after_truncation(tmp_path):
    with pytest.raises(TrainError, match="empty after truncation"):
        train_run(cfg(max_target_len=0), TRAIN, TEST, ["t1"], runs_root=tmp_path, progress=False)
    with pytest.raises(TrainError, match="test set is empty"):
        train_run(cfg(), TRAIN, TEST.slice(0, 0), ["t1"], runs_root=tmp_path, progress=False)


def test_zero_token_responses_are_counted_not_divided(tmp_path):
    test = instances_from_records([
        {"id": "ok", "task": "a", "messages": conv("q", "an answer")},
        {"id": "empty", "task": "a", "messages": conv("q", "")},
    ])
    train = instances_from_records([{"id": "e", "task": "a", "messages": conv("q", "")}])
    _, tok = load_model("tiny:chat_template=0")  # plain template: "" + eos = 1 token ...
    c = cfg(model="tiny:chat_template=0", max_target_len=1, batch_size=1, eval_every=1)
    # ... so cut responses to 0 tokens through the plain template without eos
    tok_eos = tok.eos_token
    tok.eos_token = None
    try:
        with pytest.warns(UserWarning, match="zero response tokens"):
            rec = train_run(c, train, test, ["e"], runs_root=tmp_path, progress=False)
    finally:
        tok.eos_token = tok_eos
    enc = rec.params["encoding"]
    assert enc["zero_target_test_ids"] == ["empty"] and enc["train"]["zero_target"] == 1
    s = rec.scores
    assert math.isnan(s[s.id == "empty"].loss.iloc[0]) and (s[s.id == "empty"].n_tokens == 0).all()
    assert s[s.id == "ok"].loss.notna().all()
    assert math.isnan(rec.log.train_loss.iloc[0])  # a step with no response tokens moves nothing


def test_incompatible_run_dir_is_refused(tmp_path):
    order = ["t1", "t2"]
    rec = train_run(cfg(batch_size=2), TRAIN, TEST, order, runs_root=tmp_path, progress=False)
    p = rec.path / runs.PARAMS
    params = json.loads(p.read_text())
    params["format_version"] = 0
    p.write_text(json.dumps(params))
    with pytest.raises(TrainError, match="format 0"):
        train_run(cfg(batch_size=2), TRAIN, TEST, order, runs_root=tmp_path, progress=False)


def test_qlora_without_bitsandbytes_fails_before_training(tmp_path, monkeypatch):
    from zsg_lib.train import quantized

    monkeypatch.setattr(quantized, "bitsandbytes_version", lambda: None)
    with pytest.raises(TrainError, match=r"pip install 'zsg\[qlora\]'"):
        train_run(cfg(method="qlora"), TRAIN, TEST, ["t1"], runs_root=tmp_path, progress=False)
    assert not list(tmp_path.glob(f"*/{runs.PARAMS}"))  # nothing written


def test_progress_bar_shows_loss_test_loss_and_tokens_per_s(tmp_path, capsys):
    train_run(cfg(batch_size=4, eval_every=1), TRAIN, TEST, TRAIN.column("id").to_pylist()[:8],
              runs_root=tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "loss=" in err and "test=" in err and "tok_s=" in err


def test_scoring_with_a_shared_prefix_matches_the_plain_loss():
    """The shared-prefix path (system prompt run once) gives the model's own per-instance loss."""
    from zsg_lib.train.batching import collate
    from zsg_lib.train.prefixes import shared_prefix_len
    from zsg_lib.train.scoring import score_examples

    model, tok = load_model("tiny")
    sys_msg = {"role": "system", "content": "You are a careful assistant who answers briefly."}
    convs = [[sys_msg, *conv("q" * k, "ans " * k)] for k in (1, 4, 9, 2)]
    enc = {f"i{k}": encode_instance(tok, c) for k, c in enumerate(convs)}
    assert shared_prefix_len(list(enc.values())) >= 8
    rows = score_examples(model, enc, list(enc), tok.pad_token_id, batch_size=3)
    for r in rows:
        ex = enc[r["id"]]
        b = collate([ex], tok.pad_token_id)
        with torch.no_grad():
            ref = model(input_ids=b.input_ids, labels=b.labels).loss.item()
        assert r["loss"] == pytest.approx(ref, abs=1e-5) and r["n_tokens"] == ex.n_target


@pytest.mark.parametrize("shared_prefix", [True, False])
def test_scores_split_first_and_end_token_losses(shared_prefix):
    """first_loss / end_loss are the cross-entropies of the first and the end-of-response token
    (the model's own full-logits values), on both scoring paths; a cut-off end has none."""
    from zsg_lib.train.scoring import score_examples

    model, tok = load_model("tiny")
    head = ([{"role": "system", "content": "You are a careful assistant who answers briefly."}]
            if shared_prefix else [])
    convs = [[*head, *conv("q" * k, "ans " * k)] for k in (1, 4, 9, 2)]
    enc = {f"i{k}": encode_instance(tok, c) for k, c in enumerate(convs)}
    enc["cut"] = encode_instance(tok, convs[2], max_target_len=2)  # end token truncated away
    rows = score_examples(model, enc, list(enc), tok.pad_token_id, batch_size=3)
    for r in rows:
        ex = enc[r["id"]]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ex.input_ids])).logits[0, :-1]
        ce = torch.nn.functional.cross_entropy(logits, torch.tensor(ex.input_ids[1:]),
                                               reduction="none")[ex.n_source - 1:]
        assert r["first_loss"] == pytest.approx(ce[0].item(), abs=1e-5)
        assert r["loss"] == pytest.approx(ce.mean().item(), abs=1e-5)
        if r["id"] == "cut":
            assert math.isnan(r["end_loss"]) and not ex.ends_with_eos
        else:
            assert r["end_loss"] == pytest.approx(ce[-1].item(), abs=1e-5)
