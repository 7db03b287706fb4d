"""CPU training throughput: zsg's ordered LoRA loop vs TRL's SFTTrainer, side by side.

Same model (the embedded SmolLM2-135M-Instruct), same demo-like short instances (built inline),
same LoRA config (r=16, alpha=32, dropout 0.05, all linear layers), batch 8, the same precision
on both: base weights stored in bf16 with bf16 autocast where the CPU computes bf16 natively
(AVX512-BF16 or AMX), fp32 elsewhere (zsg's ``bf16_autocast="auto"``), loss on responses only on
both, a constant learning rate of 2e-4 on both. Reports tokens/s (the instances' input tokens per
second of training steps; ours holds a prompt prefix its micro-batch shares, the chat template's
system prompt, once, and also says how many tokens it computed), and peak RSS of the process.

Model FLOP utilisation, three ways, against this CPU's measured peak (a bf16 and an fp32 square
GEMM timed in the same process, ``torch.mm``, 2048 x 2048, best of several):

- **MFU**: one formula for both trainers, ``4 N`` FLOPs per input token (forward ``2 N``, the
  backward's input gradients ``2 N``; no weight gradients for the frozen ``N`` parameters, the
  adapters' are ~4% of that; attention negligible at these lengths). A trainer that skips work
  (a shared prefix held once, the LM head at response positions only) scores higher.
- **FLOPs computed**: what each trainer actually multiplies: the decoder's ``4 N_body`` on each
  token it runs (ours: a shared prefix once per packed row) and the LM head's ``4 N_head`` on
  each position it scores (ours: response positions; TRL: every position).
- **Shape ceiling**: the same matrix products (each layer's seven projections forward and their
  input gradients, and the LM head) at the step's own row counts, timed alone: a product of
  few rows runs below the square-GEMM peak, so this is nearer what any trainer could reach at
  these shapes without changing them.

    .venv/bin/python bench/bench_train.py            # both, 12 steps each
    .venv/bin/python bench/bench_train.py --batch 4 --dropout 0   # cpu-demo's batch, chat
    .venv/bin/python bench/bench_train.py --batch 4 --dropout 0 --template plain  # cpu-demo's
    .venv/bin/python bench/bench_train.py --book     # one run as the book trains it (wall time)
    .venv/bin/python bench/bench_train.py --batch 4 --dropout 0 --compile both  # eager vs compiled

Ours compiles its decoder layers where ``ZSG_COMPILE`` (default ``auto``) says so
(:mod:`zsg_lib.train.compiled`); ``--compile 0|1`` sets it, ``both`` times the eager and the
compiled loop one after the other. The first step (which compiles) is left out of every rate,
as TRL's first step is; its seconds are printed.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsg_lib.schema import instances_from_records  # noqa: E402

WORDS = {
    "Germany": "Allemagne", "Spain": "Espagne", "Italy": "Italie", "Japan": "Japon",
    "Brazil": "Brésil", "Canada": "Canada", "Norway": "Norvège", "Egypt": "Égypte",
    "January": "janvier", "March": "mars", "August": "août", "December": "décembre",
}


def demo_like(n: int, seed: int = 0, prefix: str = "i"):
    """``n`` short instruction instances in four tasks (~48 tokens each with SmolLM2's chat
    template, whose default system prompt is ~20 of them; ~26 with the plain template)."""
    rng = random.Random(seed)
    recs = []
    for k in range(n):
        kind = k % 4
        if kind == 0:
            en = rng.choice(list(WORDS))
            q, a, task = f"Translate the English name into French: {en}", WORDS[en], "en-fr"
        elif kind == 1:
            x, y = rng.randint(10, 99), rng.randint(10, 99)
            q, a, task = f"What is {x} plus {y}?", str(x + y), "add"
        elif kind == 2:
            w = rng.choice(list(WORDS))
            q, a, task = f"Write the word backwards: {w}", w[::-1], "reverse"
        else:
            xs = [rng.randint(1, 50) for _ in range(4)]
            q, a, task = f"Sort these numbers: {xs}", str(sorted(xs)), "sort"
        recs.append({"id": f"{prefix}{k}", "task": task, "messages": [
            {"role": "user", "content": q}, {"role": "assistant", "content": a}]})
    return instances_from_records(recs, source="bench")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def gemm_peak_gflops(dtype_name: str, n: int = 2048, reps: int = 8) -> float:
    """Best-of-``reps`` GFLOP/s of one ``n x n`` by ``n x n`` matrix product in ``dtype``
    (:func:`zsg_lib.train.gemm_rate.square_gflops`)."""
    from zsg_lib.train.gemm_rate import square_gflops

    return square_gflops(dtype_name, n, reps)


def model_shapes():
    """The embedded model's config and its parameters: the decoder's, and the LM head's (the
    tied embedding counted once: it is the output projection's matrix)."""
    from zsg_lib.train.models import load_model

    model, _ = load_model(None, "fp32")
    n_all = sum(p.numel() for p in model.parameters())
    n_head = model.get_output_embeddings().weight.numel()
    return model.config, n_all - n_head, n_head


