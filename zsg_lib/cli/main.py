"""The ``zsg`` command: build the book, run chapters and sweeps, write the demo data.

::

    zsg book [--profile cpu-demo] [--no-execute]   # execute every chapter, build _build/html
    zsg batch 03_similarity [--profile tiny] [--set train.max_steps=4] [--out runs/batch]
    zsg batch params/sweeps/similarity-seeds.yaml [--out runs/sweeps/similarity-seeds]
              [--jobs N] [--devices 0,1] [--scheduler local|submitit-local|slurm]
    zsg demo-data [--out DIR]                      # the embedded demo suite
    zsg plan [--profile cpu-demo] [--without-data] # runs, tokens, FLOPs, memory, time

Bad input (an unknown profile key, a missing file) is one line on stderr and exit code 2,
before any work; a chapter that fails is exit code 1.

>>> parse_set(["train.max_steps=4", "seeds=[0, 1]", "dataset.path=/d"])
{'train.max_steps': 4, 'seeds': [0, 1], 'dataset.path': '/d'}
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ParamsError, ZsgError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs to overrides; values are read as YAML (numbers, lists, ...)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParamsError(f"--set {item!r}: expected KEY=VALUE, e.g. train.max_steps=4")
        out[key.strip()] = yaml.safe_load(value)
    return out


def parse_devices(text: str | None) -> list[str] | None:
    """``--devices 0,1`` -> ``['0', '1']`` (``None`` when the flag is absent).

    >>> parse_devices("0, 2"), parse_devices(None)
    (['0', '2'], None)
    """
    if text is None:
        return None
    devices = [d.strip() for d in text.split(",")]
    if not all(devices):
        raise ParamsError(f"--devices {text!r}: expected device ids separated by commas, e.g. 0,1")
    return devices


def book_root() -> Path:
    """The folder with ``_config.yml``: here, else this checkout's root (editable install)."""
    here = Path.cwd()
    if (here / "_config.yml").exists():
        return here
    from ..paths import REPO_ROOT

    if (REPO_ROOT / "_config.yml").exists():
        return REPO_ROOT
    raise ParamsError(f"{here}: no _config.yml here; run `zsg book` in the repository root")


