"""Probes: from one saved training state, a step on a batch *we choose*, the test set scored,
the state restored bit for bit, and the next batch (issue #28): same state, same test
instances, only the batch differs, so what a batch does to each test instance is measured
free of the confounds of observation (which batch came when, the step, the instance).

:func:`run_probes` takes a run's :class:`TrainConfig` (the config of the runs that branch from
the state: its lr schedule is theirs), the training and test tables, the state (a finished run
that kept its final state, e.g. the shared warm-up, or a :class:`~zsg_lib.train.loop.Branch`)
and candidate batches (lists of training ids). For each batch it takes ``steps`` optimizer
steps with the run's own step code (:meth:`Loop._train_step
<zsg_lib.train.loop.Loop._train_step>`, the run's schedule stepping after each), scores the
test set with the run's own scoring pass, and restores weights, optimizer, schedule and RNG
from copies held in memory (:class:`Prober`). The state itself is scored once. The result,
:class:`ProbeSet`, holds ``dloss = loss after − loss at the state`` per probe × test instance.

Records live like a run's (``cache_dir("probes")``, or ``probes_root``)::

    <probe set id>/                 the state (its tensors' digest and step), the config,
      params.json                   the test set and the model: one folder
      base.parquet                  the test set scored at the state (SCORES-like rows)
      probes/<batch key>.parquet    one file a probe, written as it finishes: its test
                                    instances' losses after the steps, the step's train loss
                                    and seconds; the key hashes the batch's ids and content
      .lock                         held while probes are computed

so a killed probe set resumes where it stopped, a finished one is read back without loading a
model, and a set that adds batches reuses the probes already done. Every file is written
atomically; states are read as data only (PyTorch's ``weights_only`` loader).

Bad input fails before any work, naming the parameter or the folder: a state folder that does
not exist, kept no final state or belongs to a run of another model / LoRA / schedule /
precision, a batch id not in the training table, a batch of another size than the run's step,
an empty or repeated id.

>>> msgs = [[{"role": "user", "content": "x"}]] * 2
>>> batch_key(["a", "b"], msgs, ["t", "t"]) == batch_key(["b", "a"], msgs, ["t", "t"])
False
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import torch

from ..atomic import atomic_write_text, clean_stale_temps
from ..errors import TrainError
from ..paths import cache_dir
from . import hardware, records, states
from .batches import step_chunks
from .config import TrainConfig
from .loop import Branch, Loop, _finite
from .models import load_model, model_identity
from .prompts import encode_many
from .records import RunRecord

FORMAT_VERSION = 1
PARAMS, BASE, PROBES = "params.json", "base.parquet", "probes"
PROBE_SCHEMA = pa.schema([
    ("batch_key", pa.string()), ("id", pa.string()), ("task", pa.string()),
    ("loss", pa.float64()), ("n_tokens", pa.int64()), ("first_loss", pa.float64()),
    ("end_loss", pa.float64()), ("train_loss", pa.float64()), ("lr", pa.float64()),
    ("seconds_restore", pa.float64()), ("seconds_steps", pa.float64()),
    ("seconds_scoring", pa.float64()),
])
BASE_SCHEMA = pa.schema([(f.name, f.type) for f in PROBE_SCHEMA
                         if f.name in ("id", "task", "loss", "n_tokens", "first_loss",
                                       "end_loss")])


def batch_key(ids: Sequence[str], messages: Sequence[Any], tasks: Sequence[Any]) -> str:
    """16 hex digits naming a batch: its ids, in order, and their content."""
    return records.table_digest(ids, messages, tasks)[:16]


def state_digest(state: Mapping[str, Any]) -> str:
    """sha256 over a saved state's every tensor (name, dtype, shape, bytes) and plain value:
    the state's identity, whatever file or memory it came from.

    >>> a = {"step": 3, "trainable": {"w": torch.zeros(2)}}
    >>> b = {"step": 3, "trainable": {"w": torch.tensor([0.0, 1e-9])}}
    >>> state_digest(a) == state_digest(dict(a)), state_digest(a) == state_digest(b)
    (True, False)
    """
    h = hashlib.sha256()

    def walk(value: Any, where: str) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{where}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, Mapping):
            for k in sorted(value, key=str):
                walk(value[k], f"{where}/{k}")
        elif isinstance(value, (list, tuple)):
            for k, v in enumerate(value):
                walk(v, f"{where}[{k}]")
        else:
            h.update(f"{where}={json.dumps(value, default=str)}".encode())

    walk(dict(state), "")
    return h.hexdigest()


# ----------------------------------------------------------------------------- the engine


class Prober:
    """A run's model at a saved state, probed batch after batch: :meth:`probe` takes the
    run's steps on a batch and scores the test set, :meth:`restore` puts back the state
    (weights, optimizer, schedule, RNG) from copies in memory, bit for bit.

    Open it with ``with Prober(...) as prober:``; the cached base model gets its own layers
    back on leaving. ``loop`` is a :class:`~zsg_lib.train.loop.Loop` of the run (its step,
    scoring and restore code are the ones used here).
    """

    def __init__(self, loop: Loop, state: Mapping[str, Any], source: Path | None) -> None:
        self.loop, self.source = loop, source
        self.step = int(state["step"])
        self._state = state
        self._context: Any = None

    def __enter__(self) -> Prober:
        self._context = self.loop.trainable()
        self.model, _ = self._context.__enter__()
        try:
            self.opt, self.sched = self.loop.optimizer(self.model)
            # the copies every probe starts from (the optimizer would keep, and step, the
            # tensors it is given: the caller's state is never handed to it)
            self.saved = copy.deepcopy(dict(self._state))
            self.restore()
            self.model.train()
        except BaseException:
            self._context.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._context.__exit__(*exc)

    def snapshot(self) -> dict[str, Any]:
        """The state now (tensors shared with the live model and optimizer: copy to keep)."""
        return self.loop._state(self.model, self.opt, self.sched, self.step)

    def restore(self) -> None:
        """Back to the saved state. The optimizer's ``load_state_dict`` keeps the tensors it
        is given, so it gets a fresh copy each time (the saved copies never change)."""
        self.loop._restore(self.model, self.opt, self.sched, copy.deepcopy(self.saved),
                           self.source)

    def score(self) -> list[dict[str, Any]]:
        """The run's scoring pass over the test set: one row per test instance."""
        self.loop.score_rows = []
        self.loop._score(self.model, self.step)
        rows, self.loop.score_rows = self.loop.score_rows, []
        return rows

    def probe(self, ids: Sequence[str], steps: int) -> tuple[list[dict[str, Any]], dict]:
        """``steps`` optimizer steps on ``ids`` (consumed as the run consumes its order), then
        the test set scored: its rows, and the steps' mean train loss, lr and seconds. The
        state is *not* restored here (call :meth:`restore`)."""
        cfg, t0 = self.loop.cfg, time.perf_counter()
        losses, lr = [], math.nan
        for k, chunk in enumerate(step_chunks(list(ids), cfg.instances_per_step, steps)):
            row = self.loop._train_step(self.model, self.opt, chunk)
            if row["response_tokens"]:
                _finite(row["train_loss"], "training loss", self.step + k + 1,
                        self.loop.run_dir)
            losses.append(row["train_loss"])
            lr = row["lr"] if k == 0 else lr
            self.sched.step()
        t1 = time.perf_counter()
        rows = self.score()
        return rows, {"train_loss": float(sum(losses) / len(losses)), "lr": lr,
                      "seconds_steps": t1 - t0, "seconds_scoring": time.perf_counter() - t1}


