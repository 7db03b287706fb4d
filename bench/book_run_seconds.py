"""What a profile's book costs in training, from its run records: the wall seconds each
distinct run took (its ``DONE`` record), summed per chapter in reading order, each run counted
in the first chapter that asks for it.

A build that reads runs back (from an earlier build, or runs another profile shares) times
only what it trained; this sums every run's own time, wherever it was trained, so a first
build's total can be stated from a later one: the build's time, plus the records of the runs
it read back. It reads records and never trains (a run not on disk stops it).

    ZSG_HOME=<a built book's cache> nice -n 19 .venv/bin/python bench/book_run_seconds.py
    ... bench/book_run_seconds.py --profile params/niv2-sample.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsg_lib.profiles.chapters import CHAPTERS  # noqa: E402
from zsg_lib.profiles.params import load_profile  # noqa: E402
from zsg_lib.study import experiment as ex  # noqa: E402
from zsg_lib.study.chapter_runs import Job, chapter_jobs  # noqa: E402
from zsg_lib.train import records  # noqa: E402


def record_of(profile, job: Job):
    """The run a chapter's job names, read back through the chapters' own calls."""
    if job.kind == "warmup":
        return ex.branch_point(profile, job.seed)
    if job.kind == "window":
        return ex.run_window(profile, job.start, job.seed)
    return ex.run(profile, job.name, job.seed, generate=job.generate, branch=job.branch)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu-demo")
    args = ap.parse_args(argv)
    profile = load_profile(args.profile)
    root = ex.runs_root(profile)
    seen: set[str] = set()
    total = 0.0
    for chapter in CHAPTERS:
        seconds, runs = 0.0, 0
        for job in chapter_jobs(profile, chapter):
            rec = record_of(profile, job)
            if rec.run_id in seen:
                continue
            seen.add(rec.run_id)
            done = json.loads((Path(rec.path) / records.DONE).read_text())
            seconds += done["wall_seconds_this_process"]
            runs += 1
        total += seconds
        print(f"{chapter:26s} {runs:3d} runs {seconds:8.0f} s")
    print(f"{'all runs':26s} {len(seen):3d} runs {total:8.0f} s = {total / 60:.1f} min "
          f"(records under {root})")


if __name__ == "__main__":
    main()
