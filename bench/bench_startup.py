"""Start-up of the embedded default model (run by hand): ``.venv/bin/python bench/bench_startup.py``.

Each measurement is a fresh Python process that imports zsg and calls ``load_model(None)``:

* **cold**: an empty model cache, so transformers dequantises the GGUF file (and the cache
  is written);
* **warm**: the cache written beforehand, so the safetensors copy is read.

Cold and warm runs alternate (cold, warm, cold, ...) so that drift of a noisy machine hits
both alike; the medians and their ratio are printed, with the in-process ``load_model``
seconds beside the whole-process seconds (imports of torch and transformers included).
``--child`` is the measured process itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def child(home: str | None) -> None:
    """Load the embedded model once and print the seconds as JSON (the measured process)."""
    home = home or tempfile.mkdtemp(prefix="zsg-cold-")
    os.environ["ZSG_HOME"] = home
    from zsg_lib.train.models import load_model

    t0 = time.perf_counter()
    load_model(None, device="cpu")
    print(json.dumps({"load_s": time.perf_counter() - t0}))
    if home.startswith(tempfile.gettempdir()) and "zsg-cold-" in home:
        shutil.rmtree(home, ignore_errors=True)


def measure(home: str | None) -> tuple[float, float]:
    """(whole-process seconds, load_model seconds) of one child."""
    cmd = [sys.executable, __file__, "--child"] + (["--home", home] if home else [])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    return wall, json.loads(out.strip().splitlines()[-1])["load_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="pairs of cold and warm runs")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--home", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.home)

    warm_home = tempfile.mkdtemp(prefix="zsg-warm-")
    try:
        measure(warm_home)  # fills the warm cache; not counted
        cold, warm = [], []
        for i in range(args.runs):
            cold.append(measure(None))
            warm.append(measure(warm_home))
            print(f"pair {i + 1}: cold {cold[-1][0]:.1f} s (load {cold[-1][1]:.1f} s), "
                  f"warm {warm[-1][0]:.1f} s (load {warm[-1][1]:.2f} s)", flush=True)
    finally:
        shutil.rmtree(warm_home, ignore_errors=True)
    med = {name: [statistics.median(r[k] for r in runs) for k in (0, 1)]
           for name, runs in (("cold", cold), ("warm", warm))}
    ratios = [c[0] / w[0] for c, w in zip(cold, warm)]
    print(f"median of {args.runs}: cold {med['cold'][0]:.1f} s process / "
          f"{med['cold'][1]:.1f} s load_model; warm {med['warm'][0]:.1f} s process / "
          f"{med['warm'][1]:.2f} s load_model; cold/warm process ratio "
          f"{statistics.median(ratios):.1f}x (median of pairs)")


if __name__ == "__main__":
    main()
