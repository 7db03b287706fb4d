"""Ordered instruction tuning with per-instance test scoring: :func:`train_run`.

The training order *is* the experiment (PAPER.md), so the loop is a plain one (nanoGPT-style),
not a framework's: step ``s`` trains on exactly the ``s``-th chunk of ``order`` — never
shuffled, grouped by length or packed — and the log records the ids of the batch the step
actually consumed. Loss is on response tokens only (:mod:`zsg_lib.train.prompts`).

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
* **Records, resume, reuse**: see :mod:`zsg_lib.train.records`. A checkpoint is written every
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
>>> from zsg_lib.train.config import TrainConfig
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

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import TrainError
from ..paths import cache_dir
from . import distributed, hardware, quantized, records, states
from .batches import OnlineSource
from .config import TrainConfig
from .loop import Branch, Loop
from .models import load_model, model_identity
from .prompts import encode_many
from .records import RunRecord

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


def _data_identity(cfg: TrainConfig, train: Mapping[str, Any], test: Mapping[str, Any],
                   order: Sequence[str], online: OnlineSource | None = None) -> dict[str, Any]:
    """What the run's id hashes besides its config: the model, the test set and the ordered
    training instances; an online run (``online``), whose order is known only as it trains,
    hashes its source's identity and the instances it may pick (``order``) instead."""
    test_ids = sorted(test)
    digest = records.table_digest(order, [train[i][0] for i in order],
                                  [train[i][1] for i in order])
    ordered = ({"train_ordered": digest, "n_order": len(order)} if online is None else
               {"train_online": {**online.identity(), "candidates": digest},
                "n_candidates": len(order)})
    return {
        "model": model_identity(cfg.model),
        **ordered,
        "test": records.table_digest(test_ids, [test[i][0] for i in test_ids],
                                     [test[i][1] for i in test_ids]),
        "n_test": len(test),
    }


def _check_online(source: OnlineSource, train: Mapping[str, Any],
                  test: Mapping[str, Any]) -> list[str]:
    """An online source's candidates (ids of ``train``), checked like an order; it runs in
    one process (the scores it reads are the main process's)."""
    if distributed.current().world > 1:
        raise TrainError("an online batch source runs in one process (WORLD_SIZE > 1 here)")
    if len(source) < 1:
        raise TrainError("online source: a budget of no instances")
    return _check_order(source.candidates(), train)


#: Fields a branched run must share with the run it starts from: they define the model,
#: the optimizer state it inherits and the schedule it continues.
BRANCH_FIELDS = ("model", "precision", "method", "lora_r", "lora_alpha", "lora_dropout",
                 "target_modules", "learning_rate", "weight_decay", "schedule",
                 "schedule_steps", "bf16_autocast", "seed")


def _check_branch(cfg: TrainConfig, start_from: RunRecord | None) -> int:
    """The step a branched run starts at (0 without a branch); TrainError if it cannot."""
    if start_from is None:
        return 0
    if not isinstance(start_from, RunRecord):
        raise TrainError(f"start_from: expected a RunRecord, got {type(start_from).__name__}")
    if not (start_from.path / records.FINAL).exists():
        raise TrainError(f"start_from: {start_from.path} kept no final state (train the "
                         "warm-up with keep_final_state=True)")
    theirs = start_from.params["config"]
    mine = cfg.to_dict()
    differ = [f for f in BRANCH_FIELDS if mine[f] != theirs.get(f)]
    if differ:
        shown = ", ".join(f"{f}: {theirs.get(f)!r} there, {mine[f]!r} here" for f in differ)
        raise TrainError(f"start_from: run {start_from.run_id} differs in {shown}")
    return int(start_from.summary["steps"])


def _branch(start_from: RunRecord, test_digest: str) -> Branch:
    """The branch point: the start run's final state, and its scores there when it scored
    the same test set (the arms need not score it again)."""
    state = states.load_final_state(start_from.path)
    step = int(state["step"])
    scores = None
    if start_from.params["data"]["test"] == test_digest:
        at = start_from.scores[start_from.scores["step"] == step]
        scores = at[["step", "id", "task", "loss", "n_tokens", "first_loss",
                     "end_loss"]].to_dict("records")  # the losses; generation is not shared
        for row in scores:  # data without tasks: pandas read the null task back as NaN
            if not isinstance(row["task"], str):
                row["task"] = None
    return Branch(step, state, scores, start_from.path)


