"""What probes cost and what they buy (issue #28), on a profile's real model and data.

From one seed's shared warm-up (trained, or read back, as the book does), draw the probes'
batches (:func:`zsg_lib.arrange.probe_designs.design_batches`) and run them
(:func:`zsg_lib.train.probes.run_probes`, into ``bench/out/probes`` unless ``--probes-root``),
then report:

* **cost**: per probe, the restore, the step(s) and the scoring pass, as the probe set records
  them (measured side by side in one loop: a plain training step + scoring pass is the same
  step and pass without the restore); the probe against the plain step + scoring, the
  restore's share; the probe set's fixed cost (model load, encoding, compiling, the state's
  own scoring pass); the first probe (which compiles the layers) is left out of the medians;
* **power**: the design table (:func:`zsg_lib.analysis.probes.design_table`) of what ran, and
  the 95% interval width of the main contrast (``--main``, default nearest-gradient −
  random on the target) projected for other budgets from the observed variance: between
  clusters (target task × seed) and between replicates;
* **budget**: the probes a build can add within ``--minutes`` (default 5) on this machine at
  the measured rates, for the profile's seeds and test tasks.

    nice -n 19 .venv/bin/python bench/bench_probes.py                      # cpu-demo, seed 0
    nice -n 19 .venv/bin/python bench/bench_probes.py --designs nearest-embedding random \\
        --replicates 2 --random 4                                          # no gradient pass

Numbers from a loaded machine are slow and noisy: read the ratios, measured side by side.
Rerunning reads the probes back (delete the probe folder to time them again).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsg_lib.analysis import probes as an  # noqa: E402
from zsg_lib.arrange.probe_designs import DESIGNS, design_batches  # noqa: E402
from zsg_lib.profiles.params import load_profile  # noqa: E402
from zsg_lib.study import experiment as ex, probes as study_probes  # noqa: E402
from zsg_lib.train.hardware import resolve  # noqa: E402
from zsg_lib.train.probes import run_probes  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
Z = 1.959964


def projected_width(values: np.ndarray, within: float, observed_replicates: int,
                    clusters: int, replicates: int) -> float:
    """The 95% interval width (normal approximation) of the mean of ``clusters`` cluster
    values with ``replicates`` probes a design × target: the observed cluster values' variance
    split into the part replicates average away (``within``: one replicate's variance around
    its cluster's mean) and the rest (targets, seeds, the random batches' own noise)."""
    total = float(np.var(values, ddof=1)) if len(values) > 1 else math.nan
    between = max(total - within / observed_replicates, 0.0)
    return 2 * Z * math.sqrt((between + within / replicates) / clusters)


def time_restores(cfg, prep, warm, n: int) -> None:
    """Seconds of each of ``n`` restores of the warm-up state on the real model (the part of
    a probe a plain step does not have), beside the warm-up's own step and scoring seconds."""
    import torch

    from zsg_lib.train import probes
    from zsg_lib.train.loop import Branch, Loop
    from zsg_lib.train.models import load_model
    from zsg_lib.train.prompts import encode_many

    cfg = probes.probe_config(resolve(cfg), 1)
    base, tok = load_model(cfg.model, cfg.resolved_precision, cfg.device)
    ids = prep.test.column("id").to_pylist()[:4]
    enc, _ = encode_many(tok, ids, prep.test.column("messages").to_pylist()[:4],
                         max_source_len=cfg.max_source_len, max_target_len=cfg.max_target_len,
                         template=cfg.template, system_prompt=cfg.system_prompt)
    by_id = {i: (None, None) for i in ids}
    start = probes._start(cfg, warm)
    loop = Loop(cfg, base, tok, torch.device("cpu"), OUT, ids, enc, enc, by_id, False, None,
                Branch(start.step, start.state, None, warm.path))
    with probes.Prober(loop, start.state, warm.path) as prober:
        seconds = []
        for _ in range(n):
            t0 = time.perf_counter()
            prober.restore()
            seconds.append(time.perf_counter() - t0)
    n_values = sum(t.numel() for t in start.state["trainable"].values())
    print(f"restore: median {np.median(seconds):.3f} s over {n} ({n_values:,} trainable values "
          f"+ AdamW moments)")
    log = warm.log
    print(f"warm-up: step seconds median {log['seconds'].median():.2f} (after the first "
          f"{log['seconds'].iloc[1:].median():.2f}); scoring passes "
          f"{warm.summary['scoring_seconds_this_process']:.1f} s over 2 (step 0 compiles)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu-demo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=DESIGNS)
    ap.add_argument("--targets", type=int, default=None, help="first N test tasks (default all)")
    ap.add_argument("--replicates", type=int, default=2)
    ap.add_argument("--random", type=int, default=4, help="random batches (every target's)")
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--main", default="nearest-gradient")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--probes-root", type=Path, default=OUT / "probes")
    ap.add_argument("--restore-only", type=int, default=0, metavar="N",
                    help="time N restores of the warm-up state alone (no steps, no scoring)")
    args = ap.parse_args()

    profile = load_profile(args.profile)
    seed = args.seed
    t0 = time.perf_counter()
    prep = ex.prepare(profile, seed)
    warm = ex.branch_point(profile, seed)
    t_prep = time.perf_counter() - t0
    if warm is None:
        raise SystemExit(f"{profile.name}: no warm-up (warmup.steps: 0) to probe from")
    cfg = profile.run_config(seed, start="branch")
    if args.restore_only:
        time_restores(cfg, prep, warm, args.restore_only)
        return
    relatives = study_probes.relatives(profile)  # the demo's families or NIV2's categories
    designs = [d for d in args.designs if d != "same-label" or relatives is not None]
    gradients, t_grad = None, 0.0
    if "nearest-gradient" in designs:
        t0 = time.perf_counter()
        gradients = (ex.gradient_features(profile, seed, "train"),
                     ex.gradient_features(profile, seed, "query"))
        t_grad = time.perf_counter() - t0
    # as the chapter: nearness to a target is to its query instances (all its test instances
    # without a split); the probes score the whole test set
    query_tasks = prep.query.column("task").to_pylist()
    targets = list(dict.fromkeys(query_tasks))[: args.targets]
    batches = design_batches(
        prep.train.column("id").to_pylist(), prep.train.column("task").to_pylist(),
        prep.query.column("id").to_pylist(), query_tasks, cfg.instances_per_step,
        designs=designs, targets=targets, embeddings=(prep.train_emb, prep.query_emb),
        gradients=gradients, relatives=relatives, candidates=args.candidates,
        replicates=args.replicates, random_replicates=args.random, seed=seed, on_short="skip")
    print(f"{profile.name} seed {seed}: {len(batches)} probes "
          f"({batches.groupby('design').size().to_dict()}) from warm-up {warm.run_id} "
          f"(step {warm.summary['steps']}), {prep.test.num_rows} test instances; "
          f"bf16_autocast {resolve(cfg).bf16_autocast}")
    print(f"  data + warm-up: {t_prep:.1f} s; gradient features: {t_grad:.1f} s")

    t0 = time.perf_counter()
    done = run_probes(cfg, prep.train, prep.test, warm, batches["ids"].tolist(),
                      probes_root=args.probes_root,
                      on_probe=lambda n, total: print(f"  probe {n}/{total}", flush=True))
    wall = time.perf_counter() - t0

    # --- cost
    per = done.deltas.groupby("probe")[["seconds_restore", "seconds_steps",
                                        "seconds_scoring"]].first()
    timed = per.iloc[1:] if len(per) > 2 else per  # the first probe compiles
    med = timed.median()
    plain = med["seconds_steps"] + med["seconds_scoring"]
    probe = plain + med["seconds_restore"]
    fixed = wall - per.sum().sum() if done.computed else math.nan
    print("\ncost (medians over the probes after the first; seconds on this machine, noisy):")
    print(f"  restore {med['seconds_restore']:.3f}  step {med['seconds_steps']:.2f}  "
          f"scoring pass {med['seconds_scoring']:.2f}")
    print(f"  probe (restore + step + scoring) / plain (step + scoring) = {probe / plain:.3f}; "
          f"restore's share of a probe {med['seconds_restore'] / probe:.1%}")
    print(f"  first probe {per.iloc[0].sum():.1f} s (compiles); probe set fixed cost "
          f"(model, encoding, the state's scoring) {fixed:.1f} s; computed {done.computed}")

    # --- what it measured, and the power it buys
    frame = an.probe_frame(done.deltas, batches.assign(seed=seed).drop(columns=["ids"]))
    frame["seed"] = seed
    if (batches["design"] != "random").any():
        table = an.design_table(frame)
        with pd.option_context("display.width", 140, "display.max_columns", 20):
            print("\ndesign table (Δ test loss, design − random):")
            print(table.round(4).to_string(index=False))
        clusters = an.cluster_contrasts(frame)
        main = clusters[clusters["design"] == args.main]
        if main.empty:
            main = clusters[clusters["design"] == clusters["design"].iloc[0]]
            print(f"\n({args.main} not probed: power from {main['design'].iloc[0]} instead)")
        # replicate-level spread: each replicate's target Δ minus the random mean
        reps = []
        chosen = frame[frame["design"] == main["design"].iloc[0]]
        rand = frame[frame["design"] == "random"]
        for (target, task), part in chosen.groupby(["target", "target_task"]):
            r = an._per_probe(rand, task, target).mean()
            v = an._per_probe(part, task, target)
            reps.append(v["target"] - r["target"])
        within = float(np.mean([np.var(r, ddof=1) for r in reps if len(r) > 1]))
        seeds, tasks = len(profile.seeds), len(dict.fromkeys(query_tasks))
        n_designs = 4 if relatives is not None else 3
        print(f"\npower ({main['design'].iloc[0]} − random, target): observed SD over "
              f"{len(main)} clusters {main['target'].std():.4f}, replicate SD "
              f"{math.sqrt(within):.4f}")
        print(f"  budget within {args.minutes:g} min at {probe:.1f} s a probe + {fixed:.0f} s a "
              f"seed, {seeds} seeds × {tasks} target tasks × {n_designs} designs:")
        for r in (1, 2, 4):
            for n_rand in (4, 8):
                n = seeds * (tasks * n_designs * r + n_rand)
                minutes = (n * probe + seeds * (fixed if math.isfinite(fixed) else 0)) / 60
                width = projected_width(main["target"].to_numpy(), within, args.replicates,
                                        seeds * tasks, r)
                print(f"    replicates {r}, random {n_rand}: {n} probes, {minutes:.1f} min "
                      f"here; 95% interval width ≈ {width:.4f}"
                      + ("  <= budget" if minutes <= args.minutes else ""))


if __name__ == "__main__":
    main()