# ----------------------------------------------------------------------------- inputs


def _by_id(table: pa.Table, name: str) -> dict[str, tuple[Any, Any]]:
    for col in ("id", "messages", "task"):
        if col not in table.column_names:
            raise TrainError(f"{name}: missing column {col!r} (see zsg_lib.schema)")
    ids = [str(i) for i in table.column("id").to_pylist()]
    out = dict(zip(ids, zip(table.column("messages").to_pylist(),
                            table.column("task").to_pylist())))
    if len(out) != len(ids):
        raise TrainError(f"{name}: duplicate instance ids")
    return out


def _check_batches(batches: Sequence[Sequence[str]], train: Mapping[str, Any],
                   per_step: int, steps: int) -> list[list[str]]:
    if isinstance(batches, (str, bytes)) or not len(batches):
        raise TrainError("batches: expected a non-empty list of batches (lists of train ids)")
    sizes = {per_step, per_step * steps}
    out = []
    for b, batch in enumerate(batches):
        if isinstance(batch, (str, bytes)):
            raise TrainError(f"batches[{b}]: expected a list of train ids, got a string")
        ids = [str(i) for i in batch]
        if len(ids) not in sizes:
            raise TrainError(f"batches[{b}]: {len(ids)} ids; a probe's batch is the run's "
                             f"step ({per_step} = batch_size x grad_accum"
                             + (f", or {per_step * steps} for its {steps} steps)" if steps > 1
                                else ")"))
        missing = [i for i in ids if i not in train]
        if missing:
            raise TrainError(f"batches[{b}]: id {missing[0]!r} is not in the training table"
                             f" ({len(missing)} missing)")
        if len(set(ids)) != len(ids):
            twice = next(i for i in ids if ids.count(i) > 1)
            raise TrainError(f"batches[{b}]: id {twice!r} appears twice")
        out.append(ids)
    return out


