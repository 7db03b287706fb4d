"""Arrangement benchmark (run by hand): ``.venv/bin/python bench/bench_arrange.py``.

1. Writes random unit vectors (float32, 384-d) to ``bench/out/``: 1,300,000 training rows
   (~2 GB, generated chunk by chunk into a ``.npy`` memmap) and 1,125 test rows — the
   paper's Flan-mini scale.
2. In a fresh subprocess per measurement (peak RSS by ``resource.getrusage``, which counts
   the memmapped training pages the process touches as well as its own allocations):
   * TMA-NFT, budget 30,000, at full scale (target ≤ 60 s, ≤ 3 GB);
   * WSD ordering (``distance_stats`` + NFT argsort) at full scale (target ≤ 30 s, ≤ 3 GB);
   * at 50,000 × 1,125, budget 30,000: ours vs two dense baselines written here (the full
     distance matrix, an argmin per round: ``dense`` plain float32 from one matmul,
     ``dense-exact`` float64 chunked as zsg defines similarity), with a check that each
     gives the same order; ``--repeat R`` keeps the best of R fresh processes each.

``--in-memory`` loads the training matrix into RAM instead of memory-mapping it.
``--n`` / ``--small-n`` / ``--budget`` change the sizes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
DIM, M = 384, 1125


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def generate(path: Path, n: int, seed: int, chunk: int = 100_000) -> None:
    """Write ``n`` random unit rows to a .npy file without holding them all in memory."""
    if path.exists() and np.load(path, mmap_mode="r").shape == (n, DIM):
        return
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp.npy")
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, DIM))
    for s in range(0, n, chunk):
        mm[s : s + chunk] = unit_rows(rng, min(chunk, n - s))
    mm.flush()
    del mm
    tmp.replace(path)


def dense_tma(train: np.ndarray, test: np.ndarray, budget: int) -> np.ndarray:
    """Baseline, plain: the full float32 M x N distance matrix from one matmul of the
    normalised rows, then per round an argmin over each test instance's row (training
    instances taken in earlier rounds masked with +inf).

    float32 BLAS values can differ from zsg's exact ones by ~1e-7, so on near-ties its order
    could in principle differ (the benchmark reports whether it does).
    """
    sys.path.insert(0, str(ROOT))
    from zsg_lib.similarity import normalise_rows

    dist = -(normalise_rows(test) @ normalise_rows(np.asarray(train)).T)  # M x N, d = -cos
    order: list[int] = []
    while len(order) < min(budget, dist.shape[1]):
        picks = dict.fromkeys(np.argmin(dist, axis=1).tolist())  # first = lower index; dedupe
        picks = list(picks)[: budget - len(order)]
        order += picks
        dist[:, picks] = np.inf  # removed after the round
    return np.asarray(order)


def dense_tma_exact(train: np.ndarray, test: np.ndarray, budget: int) -> np.ndarray:
    """Previous baseline: full N x M distance matrix, an argmin per test instance per round.

    Distances follow zsg's definition (float64 dot of the float32 unit rows, rounded to
    float32), so the order must match exactly; the float64 product costs this baseline about
    0.5 s more than a float32 one at 50,000 x 1,125 (its rounds cost far more).
    """
    sys.path.insert(0, str(ROOT))
    from zsg_lib.similarity import normalise_rows

    test64 = normalise_rows(test).astype(np.float64)
    dist = np.empty((len(train), len(test)), np.float32)
    for s in range(0, len(train), 8192):
        block = normalise_rows(np.asarray(train[s : s + 8192])).astype(np.float64)
        dist[s : s + 8192] = -(block @ test64.T)  # N x M, d = -cos
    order: list[int] = []
    while len(order) < min(budget, len(dist)):
        picks = dict.fromkeys(np.argmin(dist, axis=0).tolist())  # first = lower index; dedupe
        picks = list(picks)[: budget - len(order)]
        order += picks
        dist[picks] = np.inf  # removed after the round
    return np.asarray(order)


def measure(args: argparse.Namespace) -> None:
    """Child process: run one measurement, print a JSON line."""
    sys.path.insert(0, str(ROOT))
    from zsg_lib.arrange import tma_rounds
    from zsg_lib.similarity import distance_stats

    train = np.load(args.train, mmap_mode=None if args.in_memory else "r")
    if args.rows:
        train = train[: args.rows]
    test = np.load(args.test)
    t0 = time.perf_counter()
    if args.measure == "tma":
        r = tma_rounds(train, test, budget=args.budget)
        result = {"selected": int(len(r.order)), "rounds": r.n_rounds}
        np.save(args.save, r.order) if args.save else None
    elif args.measure == "wsd":
        st = distance_stats(train, test)
        order = np.argsort(st.wsd, kind="stable")
        result = {"first": int(order[0]), "w_avg": st.w_avg}
    else:
        fn = dense_tma if args.measure == "dense" else dense_tma_exact
        order = fn(train, test, args.budget)
        result = {"selected": int(len(order))}
        np.save(args.save, order) if args.save else None
    secs = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(json.dumps({"measure": args.measure, "seconds": round(secs, 2),
                      "peak_rss_mib": round(rss), **result}))


def run_child(kind: str, train: Path, test: Path, **kw) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--train", str(train), "--test", str(test)]
    for k, v in kw.items():
        if v is True:
            cmd.append(f"--{k.replace('_', '-')}")
        elif v not in (None, False):
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    print(json.dumps({**res, **{k: v for k, v in kw.items() if k != "save"}}), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_300_000)
    ap.add_argument("--small-n", type=int, default=50_000)
    ap.add_argument("--budget", type=int, default=30_000)
    ap.add_argument("--in-memory", action="store_true")
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--child", choices=["tma", "wsd", "dense", "dense-exact"])
    ap.add_argument("--repeat", type=int, default=1, help="best of this many runs (each a fresh process)")
    ap.add_argument("--train"), ap.add_argument("--test"), ap.add_argument("--save")
    ap.add_argument("--rows", type=int)
    ap.add_argument("--generate")
    args = ap.parse_args()
    if args.generate:
        return generate(Path(args.generate), args.n, seed=0)
    if args.child:
        args.measure = args.child
        return measure(args)

    OUT.mkdir(parents=True, exist_ok=True)
    train, test = OUT / f"train_{args.n}.npy", OUT / "test.npy"
    t0 = time.perf_counter()
    # generated in a child: Linux carries the RSS high-water mark of the memory a
    # child starts from (vfork/exec) into the child's ru_maxrss, so the parent must never touch the big array itself
    subprocess.run([sys.executable, __file__, "--generate", str(train), "--n", str(args.n)],
                   check=True)
    np.save(test, unit_rows(np.random.default_rng(1), M))
    print(f"# data ready in {time.perf_counter() - t0:.1f} s: {train} ({args.n} x {DIM})")
    mode = {"in_memory": args.in_memory}
    if not args.skip_full:
        run_child("tma", train, test, budget=args.budget, **mode)
        run_child("wsd", train, test, **mode)
    small = {"rows": args.small_n, "budget": args.budget, **mode}
    best = {}
    for _ in range(args.repeat):  # interleaved, so load changes hit every measure alike
        for kind in ("tma", "dense", "dense-exact"):
            res = run_child(kind, train, test, save=OUT / f"{kind}.npy", **small)
            best[kind] = min(best.get(kind, np.inf), res["seconds"])
    ours = np.load(OUT / "tma.npy")
    for kind, what in (("dense", "plain float32 one-matmul"),
                       ("dense-exact", "float64 chunked, N x M argmin (previous baseline)")):
        same = np.array_equal(ours, np.load(OUT / f"{kind}.npy"))
        print(f"# {args.small_n} x {M} (best of {args.repeat}): {kind} [{what}] "
              f"{best[kind]} s / ours {best['tma']} s = "
              f"{best[kind] / max(best['tma'], 1e-9):.1f}x; same order: {same}")


if __name__ == "__main__":
    main()