def cmd_book(args: argparse.Namespace) -> int:
    from ..profiles.chapters import CHAPTERS
    from ..profiles.params import chapter_refusal, check_runnable, default_profile, load_profile
    from ..site.build import build_site
    from ..study.checks import check_data

    profile = args.profile or default_profile()
    loaded = load_profile(profile)  # a bad profile fails here, not in the middle of the build
    check_runnable(loaded)
    runnable = []
    for chapter in CHAPTERS:
        reason = chapter_refusal(loaded, chapter)
        if reason:  # built as a page saying why; the summary marks it not measured
            print(f"zsg book: {chapter} does not run with this profile, its page says why: "
                  f"{reason}", flush=True)
        else:
            runnable.append(chapter)
    if not args.no_execute:
        # each chapter checks its data in its first cell; checking them all here keeps the
        # last chapter's refusal from coming after the first chapters' runs have trained
        print(f"zsg book: checking the data of {len(runnable)} chapters before any run",
              flush=True)
        for chapter in runnable:
            check_data(loaded, chapter)
    print(f"zsg book: profile {profile!r}; executing chapters (cached when unchanged), "
          "then building the site", flush=True)
    html = build_site(book_root(), profile=profile, output=args.out, execute=not args.no_execute)
    print(f"zsg book: open {html / 'index.html'}")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from ..profiles.params import default_profile
    from . import batch

    target = Path(args.target)
    overrides = parse_set(args.set or [])
    devices = parse_devices(args.devices)
    if target.suffix in {".yaml", ".yml"}:
        if args.profile or overrides:
            raise ParamsError(f"{target}: --profile/--set apply to a chapter; "
                              "a sweep sets them in its file (profile:, overrides:)")
        out_dir = Path(args.out) if args.out else batch.default_sweep_dir(target)
        table = batch.run_sweep(target, out_dir, jobs=args.jobs, devices=devices,
                                scheduler=args.scheduler)
        print(f"zsg batch: {batch.summary_line(table)}; records in {out_dir / batch.STATUS_FILE}")
        failed = table[table["status"] == "failed"]
        for _, row in failed.iterrows():
            print(f"  failed: {row['name']}: {row['error']}", file=sys.stderr)
        return EXIT_FAILED if len(failed) else 0
    if args.jobs != 1 or devices is not None or args.scheduler != "local":
        raise ParamsError(f"{target}: --jobs/--devices/--scheduler apply to a sweep file; "
                          "one chapter runs here, alone")
    batch.check_run(args.target, args.profile, overrides)
    path = batch.resolve_chapter(args.target)
    params: dict[str, Any] = {"overrides": overrides}
    if args.profile:
        params["profile"] = args.profile
    out_dir = Path(args.out or "runs/batch")
    spec = {"chapter": path.stem, "profile": args.profile, "overrides": overrides}
    print(f"zsg batch: {path.stem} with profile "
          f"{args.profile or default_profile()!r}", flush=True)
    start = time.monotonic()
    with batch.reporting([spec], out_dir, lambda text: print(text, flush=True)):
        # the per-run lines say what the chapter is doing; papermill's cell counter would not
        out = batch.run_chapter(path, params, out_dir, progress=False)
    print(f"zsg batch: {path.name} done in {time.monotonic() - start:.0f} s -> {out}")
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from ..data.demo import demo_dataset  # lazy: the data layer pulls in Babel, num2words, ...

    print("zsg demo-data: generating (first time: a few seconds)...", flush=True)
    demo = demo_dataset(cache_dir=args.out, seed=args.seed)
    print(f"zsg demo-data: {demo.table.num_rows} instances, {len(demo.train_tasks)} training "
          f"and {len(demo.test_tasks)} test tasks -> {demo.path}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from ..profiles.params import default_profile
    from ..study.plan_report import run_plan

    print(run_plan(args.profile or default_profile(),
                   parse_set(args.set or []), without_data=args.without_data,
                   tokens_per_instance=args.tokens_per_instance, model_config=args.model_config,
                   params=args.params, measure=not args.no_measure, mfu=args.mfu))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zsg", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("book", help="execute every chapter and build the site (_build/html)")
    p.add_argument("--profile", help="parameter profile (params/NAME.yaml or a path; "
                   "default $ZSG_PROFILE or cpu-demo)")
    p.add_argument("--no-execute", action="store_true",
                   help="build the pages without running them (no outputs): a quick look "
                   "at text and layout")
    p.add_argument("--out", help="folder that receives _build/html (default: here)")
    p.set_defaults(func=cmd_book)

    p = sub.add_parser("batch", help="run a chapter or a sweep file through papermill")
    p.add_argument("target", help="chapter name (03_similarity), notebook path, or sweep .yaml")
    p.add_argument("--profile", help="parameter profile for a chapter")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a profile key for a chapter (repeatable)")
    p.add_argument("--out", help="output folder (default runs/batch or runs/sweeps/<sweep>)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="sweep members run at once (default 1); on a GPU machine each worker "
                   "is pinned to one visible GPU")
    p.add_argument("--devices", metavar="IDS",
                   help="GPUs for the workers, one each (e.g. 0,1); --jobs at most their number")
    from .workers import SCHEDULERS

    p.add_argument("--scheduler", default="local", choices=SCHEDULERS,
                   help="local: worker processes here (default); submitit-local, slurm: "
                   "hand members to submitit (pip install 'zsg[cluster]')")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("demo-data", help="generate the embedded demo task suite")
    p.add_argument("--out", help="folder for the suite (default: $ZSG_HOME/demo)")
    p.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser("plan", help="what the book will cost with a profile: runs, steps, "
                       "tokens, FLOPs, memory, time (here and on an H100), before any run")
    p.add_argument("--profile", help="parameter profile (default $ZSG_PROFILE or cpu-demo)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a profile key (repeatable)")
    p.add_argument("--without-data", action="store_true",
                   help="plan from the profile alone (no dataset at hand): upper bounds")
    p.add_argument("--tokens-per-instance", type=int, metavar="N",
                   help="with --without-data: assume N tokens an instance instead of the "
                   "bound max_source_len + max_target_len")
    p.add_argument("--model-config", metavar="PATH",
                   help="the model's config.json (or its folder) when the profile's model is "
                   "a hub id not available here")
    p.add_argument("--params", type=int, metavar="N",
                   help="the model's parameter count, when no config is at hand (FLOPs and "
                   "weights only)")
    p.add_argument("--mfu", type=float, default=None,
                   help="GPU utilisation to assume (default 0.35)")
    p.add_argument("--no-measure", action="store_true",
                   help="skip timing this machine's matrix products")
    p.set_defaults(func=cmd_plan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zsg`` console script."""
    from ..site.build import SiteBuildError
    from .batch import RunFailed

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ZsgError as exc:  # bad input: one line, no traceback
        print(f"zsg: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (RunFailed, SiteBuildError) as exc:
        print(f"zsg: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("zsg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