@dataclass(frozen=True)
class _Start:
    """A probe set's state: the tensors, the step, where they came from (for errors)."""

    state: Mapping[str, Any]
    step: int
    source: Path | None


def _start(cfg: TrainConfig, state: RunRecord | Branch | str | Path) -> _Start:
    """The state to probe from, checked against ``cfg`` before any model is loaded: a run
    folder (path or :class:`RunRecord`) must exist, have kept its final state and share the
    fields that define the model, its optimizer state and schedule
    (:data:`~zsg_lib.train.run.BRANCH_FIELDS`); every state must be of this precision."""
    from .run import BRANCH_FIELDS  # run imports this package's loop; no cycle at import

    if isinstance(state, Branch):
        start = _Start(state.state, int(state.step), state.source)
    else:
        if isinstance(state, RunRecord):
            folder = state.path
        elif isinstance(state, (str, Path)):
            folder = Path(state)
        else:
            raise TrainError(f"state: expected a run folder, a RunRecord or a Branch, got "
                             f"{type(state).__name__}")
        if not (folder / records.PARAMS).is_file():
            raise TrainError(f"state: {folder} is not a run folder (no {records.PARAMS})")
        try:
            theirs = json.loads((folder / records.PARAMS).read_text()).get("config", {})
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TrainError(f"state: {folder}: {records.PARAMS} is unreadable ({exc})") from exc
        mine = cfg.to_dict()
        differ = [f for f in BRANCH_FIELDS if mine[f] != theirs.get(f)]
        if differ:
            shown = ", ".join(f"{f}: {theirs.get(f)!r} there, {mine[f]!r} here"
                              for f in differ)
            raise TrainError(f"state: {folder} is a run of another configuration ({shown})")
        loaded = states.load_final_state(folder)
        start = _Start(loaded, int(loaded["step"]), folder)
    saved = start.state.get("precision")
    if saved is not None and saved != cfg.resolved_precision:
        raise TrainError(f"state: {start.source or 'the Branch'} was trained on {saved} base "
                         f"weights, this config's are {cfg.resolved_precision}")
    return start


