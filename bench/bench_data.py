"""Data-layer benchmark (run by hand): ``.venv/bin/python bench/bench_data.py [--records N]``.

1. Writes a Flan-mini-shaped JSON file (default 1,300,000 records, ~1 KB each, so ~1.3 GB
   like the real Flan-mini) with a fast streaming writer.
2. In a fresh subprocess: streaming load + conversion to the Parquet cache (target ≤ 3 min,
   ≤ 4 GB peak RSS, measured with ``resource.getrusage`` in that subprocess).
3. In another fresh subprocess: the second load, from the cache (target ≤ 10 s).
4. Demo-suite generation time (target ≤ 60 s), in a fresh subprocess.

Files go to ``bench/out/`` (git-ignored); ``--keep`` keeps the big JSON file.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"

WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have "
    "from or one had by word but not what all were we when your can said there use an each "
    "which she do how their if will up other about out many then them these so some her "
    "would make like him into time has look two more write go see number no way could people "
    "translate answer question premise hypothesis sentence review positive negative summary"
).split()


def write_flan_like(path: Path, n: int, seed: int = 0) -> int:
    """Write ``n`` Flan-mini-shaped records as one JSON array; return the file size."""
    rng = random.Random(seed)
    # A pool of texts reused at random keeps generation fast while sizes vary like real data.
    pool = [" ".join(rng.choices(WORDS, k=rng.randint(8, 260))) for _ in range(4096)]
    sources = [f"task{t:04d}_synthetic" for t in range(1800)]
    dumps = json.dumps
    with open(path, "w", encoding="utf-8", buffering=1 << 22) as f:
        f.write("[\n")
        for i in range(n):
            rec = {
                "id": f"rec{i}",
                "source": sources[i % len(sources)],
                "conversations": [
                    {"from": "human", "value": pool[rng.getrandbits(12)]},
                    {"from": "gpt", "value": pool[rng.getrandbits(12)][:200]},
                ],
            }
            f.write(dumps(rec))
            f.write(",\n" if i < n - 1 else "\n")
        f.write("]\n")
    return path.stat().st_size


CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
{body}
elapsed = time.perf_counter() - t0
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": elapsed, "peak_rss_mb": peak_kb / 1024, "info": info}}))
"""


def run_child(body: str) -> dict:
    code = CHILD.format(body=body)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=1_300_000)
    ap.add_argument("--keep", action="store_true", help="keep the generated JSON file")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    src, cache = OUT / "flan_like.json", OUT / "cache"
    for old in cache.glob("*.parquet") if cache.exists() else []:
        old.unlink()

    t0 = time.perf_counter()
    size = write_flan_like(src, args.records)
    print(f"write   {args.records:,} records, {size / 1e9:.2f} GB: "
          f"{time.perf_counter() - t0:.1f} s")

    load = (f"from zsg_lib.data import load_flan_mini\n"
            f"t = load_flan_mini({str(src)!r}, cache_dir={str(cache)!r})\n"
            f"info = {{'rows': t.num_rows, 'tasks': len(set(t.column('task').to_pylist()))}}")
    first = run_child(load)
    print(f"convert (stream + Parquet cache): {first['seconds']:.1f} s, "
          f"peak RSS {first['peak_rss_mb']:.0f} MB, {first['info']}  "
          f"[target <= 180 s, <= 4096 MB]")
    second = run_child(load)
    print(f"reload  (from cache): {second['seconds']:.1f} s, "
          f"peak RSS {second['peak_rss_mb']:.0f} MB  [target <= 10 s]")
    pq_size = sum(p.stat().st_size for p in cache.glob("*.parquet"))
    print(f"cache size: {pq_size / 1e6:.0f} MB")

    demo = (f"from zsg_lib.data.demo import demo_dataset\n"
            f"d = demo_dataset(cache_dir={str(OUT / 'demo')!r}, seed=12345)\n"
            f"info = {{'rows': d.table.num_rows, 'tasks': len(d.families),"
            f" 'families': d.families['family'].nunique()}}")
    for old in (OUT / "demo").rglob("*") if (OUT / "demo").exists() else []:
        if old.is_file():
            old.unlink()
    gen = run_child(demo)
    print(f"demo suite generation + load: {gen['seconds']:.1f} s, {gen['info']}  "
          f"[target <= 60 s]")
    if not args.keep:
        src.unlink()


if __name__ == "__main__":
    main()
