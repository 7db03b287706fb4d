"""CPU cost and fidelity of gradient features (zsg_lib.train.gradients) on the embedded model.

The book's CPU setting: SmolLM2-135M-Instruct in bf16 with bf16 autocast where the CPU has
native bf16 (fp32 elsewhere), the ``cpu-demo`` profile's LoRA (r=16, all linear layers, ~4.9M
adapter weights) and encoding (plain template, 192/48 tokens). Features are taken, as LESS does, from a short shared warm-up's adapter state:
the bench trains one (the profile's warm-up length, 8 steps of 4), then computes dim-32768 (the profile default)
features of 1,000 training and 100 test instances of the demo suite and reports wall seconds,
instances per second and peak RSS (targets: <= 120 s, <= 4 GB). Fidelity: on 40 of them, the
cosines of their CountSketch features against the cosines of their full (unprojected)
gradients, max and mean absolute difference (target <= 0.02); also against the features the
run-level call returned (adds bf16 batch-composition noise).

    .venv/bin/python bench/bench_gradients.py
    .venv/bin/python bench/bench_gradients.py --train 200 --test 20 --sample 20   # quicker
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def sample(table, n: int, seed: int):
    rows = np.random.default_rng(seed).choice(table.num_rows, size=n, replace=False)
    return table.take(np.sort(rows))


def cosines(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return (x @ x.T)[np.triu_indices(len(x), 1)]


def warm_up(cfg, train, test) -> dict:
    """A short shared warm-up (the profile's length) and its final adapter weights."""
    from zsg_lib.train import states, train_run

    steps = 8
    wcfg = dataclasses.replace(cfg, max_steps=steps, keep_final_state=True, generate_at=(),
                               eval_every=steps)
    order = train.column("id").to_pylist()[: steps * cfg.instances_per_step]
    rec = train_run(wcfg, train, test.slice(0, 4), order, runs_root=tempfile.mkdtemp(),
                    progress=False)
    return states.load_final_state(rec.path)["trainable"]


def fidelity(cfg, state, table, feats: np.ndarray, dim: int, seed: int) -> dict:
    """Cosines of sketches vs full gradients on ``table`` (whose run-level features are
    ``feats``)."""
    import torch

    from zsg_lib.train.gradients import CountSketch, lora_weights, per_sample_gradients
    from zsg_lib.train.loop import _load_trainable, _unwrap, _wrap
    from zsg_lib.train.models import load_model
    from zsg_lib.train.prompts import encode_many

    base, tok = load_model(cfg.model, cfg.resolved_precision)
    model = _wrap(base, cfg)
    try:
        _load_trainable(model, state)
        layers = lora_weights(model)
        sketch = CountSketch({n: m.weight.numel() for n, m in layers.items()}, dim, seed)
        ids = table.column("id").to_pylist()
        enc, _ = encode_many(tok, ids, table.column("messages").to_pylist(),
                             cfg.max_source_len, cfg.max_target_len, cfg.template,
                             cfg.system_prompt)
        full, sk = [], []
        for k in range(0, len(ids), 8):
            grads = per_sample_gradients(model, [enc[i] for i in ids[k : k + 8]],
                                         tok.pad_token_id, cfg.bf16_autocast, layers)
            full.append(torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], 1))
            sk.append(sketch.project(grads))
        full_cos = cosines(torch.cat(full).numpy())
        sk_cos = cosines(torch.cat(sk).numpy())
    finally:
        _unwrap(model, cfg)
    proj = np.abs(sk_cos - full_cos)
    run = np.abs(cosines(feats) - full_cos)
    return {"pairs": len(full_cos), "max": float(proj.max()), "mean": float(proj.mean()),
            "run_max": float(run.max()), "run_mean": float(run.mean()),
            "full_cos_range": (float(full_cos.min()), float(full_cos.max()))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--sample", type=int, default=40)
    ap.add_argument("--dim", type=int, default=32768)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    import pyarrow as pa
    import torch

    from zsg_lib.data import load
    from zsg_lib.profiles.params import load_profile
    from zsg_lib.train.gradient_cache import features_for
    from zsg_lib.train.hardware import resolve
    from zsg_lib.train.models import load_model

    cfg = resolve(load_profile("cpu-demo").run_config(seed=0))  # bf16 "auto" for this CPU
    import pyarrow.compute as pc

    ds = load("demo", None)
    task = ds.table.column("task")
    train = sample(ds.table.filter(pc.is_in(task, pa.array(ds.own_split.train_tasks))),
                   args.train, 0)
    test = sample(ds.table.filter(pc.is_in(task, pa.array(ds.own_split.test_tasks))),
                  args.test, 1)
    t0 = time.perf_counter()
    load_model(cfg.model, cfg.resolved_precision)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    state = warm_up(cfg, train, test)
    t_warm = time.perf_counter() - t0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model load "
          f"{t_load:.1f} s, warm-up 8 steps {t_warm:.1f} s; RSS so far {peak_rss_gb():.2f} GB")

    t0 = time.perf_counter()
    f_train = features_for(cfg, train, state, dim=args.dim, seed=0, cache=False,
                           batch_size=args.batch_size)
    t_train = time.perf_counter() - t0
    f_test = features_for(cfg, test, state, dim=args.dim, seed=0, cache=False,
                          batch_size=args.batch_size)
    wall = time.perf_counter() - t0
    rss = peak_rss_gb()
    n = len(f_train) + len(f_test)
    print(f"features: {n} instances, dim {args.dim}: {wall:.1f} s (train {t_train:.1f} s, "
          f"test {wall - t_train:.1f} s), {n / wall:.1f} inst/s; peak RSS {rss:.2f} GB")

    half = args.sample // 2
    pick = np.random.default_rng(2).choice(len(f_train), half, replace=False)
    both = (train.take(pick), test.slice(0, args.sample - half))
    fid_table = pa.concat_tables([t.select(["id", "messages"]) for t in both])
    fid_feats = np.concatenate([f_train[pick], f_test[: args.sample - half]])
    fid = fidelity(cfg, state, fid_table, fid_feats, args.dim, 0)
    lo, hi = fid["full_cos_range"]
    print(f"fidelity on {args.sample} instances ({fid['pairs']} pairs, full-gradient cosines "
          f"{lo:.3f} .. {hi:.3f}): |cos(sketch) - cos(full)| max {fid['max']:.4f}, mean "
          f"{fid['mean']:.4f}; run-level features: max {fid['run_max']:.4f}, mean "
          f"{fid['run_mean']:.4f}")
    ok = wall <= 120 and rss <= 4 and fid["max"] <= 0.02
    print(f"SUMMARY gradients: {n} inst dim {args.dim} in {wall:.1f} s "
          f"({'ok' if wall <= 120 else 'over'} 120 s), peak RSS {peak_rss_gb():.2f} GB "
          f"(features {rss:.2f}), cosine error max {fid['max']:.4f} mean {fid['mean']:.4f} "
          f"({'ok' if fid['max'] <= 0.02 else 'over'} 0.02){'' if ok else ' [target missed]'}")


if __name__ == "__main__":
    main()