def probe_config(config: TrainConfig, steps: int) -> TrainConfig:
    """The run's config as a probe uses it: ``steps`` steps, no generation, no step-resolved
    scoring, nothing saved (none of these change a step or a score).

    >>> probe_config(TrainConfig(max_steps=40, generate_at=(0, 8)), 1).max_steps
    1
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TrainError(f"steps: expected a positive integer, got {steps!r}")
    return dataclasses.replace(config, max_steps=steps, generate_at=(), dense_scoring=None,
                               dense_every=1, keep_final_state=False, save_every=None,
                               checkpoint_every=None)


# ----------------------------------------------------------------------------- records


@dataclass
class ProbeSet:
    """Probes from one state: ``deltas`` has one row per probe (its position in the batches
    asked for) × test instance: ``probe, batch_key, id, task, loss_before, loss, dloss,
    n_tokens, train_loss, lr, seconds_restore, seconds_steps, seconds_scoring``. ``base``:
    the test set scored at the state. ``computed``: how many probes this call computed (0:
    every one was read back)."""

    path: Path
    set_id: str
    params: dict[str, Any]
    base: pd.DataFrame
    deltas: pd.DataFrame
    computed: int = 0


def _read_table(folder: Path, name: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(folder / name)
    except (OSError, pa.ArrowException) as exc:
        raise TrainError(f"{folder}: {name} is unreadable ({type(exc).__name__}: {exc}); the "
                         "probe record is damaged: delete the file to compute it again") from exc


def _write_params(folder: Path, params: Mapping[str, Any]) -> None:
    path = folder / PARAMS
    if path.exists():
        theirs = json.loads(path.read_text())
        if theirs.get("set_id") != params["set_id"]:
            raise TrainError(f"{path}: belongs to probe set {theirs.get('set_id')!r}, not "
                             f"{params['set_id']!r}")
        return
    atomic_write_text(path, json.dumps(params, indent=2, sort_keys=True, default=str))


def run_probes(config: TrainConfig, train: pa.Table, test: pa.Table,
               state: RunRecord | Branch | str | Path, batches: Sequence[Sequence[str]],
               steps: int = 1, probes_root: str | Path | None = None,
               on_probe: Callable[[int, int], None] | None = None,
               on_compute: Callable[[int], None] | None = None) -> ProbeSet:
    """Probe ``state`` with each of ``batches``: ``steps`` optimizer steps on the batch, the
    ``test`` set scored, the state restored (see the module docstring).

    ``config``: the config of the runs that branch from the state (model, LoRA, optimizer,
    schedule, precision, encoding, batch size); ``state``: a finished run's folder (or its
    :class:`RunRecord`) that kept its final state, or a :class:`Branch`; ``batches``: lists of
    ids of ``train``, each one step's instances (``batch_size * grad_accum``, repeated for
    every step) or ``steps`` steps' in order; ``probes_root``: default
    ``cache_dir("probes")``. ``on_probe(done, total)`` is called after each probe computed;
    ``on_compute(n)`` once before any work, when ``n`` probes are to be computed (not when
    every one is read back: the caller can say so before minutes of work).
    Probes already on disk are read back, not computed; a finished set loads no model.
    """
    if not isinstance(config, TrainConfig):
        raise TrainError(f"config: expected a TrainConfig, got {type(config).__name__}")
    cfg = probe_config(hardware.resolve(config), steps)
    train_by_id, test_by_id = _by_id(train, "train"), _by_id(test, "test")
    if not test_by_id:
        raise TrainError("test: the test set is empty")
    batches = _check_batches(batches, train_by_id, cfg.instances_per_step, steps)
    start = _start(cfg, state)

    keys = [batch_key(b, [train_by_id[i][0] for i in b], [train_by_id[i][1] for i in b])
            for b in batches]
    test_ids = sorted(test_by_id)
    data = {"format": FORMAT_VERSION, "model": model_identity(cfg.model),
            "state": {"digest": state_digest(start.state), "step": start.step,
                      "source": str(start.source) if start.source else None},
            "test": records.table_digest(test_ids, [test_by_id[i][0] for i in test_ids],
                                         [test_by_id[i][1] for i in test_ids]),
            "n_test": len(test_ids)}
    identity = {k: v for k, v in data.items() if k != "state"} | {
        "state": {k: data["state"][k] for k in ("digest", "step")}}  # not where it was read
    set_id = records.run_id_of(cfg.to_dict(), identity)
    root = Path(probes_root) if probes_root is not None else cache_dir("probes")
    folder = root / set_id
    params = {"format_version": FORMAT_VERSION, "set_id": set_id, "config": cfg.to_dict(),
              "data": data, "steps": steps, "versions": records.library_versions()}

    computed = 0
    if _missing(folder, keys):
        with records.run_lock(folder):
            clean_stale_temps(folder)
            if (folder / PROBES).is_dir():
                clean_stale_temps(folder / PROBES)
            todo = _missing(folder, keys)
            if todo:
                if on_compute is not None:
                    on_compute(len([k for k in todo if k]))
                _write_params(folder, params)
                work = {key: (batches[b] if b >= 0 else []) for key, b in todo.items()}
                computed = _compute(cfg, train_by_id, test_by_id, start, work, folder,
                                    on_probe)
    return _read_set(folder, set_id, keys, computed)


def _missing(folder: Path, keys: Sequence[str]) -> dict[str, int]:
    """The batch keys without a probe file (and the first batch each names), base first."""
    out: dict[str, int] = {}
    if not (folder / BASE).exists():
        out[""] = -1
    for k, key in enumerate(keys):
        if key not in out and not (folder / PROBES / f"{key}.parquet").exists():
            out[key] = k
    return out


def _compute(cfg: TrainConfig, train_by_id: Mapping[str, Any], test_by_id: Mapping[str, Any],
             start: _Start, todo: Mapping[str, list[str]], folder: Path,
             on_probe: Callable[[int, int], None] | None) -> int:
    """Load the model, score the state when ``todo`` holds ``""``, probe each other batch
    (key → its ids), writing each probe's file as it finishes. Returns the probes computed."""
    base_model, tokenizer = load_model(cfg.model, cfg.resolved_precision, cfg.device)
    device = next(base_model.parameters()).device
    wanted = [(key, ids) for key, ids in todo.items() if key]
    enc_kw = dict(max_source_len=cfg.max_source_len, max_target_len=cfg.max_target_len,
                  template=cfg.template, system_prompt=cfg.system_prompt)
    train_ids = list(dict.fromkeys(i for _, ids in wanted for i in ids)) or \
        [next(iter(train_by_id))]  # the base alone: the loop still wants one encoded id
    train_enc, _ = encode_many(tokenizer, train_ids, [train_by_id[i][0] for i in train_ids],
                               **enc_kw)
    test_ids = list(test_by_id)
    test_enc, test_rep = encode_many(tokenizer, test_ids, [test_by_id[i][0] for i in test_ids],
                                     **enc_kw)
    if len(test_rep.zero_target) == len(test_ids):
        raise TrainError(f"test: every response has zero tokens after truncation "
                         f"(max_target_len={cfg.max_target_len})")
    branch = Branch(start.step, start.state, None, start.source)
    loop = Loop(cfg, base_model, tokenizer, device, folder, train_ids, train_enc, test_enc,
                test_by_id, False, None, branch)
    (folder / PROBES).mkdir(parents=True, exist_ok=True)
    with Prober(loop, start.state, start.source) as prober:
        if "" in todo:
            records.write_table(folder / BASE, _rows(prober.score(), BASE_SCHEMA),
                                BASE_SCHEMA)
        for n, (key, ids) in enumerate(wanted, 1):
            t0 = time.perf_counter()
            prober.restore()
            restore_s = time.perf_counter() - t0
            rows, info = prober.probe(ids, cfg.max_steps)
            info = {**info, "seconds_restore": restore_s, "batch_key": key}
            records.write_table(folder / PROBES / f"{key}.parquet",
                                _rows([{**r, **info} for r in rows], PROBE_SCHEMA),
                                PROBE_SCHEMA)
            if on_probe is not None:
                on_probe(n, len(wanted))
        prober.restore()
    return len(wanted)


def _rows(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> list[dict[str, Any]]:
    return [{f.name: r.get(f.name) for f in schema} for r in rows]


def _read_set(folder: Path, set_id: str, keys: Sequence[str], computed: int) -> ProbeSet:
    params = json.loads((folder / PARAMS).read_text())
    base = _read_table(folder, BASE)
    parts = []
    for k, key in enumerate(keys):
        part = _read_table(folder / PROBES, f"{key}.parquet")
        part.insert(0, "probe", k)
        parts.append(part)
    deltas = pd.concat(parts, ignore_index=True)
    before = base.set_index("id")["loss"]
    deltas.insert(4, "loss_before", deltas["id"].map(before))
    deltas.insert(6, "dloss", deltas["loss"] - deltas["loss_before"])
    return ProbeSet(folder, set_id, params, base, deltas, computed)