def shape_ceiling_gflops(config, rows: float, head_rows: float, reps: int = 5) -> float:
    """GFLOP/s of a LoRA step's big matrix products at the step's own shapes, timed alone
    (fp32, best of ``reps``): each layer's seven projections on ``rows`` token rows, forward
    and their input gradient, and the LM head on ``head_rows`` rows, forward and backward."""
    import torch

    d, ff = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * (d // config.num_attention_heads)
    m, h = max(1, round(rows)), max(1, round(head_rows))
    # (rows, in, out) of each product: forward x @ W.T, input gradient g @ W
    layer = [(d, d), (d, kv), (d, kv), (d, d), (d, ff), (d, ff), (ff, d)]
    prods = [(m, i, o) for i, o in layer] + [(m, o, i) for i, o in layer]
    head = [(h, d, config.vocab_size), (h, config.vocab_size, d)]
    mats = [(torch.randn(r, k), torch.randn(k, n)) for r, k, n in prods + head]
    flops = sum(2 * r * k * n for r, k, n in prods) * config.num_hidden_layers + sum(
        2 * r * k * n for r, k, n in head)

    def once() -> float:
        t0 = time.perf_counter()
        for a, b in mats[: len(prods)]:
            for _ in range(config.num_hidden_layers):
                torch.mm(a, b)
        for a, b in mats[len(prods):]:
            torch.mm(a, b)
        return time.perf_counter() - t0

    once()  # warm the kernels
    return flops / min(once() for _ in range(reps)) / 1e9


def bench_ours(train, steps: int, batch: int, dropout: float = 0.05,
               template: str = "chat") -> dict:
    from zsg_lib.train import TrainConfig, train_run

    order = train.column("id").to_pylist()[: steps * batch]
    test = demo_like(8, seed=99, prefix="x")
    cfg = TrainConfig(batch_size=batch, eval_every=10_000, max_steps=steps, lora_dropout=dropout,
                      template=template)
    rec = train_run(cfg, train, test, order, runs_root=tempfile.mkdtemp(), progress=False)
    log = rec.log.iloc[1:]  # first step warms up kernels (and compiles the layers)
    fed, scored = fed_tokens(cfg, train, [list(ids) for ids in log["instance_ids"]])
    seconds = log["seconds"].sum()
    return {"tokens_per_s": log["tokens"].sum() / seconds, "s_per_step": seconds / len(log),
            "rows_per_step": fed / len(log), "head_rows_per_step": scored / len(log),
            "compiled": rec.summary["compiled_layers"], "first_step_s": rec.log["seconds"].iloc[0],
            "losses": rec.log["train_loss"].tolist()}


def fed_tokens(cfg, train, batches: list[list[str]]) -> tuple[int, int]:
    """Tokens the decoder actually ran over for these micro-batches (a shared prompt prefix,
    the chat template's system prompt, counts once per packed row, as the loop lays it out),
    and the positions the LM head ran at (those whose next token is a response token)."""
    from zsg_lib.train.batching import pack
    from zsg_lib.train.models import load_model
    from zsg_lib.train.prompts import encode_many

    _, tok = load_model(None, "fp32")
    ids = train.column("id").to_pylist()
    enc, _ = encode_many(tok, ids, train.column("messages").to_pylist(), cfg.max_source_len,
                         cfg.max_target_len, cfg.template, cfg.system_prompt)
    total = scored = 0
    for batch in batches:
        examples = [enc[i] for i in batch]
        row = pack(examples, share_prefixes=True)
        total += row.n_tokens if row is not None else sum(len(e.input_ids) for e in examples)
        scored += sum(e.n_target for e in examples)  # each target token's position before it
    return total, scored


def bench_trl(train, steps: int, batch: int, dropout: float = 0.05,
              template: str = "chat") -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from zsg_lib.train.hardware import native_bf16
    from zsg_lib.train.models import load_model

    bf16 = native_bf16("cpu")  # what ours resolves TrainConfig()'s bf16_autocast="auto" to
    base, tok = load_model(None, "bf16" if bf16 else "fp32")  # the same stored precision
    rows = train.column("messages").to_pylist()[: steps * batch]
    # prompt/completion form: TRL then takes the loss on the completion only, as we do
    if template == "plain":  # our plain template's texts (TRL appends the eos token)
        from zsg_lib.train.prompts import _plain_texts

        texts = [_plain_texts([dict(m) for m in ms]) for ms in rows]
        ds = Dataset.from_list([{"prompt": p, "completion": whole[len(p):]}
                                for p, whole in texts])
    else:
        ds = Dataset.from_list([{"prompt": [dict(m) for m in ms[:-1]],
                                 "completion": [dict(ms[-1])]} for ms in rows])

    times: list[float] = []
    tokens: list[int] = []
    padded: list[int] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    args = SFTConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch, max_steps=steps,
        learning_rate=2e-4, lr_scheduler_type="constant", logging_steps=1000, save_strategy="no",
        report_to=[], bf16=bf16, use_cpu=True, completion_only_loss=True, max_length=1024,
        packing=False, dataloader_num_workers=0, gradient_checkpointing=False, disable_tqdm=True,
    )
    lcfg = LoraConfig(r=16, lora_alpha=32, lora_dropout=dropout, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=base, args=args, train_dataset=ds, processing_class=tok,
                         peft_config=lcfg, callbacks=[Timer()])
    orig = trainer.training_step

    def counting_step(model, inputs, *a, **kw):
        tokens.append(int(inputs["attention_mask"].sum()))
        padded.append(inputs["input_ids"].numel())  # what it computes: rows padded to the longest
        return orig(model, inputs, *a, **kw)

    trainer.training_step = counting_step
    trainer.train()
    trainer.model.unload()
    torch.set_grad_enabled(True)
    seconds, n = sum(times[1:]), len(times[1:])
    # TRL runs the decoder and the LM head on every position of its padded batch
    return {"tokens_per_s": sum(tokens[1:]) / seconds, "s_per_step": seconds / n,
            "rows_per_step": sum(padded[1:]) / n, "head_rows_per_step": sum(padded[1:]) / n}


