"""A :class:`~zsg_lib.study.plan.Plan` in FLOPs, memory and time, and as ``zsg plan`` prints it.

Time comes two ways, each labelled:

* **here**: GEMM rates measured on this machine (:mod:`zsg_lib.train.gemm_rate`) at each
  phase's own shapes — a training micro-batch's rows (forward and input gradients), a scoring
  batch's rows, a decode step's rows (the eval batch) — in the dtype the runs compute in here,
  times :data:`CPU_SHARE`, the share of those rates each whole phase reaches (measured);
* **GPU** (an estimate, never a measurement): an H100 SXM's dense bf16 peak at
  :data:`GPU_MFU` for training and scoring, and decode steps at least as long as reading the
  weights at :data:`GPU_BANDWIDTH_SHARE` of its memory bandwidth.

>>> from zsg_lib.study.plan import plan
>>> from zsg_lib.profiles.params import load_profile
>>> p = plan(load_profile("tiny", {"seeds": [0]}))
>>> flops(p, p.total)["train"] > 0
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from ..train import cost
from .plan import Plan, Tally

#: Model FLOP utilisation assumed on a GPU for training and scoring passes (LoRA / QLoRA on
#: micro-batches of a few sequences; 4-bit weights are dequantized at every product).
#: An assumption, not a measurement.
GPU_MFU = 0.35
#: Share of the HBM bandwidth a decode step reaches (each step reads every weight once).
GPU_BANDWIDTH_SHARE = 0.6
#: Share of the GEMM rate measured at a phase's shapes that the whole phase reaches on a CPU
#: (attention, norms, the optimizer, Python, the packing around the products), per rate:
#: training steps, scoring passes (and generation's prefill), decode steps. Measured with
#: bench/plan_check.py on one whole cpu-demo run (40 steps from step 0: 11 scoring passes and
#: 3 generations of 90 test instances) on a quiet 2-core AVX2 machine in fp32. Runs of 8 steps
#: fit a training share of 0.16–0.28: start-up (layer compilation) weighs on short runs.
CPU_SHARE = {"train": 0.54, "score": 0.49, "decode": 0.38}
#: The most token rows a phase's products are timed at here (the rate levels off before).
MAX_TIMED_ROWS = 512


@dataclass(frozen=True)
class Rates:
    """FLOP/s a machine reaches per phase, and (for the decode roofline) bytes/s."""

    where: str
    train: float
    score: float
    decode: float
    bandwidth: float | None
    precision: str  # base weights' precision there
    autocast_bf16: bool
    note: str


def flops(p: Plan, t: Tally) -> dict[str, float]:
    """FLOPs of a tally by phase (training includes chapter 7's gradient features)."""
    cfg = p.profile.train
    return {
        "train": cost.train_flops(p.shape, t.train_tokens + t.feature_tokens,
                                  t.train_response + t.feature_response, cfg.lora_r,
                                  cfg.method),
        "score": cost.forward_flops(p.shape, t.score_tokens, t.score_response),
        "prefill": cost.generate_flops(p.shape, t.prompt_tokens, 0),
        "decode": cost.generate_flops(p.shape, 0, t.new_tokens),
    }


def _means(p: Plan) -> dict[str, float]:
    """Rows of each phase's products: a training micro-batch, a scoring batch, a decode step."""
    t, cfg = p.total, p.profile.train
    micro = max(1, t.steps * cfg.grad_accum)
    run = next(iter(p.runs.values()))
    per_test = run.score_tokens / max(run.n_test, 1)
    per_resp = run.score_response / max(run.n_test, 1)
    batch = min(cfg.eval_batch_size, run.n_test)
    return {"train": t.train_tokens / micro, "train_head": t.train_response / micro,
            "score": batch * per_test, "score_head": batch * per_resp, "decode": batch}


def here_rates(p: Plan) -> Rates | None:
    """Rates measured on this machine in the dtype the profile's runs compute in here;
    ``None`` where they cannot run here (4-bit needs CUDA) or the shape is unknown."""
    import torch

    from ..train.gemm_rate import layer_gflops
    from ..train.hardware import default_device, resolve

    if not p.shape.layer_linears:
        return None
    with warnings.catch_warnings():  # bf16 forced on a CPU without it: the runs say so
        warnings.simplefilter("ignore")
        cfg = resolve(p.profile.run_config(p.profile.seeds[0]))
    device = default_device(cfg.device)
    if cfg.resolved_precision == "4bit" and device == "cpu":
        return None
    dtype = "bfloat16" if cfg.bf16_autocast else "float32"
    m = {k: min(v, MAX_TIMED_ROWS) for k, v in _means(p).items()}
    rate = {
        "train": layer_gflops(p.shape, m["train"], m["train_head"], True, dtype, device=device),
        "score": layer_gflops(p.shape, m["score"], m["score_head"], False, dtype, device=device),
        "decode": layer_gflops(p.shape, m["decode"], m["decode"], False, dtype, device=device),
    }
    note = (f"GEMM rates measured here ({device}, {dtype}, {torch.get_num_threads()} threads) "
            f"at each phase's shapes: training {rate['train']:.0f}, scoring "
            f"{rate['score']:.0f}, decoding {rate['decode']:.0f} GFLOP/s; whole phases reach "
            + ", ".join(f"{CPU_SHARE[k]:.0%}" for k in ("train", "score", "decode"))
            + " of them (measured with bench/plan_check.py, CPU_SHARE)")
    return Rates("here", *(rate[k] * 1e9 * CPU_SHARE[k] for k in ("train", "score", "decode")),
                 None, cfg.resolved_precision, bool(cfg.bf16_autocast), note)


def h100_rates(p: Plan, mfu: float = GPU_MFU) -> Rates:
    """An H100 SXM's datasheet peak at an assumed utilisation (bf16 autocast: native)."""
    cfg = p.profile.run_config(p.profile.seeds[0]).with_native_bf16(True)
    peak = cost.H100_BF16_FLOPS
    note = (f"estimate, not a measurement: H100 SXM bf16 dense peak {peak / 1e12:.0f} TFLOP/s "
            f"at {mfu:.0%} utilisation (assumed) for training and scoring; decode steps at "
            f"least the weights read at {GPU_BANDWIDTH_SHARE:.0%} of "
            f"{cost.H100_HBM_BYTES_PER_S / 1e12:.2f} TB/s; a floor for a small model, whose "
            "steps are bound by kernel launches and Python, not FLOPs")
    return Rates("H100", peak * mfu, peak * mfu, peak * mfu,
                 cost.H100_HBM_BYTES_PER_S * GPU_BANDWIDTH_SHARE,
                 cfg.resolved_precision, bool(cfg.bf16_autocast), note)


def seconds(p: Plan, t: Tally, r: Rates) -> float:
    """Time of a tally at rates ``r`` (training, scoring, prefill, decode)."""
    f = flops(p, t)
    decode_steps = t.new_tokens / max(1, _means(p)["decode"])
    decode = (cost.decode_seconds(p.shape, r.precision, decode_steps, f["decode"], r.decode,
                                  r.bandwidth) if r.bandwidth else f["decode"] / r.decode)
    return f["train"] / r.train + (f["score"] + f["prefill"]) / r.score + decode


def memory(p: Plan, r: Rates) -> cost.Memory:
    """Peak memory of the run with the largest micro-batch, at ``r``'s precision."""
    big = max(p.runs.values(), key=lambda run: run.micro_tokens)
    cfg = p.profile.train
    return cost.train_memory(p.shape, r.precision, cfg.method, cfg.lora_r, big.micro_tokens,
                             big.micro_response, r.autocast_bf16)


def _num(x: float, exact: bool = True) -> str:
    """``1234567`` -> ``'1.23M'``; ``≈`` in front of an estimate.

    >>> _num(1234567), _num(2.5e9, False), _num(950)
    ('1.23M', '≈2.50G', '950')
    """
    s = (f"{x / 1e9:.2f}G" if x >= 1e9 else f"{x / 1e6:.2f}M" if x >= 1e6
         else f"{x:,.0f}")
    return s if exact or not x else "≈" + s


def report(p: Plan, rates: list[Rates]) -> str:
    """The text ``zsg plan`` prints."""
    prof, s, cfg = p.profile, p.shape, p.profile.train
    lines = [f"zsg plan: profile {prof.name!r} ({prof.source})",
             f"model: {s.source}: {_num(s.n_total)} parameters ({_num(s.n_body)} decoder, "
             f"{_num(s.n_head)} LM head{', tied' if s.tied else ''}); {cfg.method} "
             f"r={cfg.lora_r}: {_num(cost.lora_params(s, cfg.lora_r, cfg.method))} trainable"]
    if p.with_data:
        lines.append(f"data: {prof.dataset.kind}, seeds {list(prof.seeds)}: tokens counted with "
                     "the model's tokenizer on each seed's sampled instances and arrangements")
    else:
        lines.append("data: not read (--without-data): every instance at "
                     f"{next(iter(p.runs.values())).tokens / max(1, next(iter(p.runs.values())).steps * cfg.instances_per_step):,.0f} "
                     "tokens, every run its full steps, the test set at n_test_tasks × "
                     "test_per_task: upper bounds unless --tokens-per-instance says otherwise")
    head = (f"{'chapter':<24}{'runs new/used':>14}{'steps':>7}{'train tok':>12}"
            f"{'score tok':>12}{'gen tok':>11}{'FLOPs':>10}"
            + "".join(f"{r.where:>11}" for r in rates))
    lines += ["", head, "-" * len(head)]
    for name, t in [*p.chapters.items(), ("total (each run once)", p.total)]:
        if name == "total (each run once)":
            lines.append("-" * len(head))
        f = sum(flops(p, t).values())
        lines.append(f"{name:<24}{f'{t.runs}/{t.used}':>14}{t.steps:>7}"
                     f"{_num(t.train_tokens + t.feature_tokens, t.exact):>12}"
                     f"{_num(t.score_tokens, p.with_data):>12}"
                     f"{_num(t.prompt_tokens + t.new_tokens, False):>11}{f:>10.2e}"
                     + "".join(f"{cost.human_seconds(seconds(p, t, r)):>11}" for r in rates))
    lines += [
        "",
        "runs new/used: a run two chapters read is trained once, counted in the first chapter "
        "that reads it; the total counts each run once. train tok: the tokens of every batch "
        "trained on (chapter 7 adds its gradient features: one forward and backward per "
        "sampled instance); score tok: test tokens × scoring passes; gen tok: prompts + "
        "max_new_tokens per generated answer (an upper bound). ≈: estimated (an order known "
        "only after training, or no data).",
    ]
    lines += [f"note: {n}" for n in p.notes]
    for r in rates:
        mem = memory(p, r)
        lines.append(
            f"one run's peak memory {r.where} ({r.precision} base weights"
            f"{', bf16 autocast' if r.autocast_bf16 else ''}): weights "
            f"{cost.human_bytes(mem.weights)}, adapters {cost.human_bytes(mem.adapters)}, "
            f"gradients {cost.human_bytes(mem.gradients)}, AdamW {cost.human_bytes(mem.optimizer)}, "
            f"activations of the largest micro-batch ≈{cost.human_bytes(mem.activations)} "
            f"→ ≈{cost.human_bytes(mem.total)} (a rough count; the process adds its own)")
    for r in rates:
        lines.append(f"time {r.where}: {r.note}")
    return "\n".join(lines)


def gpu_cost_line(p: Plan, r: Rates, price_per_hour: float | None) -> str:
    """One line: the book's GPU hours, and their price where one is given."""
    hours = seconds(p, p.total, r) / 3600
    mem = memory(p, r)
    fits = "fits" if mem.total < cost.H100_MEMORY_BYTES else "does NOT fit"
    price = f", ≈{hours * price_per_hour:,.0f} at {price_per_hour:g}/GPU-hour" \
        if price_per_hour else ""
    return (f"the book on one {r.where}: ≈{hours:,.1f} GPU-hours{price} (estimate); one run "
            f"≈{cost.human_bytes(mem.total)}, {fits} in {cost.H100_MEMORY_BYTES / 1e9:.0f} GB")


def run_plan(profile_name: str, overrides: dict | None = None, without_data: bool = False,
             tokens_per_instance: int | None = None, model_config: str | None = None,
             params: int | None = None, measure: bool = True, mfu: float | None = None) -> str:
    """``zsg plan``: check the profile, its model and data paths, then cost the book. Every
    input problem is a :class:`~zsg_lib.errors.ParamsError` naming the profile file and key."""
    from ..errors import ParamsError, TrainError
    from ..train import shapes
    from .plan import load, plan

    try:
        profile = load(profile_name, overrides, without_data)
    except ParamsError as exc:
        if "dataset.path" in str(exc) and not without_data:
            raise ParamsError(f"{exc}; or plan from the profile alone: zsg plan --without-data"
                              ) from None
        raise
    if tokens_per_instance is not None and (not without_data or tokens_per_instance < 1):
        raise ParamsError("--tokens-per-instance: a positive count, with --without-data")
    if mfu is not None and not 0 < mfu <= 1:
        raise ParamsError(f"--mfu: a share in (0, 1], got {mfu}")
    model = profile.model or "the embedded model"
    try:
        if params is not None:
            shape = shapes.shape_from_params(params)
        else:
            config, src = shapes.model_config(profile.model, model_config)
            shape = shapes.shape_of(config, profile.train.target_modules, src)
        tok = None if without_data else shapes.load_tokenizer(profile.model)
    except TrainError as exc:
        hint = ("; tokens need its tokenizer here (a local folder or the HF cache), or plan "
                "with --without-data" if isinstance(exc, shapes.ShapeUnknown) else "")
        raise ParamsError(f"{profile.source}: model: {model}: {' '.join(str(exc).split())}"
                          f"{hint}; for the shapes alone: --model-config PATH or --params N"
                          ) from None
    p = plan(profile, tok, shape, without_data, tokens_per_instance)
    rates = [r for r in (here_rates(p) if measure else None,
                         h100_rates(p, mfu or GPU_MFU)) if r is not None]
    text = report(p, rates)
    if measure and rates[0].where != "here":
        text += "\ntime here: not measured (4-bit runs need a CUDA GPU)"
    return text + "\n" + gpu_cost_line(p, rates[-1], None)
