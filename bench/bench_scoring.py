"""The per-instance scoring pass vs a plain padded full-logits pass, same model, same test set.

The model is what the book scores: the embedded SmolLM2-135M with the profile's LoRA adapters
(r=16, all linear layers; random adapter weights, as after training: a fresh adapter adds 0),
unless ``--bare`` (the base model alone). The test set (``--data``): ``book``, the cpu-demo
profile's own 90 test instances (9 demo tasks, plain template); ``niv2``, the niv2-sample
profile's 80 (8 real NIv2 tasks from ../shared, each prompt opening with its task's definition
and a positive example, chat template); ``bench``, ``--n`` of bench_train's inline instances.
Plain pass: instances in table order, batches of 16 padded to the longest, ``model(...).logits``
over the whole vocabulary at every position, cross-entropy over response tokens per instance.
Ours: :func:`zsg_lib.train.scoring.score_examples` (length-sorted batches, decoder once, LM head
at response positions only, shared prompt prefixes run once per group, adapters folded into
temporary weights). Both in fp32 here so losses compare to 1e-4.

    .venv/bin/python bench/bench_scoring.py [--data book|niv2|bench] [--repeats 3] [--bare]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_train import demo_like  # noqa: E402

from zsg_lib.profiles.params import load_profile  # noqa: E402
from zsg_lib.train.batching import collate  # noqa: E402
from zsg_lib.train.models import load_model  # noqa: E402
from zsg_lib.train.prefixes import held_once, prefix_groups, scoring_groups  # noqa: E402
from zsg_lib.train.prompts import encode_many  # noqa: E402
from zsg_lib.train.scoring import score_examples  # noqa: E402


def plain_pass(model, enc, ids, pad_id, batch_size=16):
    out = {}
    model.eval()  # no LoRA dropout (niv2-sample trains with 0.05), as score_examples
    with torch.inference_mode():
        for k in range(0, len(ids), batch_size):
            chunk = ids[k : k + batch_size]
            b = collate([enc[i] for i in chunk], pad_id)
            logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits
            logits, labels = logits[:, :-1].float(), b.labels[:, 1:]
            # flattened as transformers' own loss does (a transposed log-softmax over the
            # vocabulary axis is ~1.6e-4 off fp64 here; this is ~1e-5)
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                 reduction="none").view(labels.shape)
            mask = labels != -100
            for i, row, m in zip(chunk, ce, mask):
                out[i] = float(row[m].sum() / m.sum())
    return out


@contextlib.contextmanager
def unfolded():
    """score_examples with the LoRA side path, as before adapters were folded."""
    from zsg_lib.train import inference

    saved = inference.merged_lora
    inference.merged_lora = lambda model: contextlib.nullcontext(0)
    try:
        yield
    finally:
        inference.merged_lora = saved


@contextlib.contextmanager
def one_group():
    """score_examples with one prefix for all instances (what they all share, as before
    prompts were grouped)."""
    from zsg_lib.train import scoring
    from zsg_lib.train.prefixes import common_group

    def single(encoded, ids):  # stands in for scoring_groups
        return [common_group(encoded, ids)]

    saved = scoring.scoring_groups
    scoring.scoring_groups = single
    try:
        yield
    finally:
        scoring.scoring_groups = saved


def with_adapters(base, profile):
    """The profile's LoRA on ``base``, adapter weights drawn at random (seeded)."""
    from zsg_lib.train.loop import _wrap

    model = _wrap(base, profile.run_config(seed=0))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return model


def test_set(profile, data: str, n: int):
    """The profile's test instances as the book samples them (seed 0), or the inline ones."""
    if data == "bench":
        return demo_like(n, seed=5, prefix="x")
    from zsg_lib.study.experiment import draw_test_set, load_split

    return draw_test_set(profile, load_split(profile), seed=0)


