"""The one training configuration, from a profile's ``train:`` section to the loop.

:class:`TrainConfig` is everything that defines a run (hashed, it is part of the run's id). It
is built the same way from Python keywords and from a YAML profile (:mod:`zsg_lib.profiles.params`
holds one directly), checked by one checker (:meth:`TrainConfig.__post_init__`), with one set
of defaults, and imports no torch. An invalid value raises :class:`ConfigError`, a
:class:`~zsg_lib.errors.TrainError` that also carries the field and the reason, so a profile
can report it with its file and dotted key.

>>> TrainConfig(schedule="linear")
Traceback (most recent call last):
...
zsg_lib.train.config.ConfigError: TrainConfig.schedule: expected one of 'constant', 'cosine', got 'linear'
>>> TrainConfig.from_dict({"lr": 1e-4})
Traceback (most recent call last):
...
zsg_lib.train.config.ConfigError: TrainConfig.lr: unknown key; known keys: model, ...
>>> TrainConfig(lora_r=8).resolved_alpha, TrainConfig(batch_size=2, grad_accum=3).instances_per_step
(16, 6)
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import TrainError
from ..typed import FieldError, build, check_fields

Method = Literal["lora", "qlora", "full"]
Precision = Literal["fp32", "bf16", "4bit"]
Schedule = Literal["constant", "cosine"]
#: "auto" = the tokenizer's chat template where it has one (see :mod:`zsg_lib.train.prompts`).
Template = Literal["auto", "chat", "plain"]

PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
TEMPLATES: tuple[str, ...] = typing.get_args(Template)


class ConfigError(TrainError, FieldError):
    """An invalid :class:`TrainConfig` value: ``key`` (the field) and ``reason``."""

    def __init__(self, key: str, reason: str) -> None:
        FieldError.__init__(self, key, reason)
        self.args = (f"TrainConfig.{key}: {reason}",)

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (and, hashed, its id). See the module docstring."""

    model: str | None = None  # None = embedded SmolLM2-135M-Instruct; "tiny" for tests
    precision: Precision | None = None  # None: see resolved_precision
    method: Method = "lora"
    lora_r: int = 16
    lora_alpha: int | None = None  # None = 2 x lora_r
    lora_dropout: float = 0.05
    target_modules: str | tuple[str, ...] = "all-linear"
    learning_rate: float = 2e-4
    schedule: Schedule = "constant"  # cosine: to 0.1 x lr, no warm-up (the paper's)
    weight_decay: float = 0.0
    batch_size: int = 4  # instances per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    max_steps: int | None = None  # None = one pass over the order
    # Steps the lr schedule spans (None = this run's own): a warm-up and the runs branching
    # from it share one schedule over warm-up + branch steps.
    schedule_steps: int | None = None
    keep_final_state: bool = False  # keep the last state so other runs can branch from it
    eval_every: int = 10
    generate_at: tuple[int, ...] = ()  # steps with greedy generation + EM/ROUGE (+ reward)
    # Step-resolved scoring: also score after every ``dense_every``-th step of the inclusive
    # range [first, last] (steps count on from a branch point, like generate_at).
    dense_scoring: tuple[int, int] | None = None
    dense_every: int = 1
    save_every: int | None = None  # save adapters every N steps (None = never)
    checkpoint_every: int | None = None  # resume checkpoints; None = at scored steps, <= 1/30 s
    max_source_len: int = 1024
    max_target_len: int = 128
    max_new_tokens: int | None = None  # generation length; None = max_target_len
    # "plain" halves the tokens of SmolLM2's short demo instances (its chat template adds a
    # ~20-token default system prompt to every one).
    template: Template = "auto"
    # A system turn for conversations without one: None = the template's own (SmolLM2's is a
    # ~20-token default prompt); "" = an empty system turn.
    system_prompt: str | None = None
    eval_batch_size: int = 16
    # "auto": on where the device computes bf16 natively (CUDA; a CPU with AVX512-BF16 or
    # AMX), off elsewhere: a CPU without them emulates bf16 matmuls ~100x slower than fp32.
    # Resolved before a run is identified (zsg_lib.train.hardware.resolve).
    bf16_autocast: bool | Literal["auto"] = "auto"
    seed: int = 0
    device: str | None = None  # None = CUDA if available, else CPU
    reward_model: str | None = None

    def __post_init__(self) -> None:
        try:
            canonical = check_fields(self)
        except FieldError as exc:
            raise ConfigError(exc.key, exc.reason) from None
        for name, value in canonical.items():
            object.__setattr__(self, name, value)
        self._check_values()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping (a YAML section, a run record); unknown keys are an error."""
        try:
            return build(cls, values)
        except FieldError as exc:
            raise ConfigError(exc.key, exc.reason) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def _check_values(self) -> None:
        def bad(name: str, reason: str) -> ConfigError:
            return ConfigError(name, f"{reason}, got {getattr(self, name)!r}")

        if self.method == "qlora" and self.precision not in (None, "4bit"):
            raise bad("precision", "method 'qlora' needs '4bit'")
        if self.method == "full" and self.precision == "4bit":
            raise bad("precision", "4-bit weights cannot be trained: method 'full' needs 'fp32' "
                      "or 'bf16' (or train adapters on them: method 'qlora')")
        for name in ("lora_r", "lora_alpha", "batch_size", "grad_accum", "eval_every",
                     "max_source_len", "eval_batch_size", "max_steps", "schedule_steps", "save_every",
                     "checkpoint_every", "max_new_tokens", "dense_every"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise bad(name, "must be positive")
        if self.max_target_len < 0:
            raise bad("max_target_len", "must be >= 0")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise bad("learning_rate", "must be a finite number > 0")
        if not 0 <= self.lora_dropout < 1:
            raise bad("lora_dropout", "must be in [0, 1)")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise bad("weight_decay", "must be a finite number >= 0")
        if any(s < 0 for s in self.generate_at):
            raise bad("generate_at", "steps must be >= 0")
        if self.max_steps is not None and any(s > self.max_steps for s in self.generate_at):
            raise bad("generate_at", f"goes past max_steps={self.max_steps}")
        if self.dense_scoring is not None:
            if len(self.dense_scoring) != 2:
                raise bad("dense_scoring", "must be a pair [first, last] of steps")
            first, last = self.dense_scoring
            if not 1 <= first <= last:
                raise bad("dense_scoring", "needs 1 <= first <= last")

    def dense_steps(self, first: int, end: int) -> set[int]:
        """The step-resolved scored steps of a run training steps ``first + 1 … end``;
        :class:`ConfigError` when ``dense_scoring`` reaches outside them.

        >>> sorted(TrainConfig(dense_scoring=(3, 7), dense_every=2).dense_steps(2, 10))
        [3, 5, 7]
        """
        if self.dense_scoring is None:
            return set()
        lo, hi = self.dense_scoring
        if lo <= first or hi > end:
            raise ConfigError("dense_scoring", f"steps {lo}–{hi} are outside the run's "
                              f"steps {first + 1}–{end}")
        return set(range(lo, hi + 1, self.dense_every))

    @property
    def resolved_alpha(self) -> int:
        """LoRA alpha: ``lora_alpha``, or twice the rank when unset."""
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_r

    @property
    def resolved_precision(self) -> str:
        """The precision the base model is loaded in.

        ``None`` means: 4bit for QLoRA; bf16 for LoRA under bf16 autocast (autocast would cast
        the frozen fp32 weights to bf16 at every matmul anyway: storing them in bf16 gives the
        same products without the per-step casts, ~1.5x faster on CPU; adapters, optimizer
        state and losses stay fp32); fp32 otherwise (full fine-tuning keeps fp32 masters).
        With ``bf16_autocast="auto"`` the answer depends on the device: resolve it first
        (:meth:`with_native_bf16`).

        >>> cfg = TrainConfig(bf16_autocast=True)
        >>> cfg.resolved_precision, TrainConfig(method="full").with_native_bf16(True).resolved_precision
        ('bf16', 'fp32')
        """
        if self.precision is not None:
            return self.precision
        if self.method == "qlora":
            return "4bit"
        if self.bf16_autocast == "auto":
            raise ConfigError("bf16_autocast", "'auto' is not resolved yet: call "
                              "zsg_lib.train.hardware.resolve(config) first")
        return "bf16" if self.method == "lora" and self.bf16_autocast else "fp32"

    def with_native_bf16(self, native: bool) -> TrainConfig:
        """This config with ``bf16_autocast="auto"`` decided: on where the device computes
        bf16 natively (``native``). Explicit settings are kept.

        >>> TrainConfig().with_native_bf16(False).bf16_autocast, TrainConfig().with_native_bf16(True).bf16_autocast
        (False, True)
        """
        if self.bf16_autocast != "auto":
            return self
        return dataclasses.replace(self, bf16_autocast=native)

    @property
    def instances_per_step(self) -> int:
        """Training instances one optimizer step consumes."""
        return self.batch_size * self.grad_accum

    def steps_over(self, n_ordered: int) -> int:
        """The optimizer steps a run over ``n_ordered`` ordered instances trains: ``max_steps``,
        or one pass over them where it is ``None`` (the last step may be short). The one rule
        :func:`zsg_lib.train.run.train_run` records and :class:`~zsg_lib.train.loop.Loop` runs.

        >>> TrainConfig(batch_size=4).steps_over(10), TrainConfig(max_steps=2).steps_over(10)
        (3, 2)
        """
        return self.max_steps or math.ceil(n_ordered / self.instances_per_step)
