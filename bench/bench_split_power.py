"""How many evaluation instances a query split needs (issue #29): interval widths by instances
per test task, from a built book's runs.

A query split (``split.query_per_task``) judges each comparison twice, on the query instances
(the ones the arrangements read) and on the evaluation instances (never read), each a part
of every test task's ``test_per_task`` scored instances. Splitting the scored set leaves the
runs' cost as it is but gives each verdict fewer instances per cluster (test task × seed).
This script measures what that costs in power on runs already on disk: for each comparison
finding of chapters 3–5 (:mod:`zsg_lib.analysis.findings`), the 95% cluster-bootstrap
interval width of every contrast with all scored instances and with ``k`` drawn at random per
test task × seed (``--draws`` seeded draws each; median and range).

    ZSG_HOME=<a built book's cache> nice -n 19 .venv/bin/python bench/bench_split_power.py
    ... bench/bench_split_power.py --profile params/niv2-sample.yaml --per-task 10 5 3

It reads runs back and never trains: run it after a build of the profile (its runs are found
by their ids; a missing one stops the script before any other work).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsg_lib.analysis import findings  # noqa: E402
from zsg_lib.profiles.params import load_profile  # noqa: E402
from zsg_lib.study import experiment as ex  # noqa: E402

#: the comparison findings and the profile key that lists each one's arrangements
FINDINGS = {"similarity": findings.similarity, "granularity": findings.granularity,
            "tma": findings.tma}


def subsample(scores: pd.DataFrame, k: int, rng: np.random.Generator) -> pd.DataFrame:
    """The rows of ``k`` test instances drawn at random per test task × seed (all of a task's
    instances where it has no more)."""
    inst = scores[["seed", "task", "id"]].drop_duplicates()
    inst = inst.assign(r=rng.random(len(inst)))
    keep = inst[inst.groupby(["seed", "task"])["r"].rank(method="first") <= k]
    return scores.merge(keep[["seed", "task", "id"]], on=["seed", "task", "id"])


def widths(profile, per_task: list[int], draws: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for key, judge_fn in FINDINGS.items():
        names = profile.arrangements(key)
        scores = ex.run_many(profile, names, progress=False)
        full = scores.groupby(["seed", "task"])["id"].nunique().max()
        for k in per_task:
            n = 1 if k >= full else draws
            for d in range(n):
                found = judge_fn(profile.judge, subsample(scores, k, rng))
                for c in found.contrasts:
                    rows.append({"finding": key, "contrast": c.label, "per_task": min(k, full),
                                 "draw": d, "estimate": c.estimate, "width": c.hi - c.lo})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu-demo")
    ap.add_argument("--per-task", type=int, nargs="+", default=[10, 7, 5, 3])
    ap.add_argument("--draws", type=int, default=8, help="seeded draws per size below the full set")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    profile = load_profile(args.profile)
    table = widths(profile, args.per_task, args.draws, args.seed)
    out = (table.groupby(["finding", "contrast", "per_task"])
           .agg(width=("width", "median"), width_lo=("width", "min"),
                width_hi=("width", "max"), estimate=("estimate", "median"))
           .reset_index().sort_values(["finding", "contrast", "per_task"],
                                      ascending=[True, True, False]))
    full = out.groupby(["finding", "contrast"])["width"].transform("first")
    out["width / all"] = out["width"] / full
    pd.set_option("display.width", 200)
    print(f"profile {profile.name!r}: 95% interval width of each contrast by test instances "
          f"per task × seed (median of {args.draws} draws; range)")
    print(out.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