# ----------------------------------------------------------------------------- the run


def train_run(
    config: TrainConfig,
    train: pa.Table,
    test: pa.Table,
    order: Sequence[str] | OnlineSource,
    runs_root: str | Path | None = None,
    run_name: str | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    start_from: RunRecord | None = None,
    on_start: Callable[[str, bool], None] | None = None,
    query_ids: Sequence[str] | None = None,
) -> RunRecord:
    """Train on exactly ``order`` (ids of ``train``), scoring every ``test`` instance; or on
    what an online source (:class:`~zsg_lib.train.batches.OnlineSource`) picks at each step
    from the scores so far (its candidates: ids of ``train``; its picks and their reasons are
    recorded, and the order it fed is written when the run finishes).

    Returns the run's :class:`RunRecord`; an already finished run with the same id is read
    back, an interrupted one resumed. ``runs_root`` defaults to ``cache_dir("runs")``.
    ``run_name`` is a label stored with the run (not part of its id). ``on_step(step, row)``
    is called after each optimizer step with its log row (live plots, tests);
    ``on_start(run_id, finished)`` once the inputs are checked, before any training (``finished``:
    the record is already on disk and is read back).
    ``start_from``: a finished run that kept its final state (a shared warm-up); this run
    continues from it — weights, optimizer, schedule, RNG and step counter — so runs branching
    from one warm-up differ only in the data that follows. Its id names the branch.
    ``query_ids``: under a query split (issue #29), the test instances the arrangement was
    allowed to read; the others are evaluation instances. They are part of the run's id and
    record (:func:`zsg_lib.train.records.with_query`), so a run under one split is never read
    back for another; ``None`` (no split) adds nothing to the id.
    All input checks happen before the model is touched. Two processes starting the same
    run train it once: the second waits for the run folder's lock, then reads the record
    back. A loss that becomes NaN or infinite fails the run (:class:`TrainError` naming the
    step and the folder) and it is never marked DONE.
    """
    if not isinstance(config, TrainConfig):
        raise TrainError(f"config: expected a TrainConfig, got {type(config).__name__}")
    cfg = hardware.resolve(config)  # bf16 "auto" decided before the run is identified
    train_by_id = _instances(train, "training")
    test_by_id = _instances(test, "test")
    if not test_by_id:
        raise TrainError("test set is empty")
    online = order if isinstance(order, OnlineSource) else None
    if online is not None:
        order = _check_online(online, train_by_id, test_by_id)
    else:
        order = _check_order(order, train_by_id)
    planned = len(online) if online is not None else len(order)
    per_pass = math.ceil(planned / cfg.instances_per_step)
    max_steps = cfg.steps_over(planned)
    branch_step = _check_branch(cfg, start_from)
    if any(s > branch_step + max_steps for s in cfg.generate_at):
        raise TrainError(f"TrainConfig.generate_at: {cfg.generate_at} goes past the run's "
                         f"last step {branch_step + max_steps}")
    cfg.dense_steps(branch_step, branch_step + max_steps)  # a range outside the run: refused

    cfg_dict = cfg.to_dict()
    data_id = _data_identity(cfg, train_by_id, test_by_id, order, online)
    if start_from is not None:
        data_id["branch"] = {"run_id": start_from.run_id, "step": branch_step}
    data_id = records.with_query(data_id, query_ids, test_by_id)
    run_id = records.run_id_of(cfg_dict, data_id)
    root = Path(runs_root) if runs_root is not None else cache_dir("runs")
    run_dir = root / run_id
    finished = _finished(run_dir, run_id)
    if on_start is not None:
        on_start(run_id, finished is not None)
    if finished is not None:
        return finished
    inputs = _Inputs(cfg, train_by_id, test_by_id, order, max_steps, per_pass, data_id,
                     run_id, run_name, start_from, online)
    with _exclusive(run_dir):
        # Another process may have trained the run while this one waited for the lock.
        finished = _finished(run_dir, run_id)
        if finished is not None:
            return finished
        record = _train(inputs, run_dir, progress, on_step)
    record.params["name"] = run_name or record.params.get("name")
    return record