def book_run() -> None:
    """One run shaped as the book's (the cpu-demo profile's training config: batch 4 of short
    instances, plain template, 40 steps, scored every 8 steps on 90 test instances)."""
    import torch

    from zsg_lib.profiles.params import load_profile
    from zsg_lib.train import train_run
    from zsg_lib.train.hardware import resolve
    from zsg_lib.train.models import load_model

    cfg = resolve(load_profile("cpu-demo").run_config(seed=0))
    t0 = time.perf_counter()
    load_model(None, cfg.resolved_precision)
    t_load = time.perf_counter() - t0
    train = demo_like(cfg.max_steps * cfg.instances_per_step)
    test = demo_like(90, seed=7, prefix="x")
    order = train.column("id").to_pylist()
    root = tempfile.mkdtemp()
    t0 = time.perf_counter()
    rec = train_run(cfg, train, test, order, runs_root=root, progress=False)
    t_run = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = train_run(cfg, train, test, order, runs_root=root, progress=False)
    t_cached = time.perf_counter() - t0
    curve = rec.scores.groupby("step", as_index=False)["loss"].mean()
    print(f"model load {t_load:.1f} s ({cfg.resolved_precision}); run {t_run:.1f} s "
          f"({len(rec.log)} steps, {len(rec.scores)} score rows); cached rerun {t_cached:.2f} s "
          f"(reused={again.reused})")
    t_train = rec.log["seconds"].sum()
    print(f"mean tokens/instance {rec.log['tokens'].sum() / rec.log['n_instances'].sum():.1f}; "
          f"train steps {t_train:.1f} s (mean {rec.log['seconds'].mean():.2f} s/step); "
          f"scoring + overhead {t_run - t_train:.1f} s; torch threads {torch.get_num_threads()}")
    print("test loss by step:", [round(x, 4) for x in curve["loss"]])
    print(f"peak RSS {peak_rss_gb():.2f} GB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--book", action="store_true")
    ap.add_argument("--only", choices=["ours", "trl"])
    ap.add_argument("--dropout", type=float, default=0.05,
                    help="LoRA dropout on both (cpu-demo: 0.0)")
    ap.add_argument("--template", choices=["chat", "plain"], default="chat",
                    help="chat: SmolLM2's, with its system prompt; plain: cpu-demo's")
    ap.add_argument("--compile", choices=["auto", "0", "1", "both"], default=None,
                    help="ZSG_COMPILE for ours (default: the environment's, else auto)")
    a = ap.parse_args()
    if a.book:
        book_run()
        return
    train = demo_like(a.steps * a.batch)
    res = {}
    if a.only in (None, "ours"):
        settings = ["0", "1"] if a.compile == "both" else [a.compile]
        for setting in settings:
            if setting is not None:
                os.environ["ZSG_COMPILE"] = setting
            name = "zsg" if len(settings) == 1 else f"zsg{'+c' if setting == '1' else ''}"
            r = res[name] = bench_ours(train, a.steps, a.batch, a.dropout, a.template)
            print(f"{name:<6}: {r['tokens_per_s']:.0f} tok/s, {r['s_per_step']:.2f} s/step "
                  f"({r['rows_per_step'] / r['s_per_step']:.0f} tok/s computed: shared "
                  f"prefixes once); layers {'compiled' if r['compiled'] else 'eager'}, first "
                  f"step {r['first_step_s']:.1f} s; peak RSS {peak_rss_gb():.2f} GB", flush=True)
        if len(settings) == 2:
            diff = max(abs(x - y) for x, y in zip(res["zsg"]["losses"], res["zsg+c"]["losses"]))
            print(f"compiled vs eager: {res['zsg']['s_per_step'] / res['zsg+c']['s_per_step']:.2f}x"
                  f" per step; max |train loss difference| {diff:.1e}")
    if a.only in (None, "trl"):
        res["trl"] = bench_trl(train, a.steps, a.batch, a.dropout, a.template)
        print(f"trl   : {res['trl']['tokens_per_s']:.0f} tok/s, "
              f"{res['trl']['s_per_step']:.2f} s/step; peak RSS {peak_rss_gb():.2f} GB", flush=True)
    for name in (n for n in res if n != "trl" and "trl" in res):
        print(f"ratio {name}/trl: {res[name]['tokens_per_s'] / res['trl']['tokens_per_s']:.2f}")
    if res:
        import torch

        from zsg_lib.train.hardware import native_bf16

        native = native_bf16("cpu")
        # emulated bf16 runs ~1 GFLOP/s: a smaller product keeps the timing short
        peaks = {"bfloat16": gemm_peak_gflops("bfloat16", 2048 if native else 512),
                 "float32": gemm_peak_gflops("float32")}
        used = "bfloat16" if native else "float32"
        config, n_body, n_head = model_shapes()
        print(f"GEMM peak on {torch.get_num_threads()} threads: bf16 {peaks['bfloat16']:.0f} "
              f"GFLOP/s{'' if native else ' (emulated: no AVX512-BF16/AMX)'}, fp32 "
              f"{peaks['float32']:.0f} GFLOP/s; training in {used}; model "
              f"{(n_body + n_head) / 1e6:.1f}M parameters ({n_head / 1e6:.1f}M in the LM head)")
        for name, r in res.items():
            mfu = 4 * (n_body + n_head) * r["tokens_per_s"] / 1e9
            done = 4 * (n_body * r["rows_per_step"] + n_head * r["head_rows_per_step"]) / (
                r["s_per_step"] * 1e9)
            line = (f"{name:<4}: MFU {mfu:.0f} GFLOP/s = {mfu / peaks[used]:.0%} of the {used} "
                    f"peak; FLOPs computed {done:.0f} GFLOP/s = {done / peaks[used]:.0%}")
            if used == "float32":  # the products timed alone run in fp32
                ceiling = shape_ceiling_gflops(config, r["rows_per_step"],
                                               r["head_rows_per_step"])
                line += (f"; its shapes alone ({r['rows_per_step']:.0f} rows/step) "
                         f"{ceiling:.0f} GFLOP/s = {ceiling / peaks[used]:.0%} of peak, "
                         f"so {done / ceiling:.0%} of what these shapes allow")
            print(line)

if __name__ == "__main__":
    main()