def encode_table(tok, table, train):
    """The table's instances by id, encoded as the profile's ``train`` settings encode them
    (template, lengths, system prompt)."""
    enc, _ = encode_many(tok, table.column("id").to_pylist(), table.column("messages").to_pylist(),
                         max_source_len=train.max_source_len, max_target_len=train.max_target_len,
                         template=train.template, system_prompt=train.system_prompt)
    return enc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=["book", "niv2", "bench"], default="book")
    ap.add_argument("--n", type=int, default=64, help="instances of --data bench")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bare", action="store_true", help="the base model, no LoRA adapters")
    a = ap.parse_args()
    profile = load_profile("niv2-sample" if a.data == "niv2" else "cpu-demo")
    model, tok = load_model(None, "fp32")
    if not a.bare:
        model = with_adapters(model, profile)
    test = test_set(profile, a.data, a.n)
    ids = test.column("id").to_pylist()
    enc = encode_table(tok, test, profile.train)
    n_tok = sum(len(e.input_ids) for e in enc.values())
    ref = plain_pass(model, enc, ids, tok.pad_token_id)  # warm-up
    ours = score_examples(model, enc, ids, tok.pad_token_id, 16)
    t_plain, t_ours, t_unfolded, t_one = [], [], [], []
    for _ in range(a.repeats):  # interleaved, so machine load hits all alike
        t0 = time.perf_counter()
        ref = plain_pass(model, enc, ids, tok.pad_token_id)
        t_plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours = score_examples(model, enc, ids, tok.pad_token_id, 16)
        t_ours.append(time.perf_counter() - t0)
        with one_group():  # the same pass with one shared prefix at most
            t0 = time.perf_counter()
            score_examples(model, enc, ids, tok.pad_token_id, 16)
            t_one.append(time.perf_counter() - t0)
        if not a.bare:  # the same pass with the adapters' side path (no folding)
            with unfolded():
                t0 = time.perf_counter()
                score_examples(model, enc, ids, tok.pad_token_id, 16)
                t_unfolded.append(time.perf_counter() - t0)
    diff = max(abs(r["loss"] - ref[r["id"]]) for r in ours)
    tp, to = min(t_plain), min(t_ours)
    groups = prefix_groups(enc, ids)
    n_shared = held_once(groups)
    grouped = len(scoring_groups(enc, ids)) > 1
    print(f"--data {a.data}: {len(ids)} instances, {n_tok} tokens ({n_shared} of them in "
          f"prefixes shared within {sum(1 for g in groups if g.n_prefix)} groups: "
          f"{'scored in groups' if grouped else 'too few to score in groups'}), torch threads {torch.get_num_threads()}, "
          f"{'base model' if a.bare else 'with LoRA r=16 adapters'}")
    print(f"plain padded full-logits: {tp:.2f} s (min of {a.repeats}: "
          f"{[round(x, 2) for x in t_plain]})")
    print(f"zsg scoring pass        : {to:.2f} s ({[round(x, 2) for x in t_ours]})")
    print(f"speed-up {tp / to:.2f}x; max |loss difference| {diff:.2e}")
    t1 = min(t_one)
    print(f"zsg pass, one prefix for all (never grouped): {t1:.2f} s "
          f"({[round(x, 2) for x in t_one]}); grouping gains {t1 / to:.2f}x")
    if t_unfolded:
        tu = min(t_unfolded)
        print(f"zsg pass, adapters not folded: {tu:.2f} s ({[round(x, 2) for x in t_unfolded]}); "
              f"folding gains {tu / to:.2f}x, the rest {tp / tu:.2f}x")
    from zsg_lib.train.hardware import native_bf16

    if not native_bf16("cpu"):  # emulated bf16 would take minutes; the book runs fp32 here
        print("no native bf16 on this CPU (AVX512-BF16/AMX): the book scores in fp32, as above")
        return
    model2, _ = load_model(None, "bf16")
    if not a.bare:
        model2 = with_adapters(model2, profile)
    t0 = time.perf_counter()
    score_examples(model2, enc, ids, tok.pad_token_id, 16, bf16_autocast=True)
    print(f"zsg scoring pass, bf16 weights + autocast (the book's on this CPU): "
          f"{time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