def _finished(run_dir: Path, run_id: str) -> RunRecord | None:
    """The finished run in ``run_dir`` read back, or ``None`` when it is not finished."""
    existing = records.check_compatible(run_dir, run_id)
    if existing is not None and records.is_done(run_dir):
        return records.read_record(run_dir, reused=True)
    return None


@contextlib.contextmanager
def _exclusive(run_dir: Path) -> Iterator[None]:
    """One process trains a run: the others wait for the folder's lock. Under several
    processes of one launch (``WORLD_SIZE`` > 1) the ranks train together and no lock is
    taken (they would wait on each other)."""
    if distributed.current().world > 1:
        yield
        return
    with records.run_lock(run_dir):
        records.clean_run_folder(run_dir)  # temp files of killed writers: nobody else writes
        yield


@dataclass(frozen=True)
class _Inputs:
    """A run's checked inputs and identity (what :func:`_train` needs)."""

    cfg: TrainConfig
    train_by_id: dict[str, tuple[Any, Any]]
    test_by_id: dict[str, tuple[Any, Any]]
    order: list[str]
    max_steps: int
    per_pass: int
    data_id: dict[str, Any]
    run_id: str
    run_name: str | None
    start_from: RunRecord | None = None
    online: OnlineSource | None = None  # then ``order`` holds its candidates


def _write_order(run_dir: Path, order: Sequence[str],
                 train_by_id: Mapping[str, tuple[Any, Any]]) -> None:
    records.write_table(run_dir / records.ORDER, [
        {"position": p, "id": i, "task": train_by_id[i][1]} for p, i in enumerate(order)])


def _train(inp: _Inputs, run_dir: Path, progress: bool,
           on_step: Callable[[int, dict[str, Any]], None] | None) -> RunRecord:
    """Encode, write the run's params and order (first start only), train, mark DONE."""
    cfg, train_by_id, test_by_id, order = inp.cfg, inp.train_by_id, inp.test_by_id, inp.order
    existing = records.check_compatible(run_dir, inp.run_id)
    base, tokenizer = load_model(cfg.model, cfg.resolved_precision, cfg.device)
    device = next(base.parameters()).device
    enc_kw = dict(max_source_len=cfg.max_source_len, max_target_len=cfg.max_target_len,
                  template=cfg.template, system_prompt=cfg.system_prompt)
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
                          stacklevel=3)

    params = {
        "format_version": records.FORMAT_VERSION, "run_id": inp.run_id, "name": inp.run_name,
        "config": cfg.to_dict(), "data": inp.data_id, "max_steps": inp.max_steps,
        "steps_per_pass": inp.per_pass, "versions": records.library_versions(),
        # the base weights as loaded (4-bit: the quantization and the bitsandbytes that ran it)
        "precision": quantized.describe(base, cfg.resolved_precision),
        "encoding": {"train": train_rep.summary(), "test": test_rep.summary(),
                     "zero_target_test_ids": test_rep.zero_target,
                     "zero_target_train_ids": train_rep.zero_target},
    }
    dist = distributed.current()
    if existing is None and dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if inp.online is None:
            _write_order(run_dir, order, train_by_id)
        records.write_params(run_dir, params)

    branch = _branch(inp.start_from, inp.data_id["test"]) if inp.start_from else None
    loop = Loop(cfg, base, tokenizer, device, run_dir, inp.online or order,
                train_enc, test_enc, test_by_id, progress, on_step, branch)
    summary = loop.run()
    if dist.is_main:
        if inp.online is not None:  # the order it fed, known now
            _write_order(run_dir, [i for row in loop.log_rows for i in row["instance_ids"]],
                         train_by_id)
        records.mark_done(run_dir, summary)
    dist.barrier()
    return records.read_record(run_dir, reused=False)
