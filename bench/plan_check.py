"""``zsg plan``'s time against real runs: each phase's measured seconds beside the plan's.

Trains the runs of a profile, one chapter-1 run per seed (from step 0, scoring and
generating, at the profile's own length unless ``--steps`` shortens it: a short run is mostly
start-up and overstates each phase), then prints per phase (training steps, scoring passes, generation)
the seconds the records hold, the seconds the plan estimates from the GEMM rates measured here
at :data:`zsg_lib.study.plan_report.CPU_SHARE`, and the share of each rate (training, scoring,
decoding) that would have matched.

    ZSG_HOME=$(mktemp -d) .venv/bin/python bench/plan_check.py [--profile cpu-demo] [--steps N] [--seeds 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsg_lib.profiles.params import load_profile  # noqa: E402
from zsg_lib.study import experiment as ex, plan_report as pr  # noqa: E402
from zsg_lib.study.chapter_runs import Job  # noqa: E402
from zsg_lib.study.plan import DataCosts, Plan, Tally  # noqa: E402
from zsg_lib.train import cost, shapes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="cpu-demo")
    ap.add_argument("--steps", type=int, default=None, help="default: the profile's own")
    ap.add_argument("--seeds", default="0")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    short = {"train.max_steps": a.steps, "train.generate_at": [0, a.steps]} if a.steps else {}
    profile = load_profile(a.profile, {"seeds": seeds, "warmup.steps": 0, **short})
    config, src = shapes.model_config(profile.model)
    shape = shapes.shape_of(config, profile.train.target_modules, src)
    costs = DataCosts(profile, shapes.load_tokenizer(profile.model))
    tally, runs, seconds = Tally(), {}, {"train": 0.0, "score": 0.0, "generate": 0.0}
    for seed in seeds:
        job = Job("arrangement", "random", seed, branch=False, generate=True)
        rec = ex.run(profile, "random", seed, generate=True, branch=False)
        if rec.reused:
            sys.exit(f"{rec.path}: read back, not trained: its seconds are another process's")
        planned = costs.run(job)
        runs[planned.key] = planned
        tally.add(planned)
        seconds["train"] += rec.log["seconds"].sum()
        seconds["score"] += rec.summary["scoring_seconds_this_process"]
        seconds["generate"] += rec.summary["generation_seconds_this_process"]
    tally.used = tally.runs
    p = Plan(profile, shape, {}, runs, tally, True)
    here = pr.here_rates(p)
    f = pr.flops(p, tally)
    # here's rates hold CPU_SHARE already: est is the plan's own estimate
    est = {"train": f["train"] / here.train, "score": f["score"] / here.score,
           "generate": f["prefill"] / here.score + f["decode"] / here.decode}
    # the share of each raw rate that would have matched: generation's prefill is charged at
    # scoring's rate, so decode's share is what is left of generation's seconds after it
    fit = {k: pr.CPU_SHARE[k] * est[k] / seconds[k] for k in ("train", "score")}
    prefill_s = f["prefill"] / (here.score / pr.CPU_SHARE["score"] * fit["score"])
    decode_raw = here.decode / pr.CPU_SHARE["decode"]
    fit["generate"] = f["decode"] / decode_raw / max(seconds["generate"] - prefill_s, 1e-9)
    print(here.note)
    for phase in seconds:
        print(f"{phase:>9}: measured {seconds[phase]:7.1f} s, plan {est[phase]:7.1f} s "
              f"({est[phase] / seconds[phase] - 1:+.0%}); share that fits "
              f"{fit[phase]:.2f} ({'decode' if phase == 'generate' else phase})")
    total_m, total_e = sum(seconds.values()), sum(est.values())
    print(f"all: measured {cost.human_seconds(total_m)}, plan {cost.human_seconds(total_e)} "
          f"({total_e / total_m - 1:+.0%})")

if __name__ == "__main__":
    main()
