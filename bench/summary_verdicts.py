"""The summary page's verdicts as text, for a closing note (issues #26, #29): each finding's
verdict on the query instances (all instances without a split) and on the evaluation
instances, with the contrasts each rests on.

It collects the findings as the summary page does
(:func:`zsg_lib.study.chapter_data.collect_findings`), so on a built book it reads every run
back; a run not on disk is trained (and takes its time).

    ZSG_HOME=<a built book's cache> nice -n 19 .venv/bin/python bench/summary_verdicts.py \\
        --profile params/niv2-sample.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsg_lib.profiles.params import load_profile  # noqa: E402
from zsg_lib.study import chapter_data  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu-demo")
    args = ap.parse_args()

    profile = load_profile(args.profile)
    found, _ = chapter_data.collect_findings(profile)
    for f in found:
        ev = f.evaluation
        print(f"## {f.section}: {f.status}"
              + (f" | evaluation instances: {ev.status}" if ev is not None else ""))
        print(f"   {f.measured}")
        for c in f.contrasts:
            print(f"   query/all  {c.label}: {c.shown()} [{c.status}]")
        if ev is not None:
            for c in ev.contrasts:
                print(f"   evaluation {c.label}: {c.shown()} [{c.status}]")


if __name__ == "__main__":
    main()
