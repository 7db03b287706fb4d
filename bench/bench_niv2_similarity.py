"""The similarity comparison (NFT / RT / FFT, chapter 3) on the real NIV2 sample.

Runs ``params/niv2-sample.yaml`` (every arm branching from a shared warm-up, three seeds)
and prints the verdict table: per pair of arms, the three views with their 95%
cluster-bootstrap intervals, the seed-level paired t and the verdict, then the per-task
differences. Needs ``../shared/data/niv2-sample`` beside the repository. Minutes on a CPU::

    .venv/bin/python bench/bench_niv2_similarity.py [--seeds 0 1 2] [--steps 24]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from zsg_lib.analysis import findings
from zsg_lib.study import chapter_data, checks, experiment as ex


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--steps", type=int, default=None, help="train.max_steps override")
    args = ap.parse_args()
    overrides = {"train.max_steps": args.steps} if args.steps else None
    P = checks.setup("niv2-sample", "03_similarity", overrides, args.seeds)
    print(ex.describe(P).to_string(index=False))
    t0 = time.perf_counter()
    scores = ex.run_many(P, P.arrangements("similarity"), progress=True)
    found = findings.similarity(P.judge, scores)
    with pd.option_context("display.max_colwidth", None, "display.width", 200):
        print(f"\n{found.section}: {found.status}\n{found.measured}\n")
        print(found.details.to_string(index=False))
        for c in found.comparisons:
            print(f"\nper test task, {c.a} − {c.b}:")
            print(chapter_data.task_differences(P, c).round(3).to_string(index=False))
    print(f"\n{time.perf_counter() - t0:.0f} s (runs already on disk are read back)")


if __name__ == "__main__":
    main()
