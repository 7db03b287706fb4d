"""Chapter 8's results on a profile, as text for a closing note (issue #28, item 5): the
probes' cost per seed, the design table (every design − random on its target, on the other
test instances and their difference, with 95% cluster-bootstrap intervals over target task ×
seed), the verdict, the dose-response inside the random batches and the ranking of the
similarities beside chapter 7's observation.

It asks the same library functions the chapter does (:mod:`zsg_lib.study.probes`), so a
profile whose book was built reads every probe and run back and trains nothing; a missing
probe or run is computed (and takes its time).

    ZSG_HOME=<a built book's cache> nice -n 19 .venv/bin/python bench/probe_findings.py \\
        --profile params/niv2-sample.yaml
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsg_lib.profiles.params import load_profile  # noqa: E402
from zsg_lib.study import probes  # noqa: E402


def show(title: str, frame: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.max_colwidth", 60):
        print(f"\n## {title}\n{frame.round(4).to_string(index=False)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu-demo")
    args = ap.parse_args()

    profile = load_profile(args.profile)
    t0 = time.perf_counter()
    results = probes.probe_runs(profile, progress=True)
    print(f"{profile.name}: {len(results.batches)} probes over seeds "
          f"{sorted(results.frame['seed'].unique().tolist())}, "
          f"{results.frame['target_task'].nunique()} target tasks "
          f"({time.perf_counter() - t0:.0f} s to run or read back)")
    cost = probes.cost_table(results)
    show("cost per seed (a probe's median seconds, from its records)", cost)
    sets = results.sets
    per_probe = sets["seconds_restore"] + sets["seconds_steps"] + sets["seconds_scoring"]
    print(f"probes' own time (each set's median probe × its probes, summed): "
          f"{(sets['probes'] * per_probe).sum():.0f} s; restore's share of a probe "
          f"(median over sets): {(sets['seconds_restore'] / per_probe).median():.1%}")

    table = probes.design_table(results)
    show("design table (Δ test loss, design − random; 95% cluster-bootstrap intervals)",
         table.drop(columns=[c for c in ("why",) if c in table]))
    found = probes.finding(table)
    print(f"\nverdict: {found.status}: {found.measured}")

    dose = probes.dose_response(profile, results)
    show("dose-response inside the random batches", dose)
    ranks, sentence = probes.ranking(profile, dose)
    if ranks is not None:
        show("the experiment's ranking beside chapter 7's observation",
             ranks.drop(columns=[c for c in ranks if "_lo_" in c or "_hi_" in c]))
    print(f"\n{sentence}")


if __name__ == "__main__":
    main()
