"""How the scoring and the generation passes' time depends on their batch size.

The book scores its 90 test instances every 8 steps and generates greedy answers three times
in each of chapter 1's runs; on a CPU a batch of few rows multiplies small matrices well below
the machine's peak, and a greedy decode step of 16 rows reads all weights for 16 tokens. This
times :func:`zsg_lib.train.scoring.score_examples` and
:func:`~zsg_lib.train.generation.generate_greedy` on the profile's own test set (as
bench_scoring: the embedded model with the profile's LoRA adapters, random weights), at each
batch size, interleaved, and checks every batch size gives the same losses (1e-4) and the same
answers as the first.

    .venv/bin/python bench/bench_eval_batch.py [--data book|niv2] [--sizes 16,32,64,128]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_scoring import encode_table, test_set, with_adapters  # noqa: E402

from zsg_lib.profiles.params import load_profile  # noqa: E402
from zsg_lib.train.generation import generate_greedy  # noqa: E402
from zsg_lib.train.models import load_model  # noqa: E402
from zsg_lib.train.scoring import score_examples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=["book", "niv2"], default="book")
    ap.add_argument("--sizes", default="16,32,64,128")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-generate", action="store_true")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    profile = load_profile("niv2-sample" if a.data == "niv2" else "cpu-demo")
    model, tok = load_model(None, "fp32")
    model = with_adapters(model, profile)
    test = test_set(profile, a.data, 0)
    ids = test.column("id").to_pylist()
    enc = encode_table(tok, test, profile.train)
    new_tokens = profile.run_config(seed=0).max_new_tokens
    print(f"--data {a.data}: {len(ids)} instances, "
          f"{sum(len(e.input_ids) for e in enc.values())} tokens; generation up to "
          f"{new_tokens} new tokens; torch threads {torch.get_num_threads()}", flush=True)
    score_examples(model, enc, ids, tok.pad_token_id, sizes[0])  # warm the kernels
    t_score = {b: [] for b in sizes}
    t_gen = {b: [] for b in sizes}
    losses, answers = {}, {}
    for _ in range(a.repeats):  # interleaved: machine load hits every size alike
        for b in sizes:
            t0 = time.perf_counter()
            rows = score_examples(model, enc, ids, tok.pad_token_id, b)
            t_score[b].append(time.perf_counter() - t0)
            losses[b] = [r["loss"] for r in rows]
            if not a.no_generate:
                t0 = time.perf_counter()
                answers[b] = generate_greedy(model, tok, enc, ids, new_tokens, b)
                t_gen[b].append(time.perf_counter() - t0)
    first = sizes[0]
    for b in sizes:
        diff = max(abs(x - y) for x, y in zip(losses[b], losses[first]))
        line = (f"batch {b:>4}: scoring {min(t_score[b]):6.2f} s "
                f"({min(t_score[first]) / min(t_score[b]):.2f}x of batch "
                f"{first}), max |loss diff| {diff:.1e}")
        if answers:
            same = sum(answers[b][i] == answers[first][i] for i in ids)
            line += (f"; generation {min(t_gen[b]):6.2f} s "
                     f"({min(t_gen[first]) / min(t_gen[b]):.2f}x), {same}/{len(ids)} answers "
                     f"as batch {first}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
