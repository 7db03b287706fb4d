"""QLoRA (4-bit NF4 base weights) beside bf16 LoRA on the embedded model, on this CPU.

The same run twice over: the cpu-demo profile's LoRA (r=16, all linear layers, no dropout,
lr 2e-4, batch 4, plain template) on SmolLM2-135M-Instruct, its 90-instance test set (seed 0)
and a seeded shuffle of its training instances, under bf16 autocast in both, once with the
base weights in bf16 (``precision: bf16``, the book's setting on a CPU with native bf16) and
once in 4-bit (``method: qlora``: NF4, double quantization). Each precision runs in its own
process, so its peak memory is its own. Reported:

* seconds a training step: the median of the steps after the first two (warm-up);
* peak resident memory of the process (model, run, scoring);
* a scoring pass of the test set (:func:`zsg_lib.train.scoring.score_examples`, fresh
  adapters; the second of two passes);
* step-0 test losses: per-instance mean and max |4-bit − bf16| (fresh adapters add nothing,
  so this is the quantization alone);
* the mean test loss at each scored step and the train loss of each step, side by side;
* whether the 4-bit run repeated with the same seed gives the same records (``--repeat``).

There is no speed target: on a CPU bitsandbytes dequantizes each 4-bit weight before its
product. The runs are written under a temporary folder and deleted after.

    .venv/bin/python bench/bench_qlora.py [--steps 12] [--eval-every 4] [--repeat]

Measured (``--repeat``, 12 steps; a 2-core AVX512 CPU without AVX512-BF16, so bf16 is
emulated, shared with other jobs: load average ~6, so the seconds are high and rough):
bf16 / 4-bit 21.3 / 20.8 s a step, 198 / 364 s a scoring pass of 90, peak RSS 1.37 / 2.06 GB
(the 4-bit process also reads the fp32 weights it quantizes). Step-0 |4-bit − bf16| per
instance: mean 0.81, max 2.53 nats (mean loss 5.46): NF4 moves each of SmolLM2's weight
matrices by ~10% of its norm. Mean test loss at steps 0/4/8/12: bf16 5.46 4.42 3.51 3.14,
4-bit 6.16 4.88 3.81 3.47. The 4-bit run twice gave the same records.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PRECISIONS = {"bf16": {"precision": "bf16", "method": "lora"},
              "4bit": {"precision": "4bit", "method": "qlora"}}


def run_one(which: str, steps: int, eval_every: int, root: str, repeat: bool) -> dict:
    """One precision's run, scoring pass and figures (in this process)."""
    import dataclasses
    import random

    import torch

    from zsg_lib.profiles.params import load_profile
    from zsg_lib.study.experiment import draw_test_set, load_split
    from zsg_lib.train import hardware, train_run
    from zsg_lib.train.loop import _unwrap, _wrap
    from zsg_lib.train.models import load_model
    from zsg_lib.train.prompts import encode_many
    from zsg_lib.train.scoring import score_examples

    profile = load_profile("cpu-demo")
    cfg = dataclasses.replace(profile.run_config(0), **PRECISIONS[which], bf16_autocast=True,
                              max_steps=steps, eval_every=eval_every, generate_at=())
    cfg = hardware.resolve(cfg)
    split = load_split(profile)
    test = draw_test_set(profile, split, seed=0)
    ids = split.train.column("id").to_pylist()
    order = random.Random(0).sample(ids, steps * cfg.instances_per_step)
    train = split.train

    t0 = time.perf_counter()
    base, tok = load_model(cfg.model, cfg.resolved_precision, cfg.device)
    load_s = time.perf_counter() - t0
    test_ids = test.column("id").to_pylist()
    enc, _ = encode_many(tok, test_ids, test.column("messages").to_pylist(),
                         max_source_len=cfg.max_source_len, max_target_len=cfg.max_target_len,
                         template=cfg.template, system_prompt=cfg.system_prompt)
    model = _wrap(base, cfg)
    try:
        passes = []
        for _ in range(2):
            t0 = time.perf_counter()
            score_examples(model, enc, test_ids, tok.pad_token_id, cfg.eval_batch_size,
                           cfg.bf16_autocast, "cpu")
            passes.append(time.perf_counter() - t0)
    finally:
        _unwrap(model, cfg)

    rec = train_run(cfg, train, test, order, runs_root=Path(root) / which, progress=False)
    same = None
    if repeat:
        again = train_run(cfg, train, test, order, runs_root=Path(root) / f"{which}-again",
                          progress=False)
        same = bool(rec.log.drop(columns=["seconds"]).equals(again.log.drop(columns=["seconds"]))
                    and rec.scores.equals(again.scores))
    seconds = rec.log["seconds"].tolist()
    at0 = rec.scores[rec.scores["step"] == 0].set_index("id")["loss"]
    return {
        "precision": which, "params_precision": rec.params["precision"],
        "threads": torch.get_num_threads(), "load_seconds": load_s,
        "step_seconds_median": statistics.median(seconds[2:]), "n_timed_steps": len(seconds[2:]),
        "scoring_pass_seconds": passes[-1], "n_test": len(test_ids),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "step0_losses": at0.to_dict(),
        "test_curve": rec.scores.groupby("step")["loss"].mean().to_dict(),
        "train_curve": dict(zip(rec.log["step"], rec.log["train_loss"])),
        "same_records_twice": same,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--eval-every", type=int, default=4)
    ap.add_argument("--repeat", action="store_true", help="run the 4-bit run twice")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        out = run_one(args.child, args.steps, args.eval_every, args.root,
                      args.repeat and args.child == "4bit")
        print("RESULT " + json.dumps(out, default=str))
        return

    got = {}
    with tempfile.TemporaryDirectory(prefix="bench-qlora-") as root:
        for which in PRECISIONS:
            cmd = [sys.executable, __file__, "--child", which, "--root", root,
                   "--steps", str(args.steps), "--eval-every", str(args.eval_every)]
            cmd += ["--repeat"] if args.repeat else []
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{which} failed:\n{proc.stderr[-3000:]}")
            got[which] = json.loads(line[0][len("RESULT "):])

    b, q = got["bf16"], got["4bit"]
    print(f"embedded SmolLM2-135M, cpu-demo LoRA r=16, batch 4, {args.steps} steps, bf16 "
          f"autocast; {b['threads']} threads")
    print(f"4-bit base weights: {q['params_precision']}")
    print(f"{'':28}{'bf16 LoRA':>12}{'4-bit QLoRA':>14}")
    for key, label, fmt in [("step_seconds_median", "s / step (median)", "{:.3f}"),
                            ("scoring_pass_seconds", f"s / scoring pass ({b['n_test']})", "{:.2f}"),
                            ("peak_rss_gb", "peak RSS (GB)", "{:.2f}"),
                            ("load_seconds", "s to load the base", "{:.1f}")]:
        print(f"{label:28}{fmt.format(b[key]):>12}{fmt.format(q[key]):>14}")
    d = [abs(q["step0_losses"][i] - b["step0_losses"][i]) for i in b["step0_losses"]]
    print(f"step-0 test loss |4-bit - bf16| per instance: mean {statistics.mean(d):.4f}, "
          f"max {max(d):.4f} (n={len(d)}; mean loss bf16 "
          f"{statistics.mean(b['step0_losses'].values()):.4f})")
    print("mean test loss by step:")
    for s in b["test_curve"]:
        print(f"  step {s:>3}: bf16 {b['test_curve'][s]:.4f}   4-bit {q['test_curve'][s]:.4f}")
    print("train loss by step:")
    for s in b["train_curve"]:
        print(f"  step {s:>3}: bf16 {b['train_curve'][s]:.4f}   4-bit {q['train_curve'][s]:.4f}")
    if args.repeat:
        print(f"4-bit run twice, same seed, same records: {q['same_records_twice']}")


if __name__ == "__main__":
    main()
