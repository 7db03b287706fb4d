"""What the book's runs computed, read from their records, and how long that takes at this
CPU's measured peak: the floor under ``make book``'s training time on this machine.

For each finished run under ``--runs`` (default: the book's own cache, ``.cache/zsg/runs``):
its training steps, scoring passes and greedy generations (at the steps whose rows hold
predictions), in the project's one FLOP model (:mod:`zsg_lib.train.cost`: ``4 N_body`` per
trained token and ``4 N_head`` per response position for a LoRA step on a frozen base, plus
the adapters' own; ``2 N`` per scored or generated token, generations counted at the run's
``max_new_tokens``: an upper bound), the model's shapes read from its config
(:mod:`zsg_lib.train.shapes`). The test set is the profile's sample for the
run's seed. Compared with the runs' own seconds and with a square GEMM timed here
(``torch.mm``, 2048², best of 8) in the precision the runs computed in (bf16 where they ran
under bf16 autocast, else fp32).

    .venv/bin/python bench/book_flops.py [--runs .cache/zsg/runs] [--profile cpu-demo]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_scoring import encode_table  # noqa: E402

from zsg_lib.profiles.params import load_profile  # noqa: E402
from zsg_lib.study import experiment as ex  # noqa: E402
from zsg_lib.train import cost, shapes  # noqa: E402
from zsg_lib.train.gemm_rate import square_gflops  # noqa: E402


def test_tokens(profile, split, tok, seed: int) -> tuple[int, int, int]:
    """The seed's test set: instances, prompt+response tokens, response tokens."""
    enc = encode_table(tok, ex.draw_test_set(profile, split, seed), profile.train)
    return (len(enc), sum(len(e.input_ids) for e in enc.values()),
            sum(e.n_target for e in enc.values()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default=".cache/zsg/runs")
    ap.add_argument("--profile", default="cpu-demo")
    a = ap.parse_args()
    profile = load_profile(a.profile)
    config, src = shapes.model_config(profile.model)
    shape = shapes.shape_of(config, profile.train.target_modules, src)
    split, tok = ex.load_split(profile), shapes.load_tokenizer(profile.model)
    tests = {}
    rows = []
    precisions = set()
    for done in sorted(Path(a.runs).glob("*/DONE")):
        run = done.parent
        params = json.loads((run / "params.json").read_text())
        cfg = params["config"]
        precisions.add("bf16" if cfg.get("bf16_autocast") is True else "fp32")
        seed = cfg["seed"]
        if seed not in tests:
            tests[seed] = test_tokens(profile, split, tok, seed)
        n_test, tok_test, resp_test = tests[seed]
        log = pd.read_parquet(run / "log.parquet")
        scores = (pd.read_parquet(run / "scores.parquet", columns=["step", "prediction"])
                  if (run / "scores.parquet").exists() else pd.DataFrame(columns=["step"]))
        # a branch point's scores are copied from the run it branched from, not computed
        copied = {params["data"]["branch"]["step"]} if params["data"].get("branch") else set()
        steps_scored = set(scores["step"]) - copied
        passes = len(steps_scored)
        generated = scores.loc[scores["prediction"].notna(), "step"].nunique() \
            if "prediction" in scores else 0
        train = cost.train_flops(shape, log["tokens"].sum(), log["response_tokens"].sum(),
                                 cfg["lora_r"], cfg["method"])
        score = passes * cost.forward_flops(shape, tok_test, resp_test)
        gen = generated * cost.generate_flops(shape, tok_test - resp_test,
                                              n_test * cfg["max_new_tokens"])
        done_info = json.loads(done.read_text() or "{}")
        rows.append({"run": params["name"], "steps": len(log), "train_s": log["seconds"].sum(),
                     "score_s": done_info.get("scoring_seconds_this_process", float("nan")),
                     "generate_s": done_info.get("generation_seconds_this_process",
                                                 float("nan")),
                     "train_tflop": train / 1e12, "score_passes": passes,
                     "score_tflop": score / 1e12, "generations": generated,
                     "generate_tflop": gen / 1e12})
    table = pd.DataFrame(rows)
    # mixed records are counted at the faster peak: a floor stays a floor
    precision = "bf16" if "bf16" in precisions else "fp32"
    peak = square_gflops({"bf16": "bfloat16", "fp32": "float32"}[precision])
    total = table[["train_tflop", "score_tflop", "generate_tflop"]].sum()
    print(table.groupby("run").size().rename("runs").to_string())
    print(f"{len(table)} runs, {table['steps'].sum()} training steps; test set "
          f"{tests[min(tests)][0]} instances, {tests[min(tests)][1]} tokens (seed {min(tests)})")
    for part, tflop in total.items():
        print(f"{part:>15}: {tflop:7.1f} TFLOP = {tflop * 1e3 / peak / 60:5.1f} min at the "
              f"{precision} peak")
    print(f"all: {total.sum():.1f} TFLOP = {total.sum() * 1e3 / peak / 60:.1f} min at the "
          f"{precision} peak of {peak:.0f} GFLOP/s ({torch.get_num_threads()} threads); the "
          f"training steps took {table['train_s'].sum() / 60:.1f} min, "
          f"{total['train_tflop'] * 1e3 / table['train_s'].sum():.0f} GFLOP/s")
    for part, secs in (("score", "score_s"), ("generate", "generate_s")):
        if table[secs].notna().all():  # records from before the summary kept these: nan
            print(f"the {part} passes took {table[secs].sum() / 60:.1f} min, "
                  f"{total[part + '_tflop'] * 1e3 / table[secs].sum():.0f} GFLOP/s")


if __name__ == "__main__":
    main()
