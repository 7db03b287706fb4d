"""How much of chapter 1's early test-loss fall is format (first and end token), before and
after the tokenization fix of issue 9.

Chapter 1's run (the profile's ``chapters.early`` arrangement, from step 0, no warm-up) is
trained twice per seed: with today's encoding (prompt and response cut from the whole text's
tokens) and with the old plain-template boundary (the prompt ends with ``"Assistant: "`` and the
response is tokenized on its own, so SmolLM2 reads a lone space token and then the first word
without its leading space). Both are scored with the same per-token split
(:func:`zsg_lib.analysis.stats.loss_parts`); the script prints, per seed and encoding, the
step-0 and last-step loss, the fall, and the share of the fall each part makes.

The "now" runs are the book's own (read back from ``$ZSG_HOME`` when the book was built there);
the "old boundary" runs go to a separate cache (``--old-home``) so they never mix with the
book's records. Only the loss is scored (no generation).

    .venv/bin/python bench/bench_format_share.py                    # cpu-demo, 3 seeds
    .venv/bin/python bench/bench_format_share.py --profile tiny --seeds 0
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def old_plain_parts(tokenizer, msgs):
    """The plain template before issue 9: prompt and response tokenized apart."""
    turns = [f"{m['role'].capitalize()}: {m['content']}" for m in msgs[:-1]]
    src = tokenizer("\n\n".join(turns) + "\n\nAssistant: ", add_special_tokens=True)["input_ids"]
    tgt = tokenizer(msgs[-1]["content"], add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        tgt = tgt + [tokenizer.eos_token_id]
    return src, tgt


def shares(profile: str, seeds: list[int]):
    from zsg_lib.analysis import stats
    from zsg_lib.study import checks, experiment as ex

    # The old boundary is the plain template's (cpu-demo's own: its runs are the book's).
    prof = checks.setup(profile, "01_early_generalization", {"train.template": "plain"}, seeds)
    scores = ex.run_many(prof, prof.arrangements("early"), branch=False, progress=False)
    parts = stats.loss_parts(scores)
    wide = parts.pivot_table(index=["seed", "step"], columns="part", values="value")
    total = wide.sum(axis=1).groupby("seed")
    out = stats.fall_shares(parts)
    out["step0"] = total.first().to_numpy()
    out["last"] = total.last().to_numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu-demo")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--old-home", default=None,
                    help="ZSG_HOME of the old-boundary runs (default: a folder under /tmp)")
    args = ap.parse_args()

    now = shares(args.profile, args.seeds)

    from zsg_lib.train import prompts

    old_home = args.old_home or os.path.join(tempfile.gettempdir(), "zsg-old-boundary")
    os.environ["ZSG_HOME"] = old_home  # read on every use (zsg_lib.paths)
    prompts._plain_parts = old_plain_parts  # the one place the plain boundary is drawn
    from zsg_lib.study import experiment as ex

    for fn in vars(ex).values():  # drop in-process caches built with today's encoding
        if hasattr(fn, "cache_clear"):
            fn.cache_clear()
    old = shares(args.profile, args.seeds)

    print(f"{args.profile}: chapter 1's run from step 0, share of the step-0 -> last-step fall "
          "in mean test loss")
    print(f"{'encoding':<14}{'seed':>5}{'step 0':>8}{'last':>8}{'fall':>8}"
          f"{'first tok':>11}{'end tok':>9}{'content':>9}")
    for name, df in (("old boundary", old), ("now", now)):
        for r in df.itertuples():
            print(f"{name:<14}{r.seed:>5}{r.step0:>8.3f}{r.last:>8.3f}{r.fall:>8.3f}"
                  f"{r._3:>11.0%}{r._4:>9.0%}{r.content:>9.0%}")
        m = df.mean(numeric_only=True)
        print(f"{name:<14}{'mean':>5}{m.step0:>8.3f}{m['last']:>8.3f}{m.fall:>8.3f}"
              f"{m['first token']:>11.0%}{m['end token']:>9.0%}{m.content:>9.0%}")


if __name__ == "__main__":
    main()
