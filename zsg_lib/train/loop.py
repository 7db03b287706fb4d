"""The training loop of one run: step ``s`` trains on exactly the instances its batch source
gives it (:mod:`zsg_lib.train.batches`: a fixed order's ``s``-th chunk, or an online pick),
scores the test set at the scored steps, and checkpoints so a killed run resumes.

:func:`zsg_lib.train.run.train_run` prepares the inputs and the run folder and calls
:class:`Loop`; nothing here decides *what* a run is.

>>> FixedOrder(["a", "b", "c"], per_step=2, first=0).batch(1, 2, [], [])[0]  # step 1's ids
['a', 'b']
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import TrainError
from . import compiled, distributed, records, states
from .batches import BatchSource, FixedOrder
from .batching import collate, pack
from .config import TrainConfig
from .forward import (
    autocast_context,
    fast_attention,
    lora_under_autocast,
    response_token_losses,
    shares_prefixes,
)
from .generation import generate_greedy
from .metrics import generation_metrics
from .prompts import EncodedExample
from .quantized import is_4bit_model
from .rewards import reward_scores
from .scoring import score_examples

CHECKPOINT_SECONDS = 30.0  # default: resume checkpoints at scored steps, at most this often


def lr_factor(step_index: int, max_steps: int, schedule: str) -> float:
    """Learning-rate multiplier before optimizer step ``step_index + 1``.

    >>> lr_factor(0, 10, "cosine"), round(lr_factor(10, 10, "cosine"), 6)
    (1.0, 0.1)
    """
    if schedule == "constant":
        return 1.0
    progress = min(step_index / max_steps, 1.0)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def adamw(params: Sequence[torch.nn.Parameter], lr: float,
          weight_decay: float) -> torch.optim.AdamW:
    """PyTorch's AdamW over ``params``, in its fused kernel where that runs (floating-point
    parameters on CPU or CUDA), else one parameter at a time.

    The fused step is the same update in one kernel call: on cpu-demo's 420 LoRA tensors
    (4.9M values) 4x faster than the per-parameter loop, ~5% of a CPU training step, its
    parameters within 2e-8 of the loop's after 20 steps; a short run's losses agree to 1e-6
    (tests/test_train.py).

    >>> p = torch.nn.Parameter(torch.ones(2)); p.grad = torch.ones(2)
    >>> opt = adamw([p], 0.1, 0.0); opt.step()
    >>> opt.defaults["fused"], [round(x, 6) for x in p.tolist()]
    (True, [0.9, 0.9])
    """
    params = list(params)
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
                                 for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay,
                             fused=True if fused else None, foreach=None if fused else False)


def _wrap(base: Any, cfg: TrainConfig) -> Any:
    """A trainable model: fresh LoRA adapters (seeded) on the cached base, or a full copy."""
    torch.manual_seed(cfg.seed)
    if cfg.method == "full":
        model = copy.deepcopy(base)
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if is_4bit_model(base):  # qlora, or lora asked for on 4-bit weights: the same thing
        # freezes the base, casts what is not 4-bit to fp32 (already so: see models.py)
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    target = cfg.target_modules
    lcfg = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.resolved_alpha, lora_dropout=cfg.lora_dropout,
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


def check_state(model: Any, state: Mapping[str, Any], precision: str,
                source: Path | None) -> None:
    """:class:`TrainError` naming ``source`` (the run folder the state came from) unless
    ``state`` was saved by a run of this model in this ``precision``: the same trainable
    tensors (names and shapes) over base weights of the same precision. Checked before
    anything is loaded or written, so a mismatched checkpoint changes nothing.
    """
    saved = state.get("precision")
    if saved is not None and saved != precision:
        raise TrainError(f"{source}: its saved state was trained on {saved} base weights, "
                         f"this run's are {precision}; delete the folder to retrain")
    mine = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
    theirs = {n: tuple(t.shape) for n, t in state["trainable"].items()}
    if mine != theirs:
        odd = sorted(set(mine) ^ set(theirs)) or [n for n in mine if mine[n] != theirs[n]]
        raise TrainError(f"{source}: its saved state does not fit this run's trainable "
                         f"weights ({len(theirs)} tensors saved, {len(mine)} here; first "
                         f"difference: {odd[0]}); delete the folder to retrain")


def _eval_steps(cfg: TrainConfig, first: int, end: int) -> tuple[set[int], set[int]]:
    """The scored steps, and those among them scored only for step-resolved scoring."""
    steps = {first, end} | set(range(first + cfg.eval_every, end + 1, cfg.eval_every))
    steps |= {s for s in cfg.generate_at if first <= s <= end}
    dense = cfg.dense_steps(first, end)
    return steps | dense, dense - steps


@dataclass(frozen=True)
class Branch:
    """Where a branched run starts: another run's final state (trainable weights, optimizer,
    scheduler, RNG) at its last ``step``, and its scores there (``None``: score again)."""

    step: int
    state: Mapping[str, Any]
    scores: list[dict[str, Any]] | None = None
    source: Path | None = None  # the run folder the state was read from (for errors)


def _finite(loss: float, what: str, step: int, run_dir: Path) -> float:
    """``loss``, or TrainError when it is NaN or infinite: the run stops, never marked DONE."""
    if not math.isfinite(loss):
        raise TrainError(f"{run_dir}: {what} became non-finite ({loss}) at step {step}; the "
                         "run is not recorded as finished: lower learning_rate (or check the "
                         "data), then delete the folder to retrain")
    return loss


class Loop:
    """One run's training loop and scoring; state is checkpointed between steps.

    Without a branch the run trains steps ``1 … n``; from a :class:`Branch` at step ``b`` it
    trains steps ``b + 1 … b + n`` (the step counter continues), ``n`` being
    ``cfg.steps_over(len(source))``: ``cfg.max_steps``, or one pass over the order (an online
    source: its budget). ``source``: a :class:`~zsg_lib.train.batches.BatchSource`, or a list
    of ids, read as a :class:`~zsg_lib.train.batches.FixedOrder`.
    """

    def __init__(self, cfg: TrainConfig, base: Any, tokenizer: Any, device: torch.device,
                 run_dir: Path, source: BatchSource | Sequence[str],
                 train_enc: dict[str, EncodedExample], test_enc: dict[str, EncodedExample],
                 test_by_id: Mapping[str, Any], progress: bool,
                 on_step: Callable[[int, dict[str, Any]], None] | None,
                 branch: Branch | None = None) -> None:
        self.cfg, self.base, self.tok, self.device = cfg, base, tokenizer, device
        self.run_dir, self.branch = run_dir, branch
        self.first = branch.step if branch is not None else 0
        if not isinstance(source, BatchSource):
            source = FixedOrder(source, cfg.instances_per_step, self.first)
        self.source, self.max_steps = source, cfg.steps_over(len(source))
        self.end = self.first + self.max_steps
        self.train_enc, self.test_enc, self.test_by_id = train_enc, test_enc, test_by_id
        self.progress, self.on_step = progress, on_step
        self.dist = distributed.current()
        self.eval_steps, self.resolved_only = _eval_steps(cfg, self.first, self.end)
        self.ckpt_every = cfg.checkpoint_every
        self.last_ckpt = time.perf_counter()
        self.log_rows: list[dict[str, Any]] = []
        self.score_rows: list[dict[str, Any]] = []
        self.pick_rows: list[dict[str, Any]] = []  # why each id was fed (online sources only)
        self.seconds = {"scoring": 0.0, "generation": 0.0}  # this process's, for the summary

    # --- pieces
    def _score(self, model: Any, step: int) -> float:
        if not self.dist.is_main:  # every process holds the same model; one scores it
            return math.nan
        ids = list(self.test_enc)
        t0 = time.perf_counter()
        rows = score_examples(model, self.test_enc, ids, self.tok.pad_token_id,
                              self.cfg.eval_batch_size, self.cfg.bf16_autocast, self.device)
        self.seconds["scoring"] += time.perf_counter() - t0
        if step in self.cfg.generate_at:
            self._add_generation(model, rows)
        for r in rows:
            r["step"] = step
            r["task"] = self.test_by_id[r["id"]][1]
            r["step_resolved"] = step in self.resolved_only
        self.score_rows.extend(rows)
        return _finite(_mean_loss(rows), "mean test loss", step, self.run_dir)

    def _add_generation(self, model: Any, rows: list[dict[str, Any]]) -> None:
        ids = [r["id"] for r in rows]
        t0 = time.perf_counter()
        with compiled.eager():
            preds = generate_greedy(model, self.tok, self.test_enc, ids,
                                    self.cfg.max_new_tokens or max(self.cfg.max_target_len, 1),
                                    self.cfg.eval_batch_size, self.cfg.bf16_autocast,
                                    self.device)
        rewards: dict[str, float] = {}
        if self.cfg.reward_model:
            convs = {i: self.test_by_id[i][0] for i in ids}
            rewards = reward_scores(self.cfg.reward_model, convs, preds, self.device)
        self.seconds["generation"] += time.perf_counter() - t0
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
            batch = (pack(mb, self.device, share_prefixes=shares_prefixes(model))
                     or collate(mb, self.tok.pad_token_id, device=self.device))
            # The log is built from the tensors actually fed (guards the order, see tests).
            fed.extend(_fed_sequences(batch, [len(ex.input_ids) for ex in mb]))
            n_tokens += sum(len(ex.input_ids) for ex in mb)  # the examples', however laid out
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
        with self.trainable() as (model, on):
            return {**self._run(model), "compiled_layers": on}

    @contextlib.contextmanager
    def trainable(self) -> Iterator[tuple[Any, bool]]:
        """The run's trainable model as its steps and scoring see it (adapters on the cached
        base, attention, LoRA under autocast, compiled layers), and whether the layers
        compiled; the base model is given back its own layers after (probes run here too)."""
        cfg = self.cfg
        model = _wrap(self.base, cfg)
        longest = max(len(e.input_ids) for e in (*self.train_enc.values(),
                                                 *self.test_enc.values()))
        try:
            with (fast_attention(model, self.device, longest),
                  lora_under_autocast(model, cfg.bf16_autocast, self.device),
                  compiled.compiled_layers(model, compiled.wanted(cfg, self.device)) as on):
                yield model, on
        finally:
            _unwrap(model, cfg)

    def optimizer(self, model: Any) -> tuple[torch.optim.Optimizer, Any]:
        """The run's AdamW over the trainable weights and its lr schedule (over
        ``schedule_steps``, else this run's last step)."""
        cfg = self.cfg
        trainable = [p for p in model.parameters() if p.requires_grad]
        opt = adamw(trainable, cfg.learning_rate, cfg.weight_decay)
        horizon = cfg.schedule_steps or self.end
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_factor(s, horizon, cfg.schedule))
        return opt, sched

    def _run(self, model: Any) -> dict[str, Any]:
        cfg = self.cfg
        opt, sched = self.optimizer(model)
        t_start = time.perf_counter()
        start, last_test = self.first, math.nan
        state = states.load_checkpoint(self.run_dir)
        if state is not None:
            self._restore(model, opt, sched, state, self.run_dir)
            start, last_test = state["step"], state["last_test"]
            self.log_rows, self.score_rows = state["log"], state["scores"]
            self.pick_rows = state.get("picks", [])
        elif self.branch is not None:
            self._restore(model, opt, sched, self.branch.state, self.branch.source)
            if self.branch.scores is not None:  # the branch point was scored by the branch run
                self.score_rows = [dict(r) for r in self.branch.scores]
                last_test = _mean_loss(self.score_rows)
            else:
                last_test = self._score(model, self.first)
        else:
            last_test = self._score(model, 0)

        bar = _bar(self.progress and self.dist.is_main, self.max_steps, start - self.first)
        model.train()
        tokens_seen, seconds = 0, 0.0
        for step in range(start + 1, self.end + 1):
            row = self._train_step(model, opt, self._next_batch(step))
            if row["response_tokens"]:  # NaN is the normal loss of a step with no response
                _finite(row["train_loss"], "training loss", step, self.run_dir)
            sched.step()
            row["step"] = step
            self.log_rows.append(row)
            tokens_seen += row["tokens"]
            seconds += row["seconds"]
            if step in self.eval_steps:
                last_test = self._score(model, step)
            if cfg.save_every and step % cfg.save_every == 0:
                records.save_adapter(self.run_dir, model, step)
            if self.on_step is not None:
                self.on_step(step, row)
            if step < self.end and self._checkpoint_due(step):
                state = self._state(model, opt, sched, step)  # on every rank (RNG gather)
                if self.dist.is_main:
                    picks = {"picks": self.pick_rows} if self.pick_rows else {}
                    states.save_checkpoint(self.run_dir, {
                        **state, "last_test": last_test,
                        "log": self.log_rows, "scores": self.score_rows, **picks,
                    })
                self.dist.barrier()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", test=f"{last_test:.3f}",
                                tok_s=f"{tokens_seen / max(seconds, 1e-9):.0f}")
        if bar is not None:
            bar.close()
        final = self._state(model, opt, sched, self.end) if cfg.keep_final_state else None
        if self.dist.is_main:
            self._write_tables()
            if final is not None:  # other runs branch from here
                states.save_final_state(self.run_dir, final)
        return {
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "steps": self.end,
            "resumed_from": start, "wall_seconds_this_process": time.perf_counter() - t_start,
            # where that time went, beside the steps' own seconds in the log
            "scoring_seconds_this_process": self.seconds["scoring"],
            "generation_seconds_this_process": self.seconds["generation"],
            "final_test_loss": last_test,
        }

    def _next_batch(self, step: int) -> list[str]:
        """Step ``step``'s ids from the batch source, which sees the scores and the log so far
        (a resumed run's come from its checkpoint), its reasons kept for the record."""
        ids, reasons = self.source.batch(step, self.cfg.instances_per_step, self.score_rows,
                                         self.log_rows)
        if not ids:
            raise TrainError(f"{self.run_dir}: the batch source gave step {step} no instances")
        self.pick_rows.extend({"step": step, **r} for r in reasons)
        return list(ids)

    def _state(self, model: Any, opt: torch.optim.Optimizer, sched: Any,
               step: int) -> dict[str, Any]:
        """What resuming (or branching) needs: weights, optimizer, scheduler, every rank's
        RNG (dropout masks differ per rank) and the step."""
        rngs = self.dist.gather(torch.get_rng_state())
        return {"step": step, "precision": self.cfg.resolved_precision,
                "trainable": _trainable_state(model),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": rngs[0], "rng_by_rank": rngs}

    def _restore(self, model: Any, opt: torch.optim.Optimizer, sched: Any,
                 state: Mapping[str, Any], source: Path | None) -> None:
        check_state(model, state, self.cfg.resolved_precision, source)
        _load_trainable(model, state["trainable"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rngs = state.get("rng_by_rank", [state["rng"]])
        torch.set_rng_state(rngs[self.dist.rank % len(rngs)])

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
        records.write_log(self.run_dir, self.log_rows)
        records.write_scores(self.run_dir, self.score_rows)
        if self.pick_rows:
            records.write_picks(self.run_dir, self.pick_rows)


def _fed_sequences(batch: Any, lengths: list[int]) -> list[list[int]]:
    """Each example's token ids as the batch holds them: rows of a padded batch, or
    consecutive spans of a packed row (its group's shared prefix, then its own tokens)."""
    if batch.position_ids is None:
        return [batch.input_ids[r, :n].tolist() for r, n in enumerate(lengths)]
    row, out, start = batch.input_ids[0].tolist(), [], 0
    if batch.spans is not None:
        return [[t for a, b in spans for t in row[a:b]] for spans in batch.spans]
    for n in lengths:
        out.append(row[start : start + n])
        start += n
    return out


def _mean_loss(rows: list[dict[str, Any]]) -> float:
    losses = [r["loss"] for r in rows if r["n_tokens"] > 0]
    return sum(losses) / len(losses)


def _bar(enabled: bool, total: int, start: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="step")
