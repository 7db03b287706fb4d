"""Ordered instruction tuning with per-instance test scoring: :func:`train_run`.

The training order *is* the experiment (PAPER.md), so the loop is a plain one (nanoGPT-style),
not a framework's: step ``s`` trains on exactly the ``s``-th chunk of ``order`` — never
shuffled, grouped by length or packed — and the log records the ids of the batch the step
actually consumed. Loss is on response tokens only (:mod:`zsg_lib.prompts`).

* **Batches**: ``batch_size`` instances per micro-batch, ``grad_accum`` micro-batches per
  optimizer step, so one step consumes ``batch_size * grad_accum`` consecutive ids of
  ``order``. The step loss is the mean over all response tokens of the step (so gradient
  accumulation equals one big batch). ``max_steps=None`` is one pass over ``order`` (the last
  step may be smaller); more steps than one pass start the order again.
* **Schedule**: constant, or cosine from ``learning_rate`` to ``0.1 * learning_rate``; no
  warm-up (the paper's).
* **Scoring**: at step 0, every ``eval_every`` steps, at ``generate_at`` steps and at the end,
  the mean response cross-entropy of *every* test instance (a row each); at ``generate_at``
  steps also greedy generation scored by Exact-Match, ROUGE-1, ROUGE-L (and a reward model
  when ``reward_model`` is given).
* **Records, resume, reuse**: see :mod:`zsg_lib.runs`. A checkpoint is written every
  ``checkpoint_every`` steps, or by default after a scored step once 30 s have passed since
  the last one; a killed run resumes from it and ends with the same records; a finished run
  with the same id is returned without recomputation.

>>> from zsg_lib.schema import instances_from_records
>>> conv = lambda q, a: [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
>>> train = instances_from_records(
...     [{"id": f"t{i}", "task": "add", "messages": conv(f"{i}+1?", str(i + 1))} for i in range(8)])
>>> test = instances_from_records(
...     [{"id": "x", "task": "add", "messages": conv("9+1?", "10")}])
>>> import tempfile
>>> cfg = TrainConfig(model="tiny", batch_size=2, eval_every=2, learning_rate=1e-2,
...                   bf16_autocast=False)
>>> rec = train_run(cfg, train, test, [f"t{i}" for i in range(8)],
...                 runs_root=tempfile.mkdtemp(), progress=False)
>>> rec.log["step"].tolist(), rec.log["instance_ids"].iloc[0].tolist()
([1, 2, 3, 4], ['t0', 't1'])
>>> sorted(set(rec.scores["step"]))
[0, 2, 4]
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import torch

from . import distributed, runs
from .errors import TrainError
from .evaluate import (
    autocast_context, collate, fast_attention, generate_greedy, response_token_losses,
    reward_scores, score_examples,
)
from .metrics import generation_metrics
from .models import PRECISIONS, load_model, model_identity
from .paths import cache_dir
from .prompts import TEMPLATES, EncodedExample, encode_many

METHODS = ("lora", "qlora", "full")
CHECKPOINT_SECONDS = 30.0  # default: resume checkpoints at scored steps, at most this often
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (and, hashed, its id). Invalid values raise TrainError.

    >>> TrainConfig(schedule="linear")
    Traceback (most recent call last):
    ...
    zsg_lib.errors.TrainError: TrainConfig.schedule: 'linear' is not one of ('constant', 'cosine')
    >>> TrainConfig.from_dict({"lr": 1e-4})
    Traceback (most recent call last):
    ...
    zsg_lib.errors.TrainError: TrainConfig: unknown field(s) ['lr']
    """

    model: str | None = None  # None = embedded SmolLM2-135M-Instruct; "tiny" for tests
    precision: str | None = None  # fp32 | bf16 | 4bit; None: see resolved_precision
    method: str = "lora"  # lora | qlora | full
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str | tuple[str, ...] = "all-linear"
    learning_rate: float = 2e-4
    schedule: str = "constant"  # constant | cosine (to 0.1 x lr, no warm-up)
    weight_decay: float = 0.0
    batch_size: int = 4  # instances per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    max_steps: int | None = None  # None = one pass over the order
    eval_every: int = 10
    generate_at: tuple[int, ...] = ()  # steps with greedy generation + EM/ROUGE (+ reward)
    save_every: int | None = None  # save adapters every N steps (None = never)
    checkpoint_every: int | None = None  # resume checkpoints; None = at scored steps, <= 1/30 s
    max_source_len: int = 1024
    max_target_len: int = 128
    max_new_tokens: int | None = None  # generation length; None = max_target_len
    template: str = "auto"  # auto | chat | plain (see zsg_lib.prompts)
    eval_batch_size: int = 16
    bf16_autocast: bool = True
    seed: int = 0
    device: str | None = None  # None = CUDA if available, else CPU
    reward_model: str | None = None

    def __post_init__(self) -> None:
        for name in ("generate_at", "target_modules"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        self._check_types()
        self._check_values()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping (a YAML profile); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainError(f"TrainConfig: unknown field(s) {unknown}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        d = dataclasses.asdict(self)
        d["generate_at"] = list(self.generate_at)
        if isinstance(self.target_modules, tuple):
            d["target_modules"] = list(self.target_modules)
        return d

    def _check_types(self) -> None:
        ints = ("lora_r", "lora_alpha", "batch_size", "grad_accum", "eval_every",
                "max_source_len", "max_target_len", "eval_batch_size", "seed")
        opt_ints = ("max_steps", "save_every", "checkpoint_every", "max_new_tokens")
        for name in ints + opt_ints:
            v = getattr(self, name)
            if (v is None and name in opt_ints):
                continue
            if not isinstance(v, int) or isinstance(v, bool):
                raise TrainError(f"TrainConfig.{name}: expected an integer, got {v!r}")
        for name in ("learning_rate", "lora_dropout", "weight_decay"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise TrainError(f"TrainConfig.{name}: expected a number, got {v!r}")
        if not isinstance(self.bf16_autocast, bool):
            raise TrainError(f"TrainConfig.bf16_autocast: expected true/false, got "
                             f"{self.bf16_autocast!r}")
        for name in ("model", "precision", "device", "reward_model"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise TrainError(f"TrainConfig.{name}: expected a string or None, got {v!r}")
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in self.generate_at):
            raise TrainError(f"TrainConfig.generate_at: expected step numbers, got "
                             f"{self.generate_at!r}")

    def _check_values(self) -> None:
        def choice(name: str, options: Sequence[str]) -> None:
            if getattr(self, name) not in options:
                raise TrainError(f"TrainConfig.{name}: {getattr(self, name)!r} is not one of "
                                 f"{tuple(options)}")

        choice("method", METHODS)
        choice("schedule", SCHEDULES)
        choice("template", TEMPLATES)
        if self.precision is not None:
            choice("precision", PRECISIONS)
        if self.method == "qlora" and self.precision not in (None, "4bit"):
            raise TrainError(f"TrainConfig.precision: method 'qlora' needs '4bit', "
                             f"got {self.precision!r}")
        positive = ("lora_r", "lora_alpha", "batch_size", "grad_accum", "eval_every",
                    "max_source_len", "eval_batch_size", "max_steps", "save_every",
                    "checkpoint_every", "max_new_tokens")
        for name in positive:
            v = getattr(self, name)
            if v is not None and v < 1:
                raise TrainError(f"TrainConfig.{name}: must be >= 1, got {v}")
        if self.max_target_len < 0:
            raise TrainError(f"TrainConfig.max_target_len: must be >= 0, got "
                             f"{self.max_target_len}")
        if not self.learning_rate > 0:
            raise TrainError(f"TrainConfig.learning_rate: must be > 0, got {self.learning_rate}")
        if not 0 <= self.lora_dropout < 1:
            raise TrainError(f"TrainConfig.lora_dropout: must be in [0, 1), got "
                             f"{self.lora_dropout}")
        if any(s < 0 for s in self.generate_at):
            raise TrainError(f"TrainConfig.generate_at: steps must be >= 0, got "
                             f"{self.generate_at}")
        if self.max_steps is not None and any(s > self.max_steps for s in self.generate_at):
            raise TrainError(f"TrainConfig.generate_at: {self.generate_at} goes past "
                             f"max_steps={self.max_steps}")

    @property
    def resolved_precision(self) -> str:
        """The precision the base model is loaded in.

        ``None`` means: 4bit for QLoRA; bf16 for LoRA under bf16 autocast (autocast would cast
        the frozen fp32 weights to bf16 at every matmul anyway: storing them in bf16 gives the
        same products without the per-step casts, ~1.5x faster on CPU; adapters, optimizer
        state and losses stay fp32); fp32 otherwise (full fine-tuning keeps fp32 masters).

        >>> TrainConfig().resolved_precision, TrainConfig(method="full").resolved_precision
        ('bf16', 'fp32')
        """
        if self.precision is not None:
            return self.precision
        if self.method == "qlora":
            return "4bit"
        return "bf16" if self.method == "lora" and self.bf16_autocast else "fp32"

    @property
    def step_size(self) -> int:
        """Instances consumed per optimizer step."""
        return self.batch_size * self.grad_accum


@dataclass
class RunRecord:
    """A finished run: its folder, id, parameters and tables (pandas)."""

    path: Path
    run_id: str
    params: dict[str, Any]
    log: pd.DataFrame
    scores: pd.DataFrame
    reused: bool = False  # True when an earlier finished run was returned
    summary: dict[str, Any] = field(default_factory=dict)

    def loss_curve(self) -> pd.DataFrame:
        """Mean test loss per scored step (instances with no response tokens skipped)."""
        return self.scores.groupby("step", as_index=False)["loss"].mean()


def lr_factor(step_index: int, max_steps: int, schedule: str) -> float:
    """Learning-rate multiplier before optimizer step ``step_index + 1``.

    >>> lr_factor(0, 10, "cosine"), round(lr_factor(10, 10, "cosine"), 6)
    (1.0, 0.1)
    """
    if schedule == "constant":
        return 1.0
    progress = min(step_index / max_steps, 1.0)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def step_chunks(order: Sequence[str], step_size: int, max_steps: int) -> list[list[str]]:
    """The ids each optimizer step consumes: consecutive chunks of ``order``, wrapping around.

    >>> step_chunks(["a", "b", "c"], 2, 3)
    [['a', 'b'], ['c'], ['a', 'b']]
    """
    per_pass = [list(order[i : i + step_size]) for i in range(0, len(order), step_size)]
    return [per_pass[s % len(per_pass)] for s in range(max_steps)]


# ----------------------------------------------------------------------------- preparation

def _instances(table: pa.Table, name: str) -> dict[str, tuple[Any, Any]]:
    for col in ("id", "messages", "task"):
        if col not in table.schema.names:
            raise TrainError(f"{name} set: missing column {col!r} (see zsg_lib.schema)")
    ids = table.column("id").to_pylist()
    msgs = table.column("messages").to_pylist()
    tasks = table.column("task").to_pylist()
    out = {i: (m, t) for i, m, t in zip(ids, msgs, tasks)}
    if len(out) != len(ids):
        raise TrainError(f"{name} set: duplicate instance ids")
    return out


def _check_order(order: Sequence[str], train: Mapping[str, Any]) -> list[str]:
    order = [str(i) for i in order]
    if not order:
        raise TrainError("order is empty: nothing to train on")
    missing = list(dict.fromkeys(i for i in order if i not in train))
    if missing:
        shown = ", ".join(repr(i) for i in missing[:10])
        more = f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""
        raise TrainError(f"order names {len(missing)} id(s) not in the training set: "
                         f"{shown}{more}")
    return order


def _eval_steps(cfg: TrainConfig, max_steps: int) -> set[int]:
    steps = {0, max_steps} | set(range(cfg.eval_every, max_steps + 1, cfg.eval_every))
    return steps | set(cfg.generate_at)


def _wrap(base: Any, cfg: TrainConfig) -> Any:
    """A trainable model: fresh LoRA adapters (seeded) on the cached base, or a full copy."""
    torch.manual_seed(cfg.seed)
    if cfg.method == "full":
        model = copy.deepcopy(base)
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    target = cfg.target_modules
    lcfg = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(target) if isinstance(target, tuple) else target,
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_peft_model(base, lcfg)


def _unwrap(model: Any, cfg: TrainConfig) -> None:
    """Give the cached base model back its original layers (LoRA adapters removed)."""
    if cfg.method != "full" and hasattr(model, "unload"):
        model.unload()


def _trainable_state(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _load_trainable(model: Any, state: Mapping[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def _data_identity(cfg: TrainConfig, train: Mapping[str, Any], test: Mapping[str, Any],
                   order: Sequence[str]) -> dict[str, Any]:
    test_ids = sorted(test)
    return {
        "model": model_identity(cfg.model),
        "train_ordered": runs.table_digest(order, [train[i][0] for i in order],
                                           [train[i][1] for i in order]),
        "test": runs.table_digest(test_ids, [test[i][0] for i in test_ids],
                                  [test[i][1] for i in test_ids]),
        "n_order": len(order),
        "n_test": len(test),
    }


# ----------------------------------------------------------------------------- the run

def train_run(
    config: TrainConfig,
    train: pa.Table,
    test: pa.Table,
    order: Sequence[str],
    runs_root: str | Path | None = None,
    run_name: str | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
) -> RunRecord:
    """Train on exactly ``order`` (ids of ``train``), scoring every ``test`` instance.

    Returns the run's :class:`RunRecord`; an already finished run with the same id is read
    back, an interrupted one resumed. ``runs_root`` defaults to ``cache_dir("runs")``.
    ``run_name`` is a label stored with the run (not part of its id). ``on_step(step, row)``
    is called after each optimizer step with its log row (live plots, tests).
    All input checks happen before the model is touched.
    """
    if not isinstance(config, TrainConfig):
        raise TrainError(f"config: expected a TrainConfig, got {type(config).__name__}")
    cfg = config
    train_by_id = _instances(train, "training")
    test_by_id = _instances(test, "test")
    if not test_by_id:
        raise TrainError("test set is empty")
    order = _check_order(order, train_by_id)
    per_pass = math.ceil(len(order) / cfg.step_size)
    max_steps = cfg.max_steps or per_pass
    if any(s > max_steps for s in cfg.generate_at):
        raise TrainError(f"TrainConfig.generate_at: {cfg.generate_at} goes past the run's "
                         f"{max_steps} steps")

    cfg_dict = cfg.to_dict()
    data_id = _data_identity(cfg, train_by_id, test_by_id, order)
    run_id = runs.run_id_of(cfg_dict, data_id)
    root = Path(runs_root) if runs_root is not None else cache_dir("runs")
    run_dir = root / run_id
    existing = runs.check_compatible(run_dir, run_id)
    if existing is not None and runs.is_done(run_dir):
        return _read_record(run_dir, reused=True)

    base, tokenizer = load_model(cfg.model, cfg.resolved_precision, cfg.device)
    device = next(base.parameters()).device
    enc_kw = dict(max_source_len=cfg.max_source_len, max_target_len=cfg.max_target_len,
                  template=cfg.template)
    train_ids = list(dict.fromkeys(order))
    train_enc, train_rep = encode_many(tokenizer, train_ids,
                                       [train_by_id[i][0] for i in train_ids], **enc_kw)
    test_ids = list(test_by_id)
    test_enc, test_rep = encode_many(tokenizer, test_ids,
                                     [test_by_id[i][0] for i in test_ids], **enc_kw)
    if len(test_rep.zero_target) == len(test_ids):
        raise TrainError(f"test set is empty after truncation: all {len(test_ids)} responses "
                         f"have zero tokens (max_target_len={cfg.max_target_len})")
    for name, rep in (("training", train_rep), ("test", test_rep)):
        if rep.zero_target:
            warnings.warn(f"{len(rep.zero_target)} {name} instance(s) have zero response tokens "
                          f"after truncation and carry no loss: {rep.zero_target[:5]}",
                          stacklevel=2)

    params = {
        "format_version": runs.FORMAT_VERSION, "run_id": run_id, "name": run_name,
        "config": cfg_dict, "data": data_id, "max_steps": max_steps,
        "steps_per_pass": per_pass, "versions": runs.library_versions(),
        "encoding": {"train": train_rep.summary(), "test": test_rep.summary(),
                     "zero_target_test_ids": test_rep.zero_target,
                     "zero_target_train_ids": train_rep.zero_target},
    }
    dist = distributed.current()
    if existing is None and dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        runs.write_table(run_dir / runs.ORDER, [
            {"position": p, "id": i, "task": train_by_id[i][1]} for p, i in enumerate(order)])
        runs.write_params(run_dir, params)

    loop = _Loop(cfg, base, tokenizer, device, run_dir, max_steps, order,
                 train_enc, test_enc, test_by_id, progress, on_step)
    summary = loop.run()
    if dist.is_main:
        runs.mark_done(run_dir, summary)
    dist.barrier()
    record = _read_record(run_dir, reused=False)
    record.params["name"] = run_name or record.params.get("name")
    return record


def _read_record(run_dir: Path, reused: bool) -> RunRecord:
    params = json.loads((run_dir / runs.PARAMS).read_text())
    summary = json.loads((run_dir / runs.DONE).read_text())
    return RunRecord(
        path=run_dir, run_id=params["run_id"], params=params,
        log=pd.read_parquet(run_dir / runs.LOG), scores=pd.read_parquet(run_dir / runs.SCORES),
        reused=reused, summary=summary,
    )


class _Loop:
    """One run's training loop and scoring; state is checkpointed between steps."""

    def __init__(self, cfg: TrainConfig, base: Any, tokenizer: Any, device: torch.device,
                 run_dir: Path, max_steps: int, order: list[str],
                 train_enc: dict[str, EncodedExample], test_enc: dict[str, EncodedExample],
                 test_by_id: Mapping[str, Any], progress: bool,
                 on_step: Callable[[int, dict[str, Any]], None] | None) -> None:
        self.cfg, self.base, self.tok, self.device = cfg, base, tokenizer, device
        self.run_dir, self.max_steps = run_dir, max_steps
        self.chunks = step_chunks(order, cfg.step_size, max_steps)
        self.train_enc, self.test_enc, self.test_by_id = train_enc, test_enc, test_by_id
        self.progress, self.on_step = progress, on_step
        self.dist = distributed.current()
        self.eval_steps = _eval_steps(cfg, max_steps)
        self.ckpt_every = cfg.checkpoint_every
        self.last_ckpt = time.perf_counter()
        self.log_rows: list[dict[str, Any]] = []
        self.score_rows: list[dict[str, Any]] = []

    # --- pieces
    def _score(self, model: Any, step: int) -> float:
        if not self.dist.is_main:  # every process holds the same model; one scores it
            return math.nan
        ids = list(self.test_enc)
        rows = score_examples(model, self.test_enc, ids, self.tok.pad_token_id,
                              self.cfg.eval_batch_size, self.cfg.bf16_autocast, self.device)
        if step in self.cfg.generate_at:
            self._add_generation(model, rows)
        for r in rows:
            r["step"] = step
            r["task"] = self.test_by_id[r["id"]][1]
        self.score_rows.extend(rows)
        losses = [r["loss"] for r in rows if r["n_tokens"] > 0]
        return sum(losses) / len(losses)

    def _add_generation(self, model: Any, rows: list[dict[str, Any]]) -> None:
        ids = [r["id"] for r in rows]
        preds = generate_greedy(model, self.tok, self.test_enc, ids,
                                self.cfg.max_new_tokens or max(self.cfg.max_target_len, 1),
                                self.cfg.eval_batch_size, self.cfg.bf16_autocast, self.device)
        rewards: dict[str, float] = {}
        if self.cfg.reward_model:
            convs = {i: self.test_by_id[i][0] for i in ids}
            rewards = reward_scores(self.cfg.reward_model, convs, preds, self.device)
        for r in rows:
            ref = self.test_by_id[r["id"]][0][-1]["content"]
            r["prediction"] = preds[r["id"]]
            r.update(generation_metrics(preds[r["id"]], ref))
            if rewards:
                r["reward"] = rewards[r["id"]]

    def _train_step(self, model: Any, opt: torch.optim.Optimizer, ids: list[str]) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        global_ids = ids
        ids = self.dist.shard(global_ids)  # this process's slice of the global batch
        examples = [self.train_enc[i] for i in ids]
        # Divide by the global response-token count so summed gradients equal one big batch.
        n_resp = int(self.dist.sum(sum(ex.n_target for ex in examples)))
        micro = [examples[k : k + cfg.batch_size] for k in range(0, len(examples),
                                                                   cfg.batch_size)]
        fed: list[list[int]] = []
        loss_sum, n_tokens = 0.0, 0
        opt.zero_grad(set_to_none=True)
        for mb in micro:
            batch = collate(mb, self.tok.pad_token_id, device=self.device)
            # The log is built from the tensors actually fed (guards the order, see tests).
            fed.extend(batch.input_ids[r, : len(mb[r].input_ids)].tolist()
                       for r in range(len(mb)))
            n_tokens += batch.n_tokens
            if n_resp == 0:
                continue
            with autocast_context(cfg.bf16_autocast, self.device):
                sums, _ = response_token_losses(model, batch)
            loss = sums.sum() / n_resp
            loss.backward()
            loss_sum += float(sums.detach().sum())
        lr = opt.param_groups[0]["lr"]
        if n_resp:
            self.dist.sum_grads(p for g in opt.param_groups for p in g["params"])
        opt.step()  # no response tokens -> no grads -> AdamW leaves every parameter alone
        fed_ids = [ids[k] for k, toks in enumerate(fed) if toks == examples[k].input_ids]
        fed_ids = self.dist.interleave(self.dist.gather(fed_ids))
        loss_sum, n_tokens = self.dist.sum(loss_sum), int(self.dist.sum(n_tokens))
        return {
            "instance_ids": fed_ids, "n_instances": len(global_ids),
            "train_loss": loss_sum / n_resp if n_resp else math.nan, "lr": lr,
            "tokens": n_tokens, "response_tokens": n_resp,
            "seconds": time.perf_counter() - t0,
        }

    # --- the loop
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        model = _wrap(self.base, cfg)
        longest = max(len(e.input_ids) for e in (*self.train_enc.values(),
                                                 *self.test_enc.values()))
        try:
            with fast_attention(model, self.device, longest):
                return self._run(model)
        finally:
            _unwrap(model, cfg)

    def _run(self, model: Any) -> dict[str, Any]:
        cfg = self.cfg
        trainable = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                                foreach=False)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_factor(s, self.max_steps, cfg.schedule))
        t_start = time.perf_counter()
        start, last_test = 0, math.nan
        state = runs.load_checkpoint(self.run_dir)
        if state is not None:
            _load_trainable(model, state["trainable"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state.get("rng_by_rank", [state["rng"]])[self.dist.rank])
            start, last_test = state["step"], state["last_test"]
            self.log_rows, self.score_rows = state["log"], state["scores"]
        elif 0 in self.eval_steps:
            last_test = self._score(model, 0)

        bar = _bar(self.progress and self.dist.is_main, self.max_steps, start)
        model.train()
        tokens_seen, seconds = 0, 0.0
        for step in range(start + 1, self.max_steps + 1):
            row = self._train_step(model, opt, self.chunks[step - 1])
            sched.step()
            row["step"] = step
            self.log_rows.append(row)
            tokens_seen += row["tokens"]
            seconds += row["seconds"]
            if step in self.eval_steps:
                last_test = self._score(model, step)
            if cfg.save_every and step % cfg.save_every == 0:
                runs.save_adapter(self.run_dir, model, step)
            if self.on_step is not None:
                self.on_step(step, row)
            if step < self.max_steps and self._checkpoint_due(step):
                # Every rank's RNG (dropout masks differ per rank); the main rank writes.
                rngs = self.dist.gather(torch.get_rng_state())
                if self.dist.is_main:
                    runs.save_checkpoint(self.run_dir, {
                        "step": step, "last_test": last_test,
                        "trainable": _trainable_state(model), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "rng": rngs[0], "rng_by_rank": rngs,
                        "log": self.log_rows, "scores": self.score_rows,
                    })
                self.dist.barrier()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", test=f"{last_test:.3f}",
                                tok_s=f"{tokens_seen / max(seconds, 1e-9):.0f}")
        if bar is not None:
            bar.close()
        if self.dist.is_main:
            self._write_tables()
        return {
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "steps": self.max_steps,
            "resumed_from": start, "wall_seconds_this_process": time.perf_counter() - t_start,
            "final_test_loss": last_test,
        }

    def _checkpoint_due(self, step: int) -> bool:
        if self.ckpt_every is not None:
            return step % self.ckpt_every == 0
        # Default: at scored steps, at most every CHECKPOINT_SECONDS, so short CPU runs do not
        # spend their time writing optimizer state. Records do not depend on when (resume
        # replays identically from any checkpoint).
        due = (step in self.eval_steps
               and time.perf_counter() - self.last_ckpt >= CHECKPOINT_SECONDS)
        if self.dist.world > 1:  # ranks' clocks differ: checkpoint if any rank is due
            due = self.dist.sum(float(due)) > 0
        if due:
            self.last_ckpt = time.perf_counter()
        return due

    def _write_tables(self) -> None:
        log_schema = pa.schema([
            ("step", pa.int64()), ("instance_ids", pa.list_(pa.string())),
            ("n_instances", pa.int64()), ("train_loss", pa.float64()), ("lr", pa.float64()),
            ("tokens", pa.int64()), ("response_tokens", pa.int64()), ("seconds", pa.float64()),
        ])
        runs.write_table(self.run_dir / runs.LOG, self.log_rows, log_schema)
        score_fields = [("step", pa.int64()), ("id", pa.string()), ("task", pa.string()),
                        ("loss", pa.float64()), ("n_tokens", pa.int64()),
                        ("prediction", pa.string()), ("exact_match", pa.float64()),
                        ("rouge1", pa.float64()), ("rougeL", pa.float64()),
                        ("reward", pa.float64())]
        runs.write_table(self.run_dir / runs.SCORES, self.score_rows, pa.schema(score_fields))


def _bar(enabled: bool, total: int, start: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="step")
