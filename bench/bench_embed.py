"""Embedding throughput (run by hand): ``.venv/bin/python bench/bench_embed.py``.

Sentences per second of the embedded all-MiniLM-L6-v2 through :func:`zsg_lib.embed.embed_texts`
(cache off), for short demo-like instances (~10–30 tokens, like the demo suite's tasks) and
for 256-token texts (the model's maximum length), in fp32 and under bf16 autocast; on the
GPU too when one is present. One warm-up batch per setting is not timed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = ("the of and to in is that it was for on are as with they at be this from or one had "
         "by word but not what all were when can said there use each which she how their if "
         "will up other about out many then them these some would make like into time has "
         "look two more write see number way could people month country answer").split()
SHORT = ["Translate to French: {w} {v}", "What is {a} plus {b}? {c}",
         "Write the number {a} in words. {w} {v}", "Reverse the string '{w}'. {v}",
         "Name of the month {a} in German: {w}", "Capital of {w} country: {v} {w}"]


def short_texts(n: int, rng: random.Random) -> list[str]:
    return [rng.choice(SHORT).format(w=rng.choice(WORDS), v=rng.choice(WORDS),
                                     a=rng.randint(1, 999), b=rng.randint(1, 999),
                                     c=rng.randint(1, 2000)) + f" #{i}" for i in range(n)]


def long_texts(n: int, rng: random.Random) -> list[str]:
    # ~300 words: more than 256 word pieces, so every text runs at the model's maximum length
    return [" ".join(rng.choices(WORDS, k=300)) + f" #{i}" for i in range(n)]


def rate(texts: list[str], device: str, precision: str, batch_size: int) -> float:
    from zsg_lib.embed import embed_texts

    kw = dict(cache_dir=False, progress=False, device=device, precision=precision,
              batch_size=batch_size)
    embed_texts(texts[:batch_size], **kw)  # warm-up (model load, first-call overheads)
    t0 = time.perf_counter()
    embed_texts(texts, **kw)
    return len(texts) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--short", type=int, default=1024)
    ap.add_argument("--long", type=int, default=192)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    import torch

    rng = random.Random(0)
    sets = {"short": short_texts(args.short, rng), "256-token": long_texts(args.long, rng)}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for name, texts in sets.items():
            for precision in ("fp32", "bf16"):
                r = rate(texts, device, precision, args.batch_size)
                print(json.dumps({"device": device, "texts": name, "n": len(texts),
                                  "precision": precision, "sentences_per_s": round(r, 1),
                                  "torch_threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
