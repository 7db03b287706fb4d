"""Gradient features of instances (LESS-style): per-instance LoRA gradients, sketched.

An instance's feature is the gradient of its **mean response-token cross-entropy** (the
quantity :mod:`zsg_lib.train.scoring` reports as its loss) with respect to the trainable LoRA
weights of a peft model, reduced to ``dim`` numbers by a seeded random projection. Cosines
between features approximate cosines between the full gradients, so the similarity chapters can
set gradients beside sentence embeddings and task labels, and ``grad-nft`` / ``grad-fft`` can
order instances by them. As in LESS, features are taken from a short shared warm-up's adapter
state (a fresh adapter has ``lora_B = 0``, so every ``lora_A`` gradient is zero there).

* **Per-sample gradients, one backward per batch.** For a Linear weight, the gradient of a
  sum of per-instance losses splits by instance: ``dW_b = sum_t g_bt ⊗ x_bt`` (``x``: the
  layer's input, ``g``: the gradient at its output, ``t``: positions of row ``b``). Forward
  hooks on every ``lora_A`` / ``lora_B`` Linear record ``x`` and the output, one
  ``torch.autograd.grad`` of ``sum_b mean_loss_b`` returns every output gradient (no weight
  gradients are formed), and one batched matmul per layer gives ``dW_b``. This is exact:
  rows do not interact (causal attention, right padding, per-token norms), a pad position's
  loss is masked so its ``g`` is zero, and the recorded ``x`` is what the layer read (after
  LoRA dropout). The model runs in eval mode, so dropout is off and a feature does not depend
  on a random mask; the caller's mode is restored. ``torch.func.vmap`` over the whole model
  would also be exact but has to trace Hugging Face's mask building per sample.
* **Projection: CountSketch** (a sparse Johnson-Lindenstrauss transform; Charikar, Chen and
  Farach-Colton 2002; Clarkson and Woodruff 2013). Each of the ``N`` parameters is hashed,
  seeded, to one of ``dim`` buckets with a random sign; a feature is the signed sum of the
  gradient entries per bucket. Inner products are preserved in expectation with the variance
  of a dense Gaussian sketch (a cosine's error has standard deviation about
  ``(1 - cos²) / sqrt(dim)``), at ``O(N)`` per instance. TRAK's ``BasicProjector`` (the
  CPU path of the projector LESS uses) multiplies by a dense ``N × dim`` Rademacher matrix
  regenerated block by block for every batch: for SmolLM2 (``N`` ≈ 4.9M, ``dim`` 8192) that is
  ~40G random draws per batch and an 80 GFLOP product per instance, hours on two cores; its
  fast ``CudaProjector`` needs CUDA. The sketch here is one ``index_add`` per layer (~5 ms
  per instance, measured on SmolLM2). Same ``seed`` and parameter layout ⇒ same buckets ⇒
  same features. Any JL map has this error floor: on 40 demo instances after the cpu-demo
  warm-up (``bench/bench_gradients.py``, 780 pairs) the cosine error was 0.0081 on average
  and 0.030 at worst with ``dim`` 8192, 0.0041 and 0.016 with 32768 (the book's default),
  0.0030 and 0.014 with 65536; the sketch's cost hardly depends on ``dim``.
* **Cost** is that of a training step's forward and backward on the same instances (the
  per-sample products and the sketch add ~10%): ~70 ms an instance for SmolLM2 on two idle
  CPU cores (plain template, bf16 autocast), one batch's activations in memory at a time.
* **Precision.** Features are computed under the run's precision:
  :func:`~zsg_lib.train.gradient_cache.features_for` loads the base model as
  ``cfg.resolved_precision`` and runs under ``cfg.bf16_autocast`` (bf16 on CPU by default, as
  training does); per-sample products and the sketch are float32.

:func:`~zsg_lib.train.gradient_cache.features_for` is the run-level entry point: it loads and
wraps the model like a run, loads a run's trainable state, encodes a table with the run's
settings and caches the features on disk (``cache_dir("gradients")``), keyed by everything
they depend on.

>>> from zsg_lib.train.config import TrainConfig
>>> from zsg_lib.train.models import tiny_model
>>> from zsg_lib.train.loop import _unwrap, _wrap
>>> from zsg_lib.train.prompts import encode_many
>>> cfg = TrainConfig(model="tiny", lora_r=2, bf16_autocast=False)
>>> base, tok = tiny_model()
>>> model = _wrap(base, cfg)
>>> conv = lambda q, a: [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
>>> enc, _ = encode_many(tok, ["a", "b"], [conv("2+2?", "4"), conv("3+3?", "6")])
>>> feats = gradient_features(model, tok, enc, ["a", "b"], dim=64, seed=0)
>>> feats.shape, feats.dtype, bool(np.abs(feats).sum() > 0)
((2, 64), dtype('float32'), True)
>>> bool((gradient_features(model, tok, enc, ["a", "b"], dim=64, seed=0) == feats).all())
True
>>> _unwrap(model, cfg)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import TrainError
from .batching import collate
from .forward import autocast_context, fast_attention, lora_under_autocast, response_token_ce
from .prompts import EncodedExample


def lora_weights(model: Any) -> dict[str, torch.nn.Linear]:
    """The trainable LoRA Linear layers of a peft model, by their weight's parameter name.

    :class:`~zsg_lib.errors.TrainError` (naming ``method``) when the model has none, or when
    something else is trainable too (full fine-tuning, a bias, ``modules_to_save``): per-sample
    gradients here cover LoRA weights only.

    >>> from zsg_lib.train.models import tiny_model
    >>> lora_weights(tiny_model()[0])
    Traceback (most recent call last):
    ...
    zsg_lib.errors.TrainError: method: the model has no trainable LoRA adapters; gradient features need them (train with method 'lora' or 'qlora', wrap the model with peft)
    """
    from peft.tuners.lora import LoraLayer

    found: dict[str, torch.nn.Linear] = {}
    for prefix, module in model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        for part in ("lora_A", "lora_B"):
            for adapter, layer in getattr(module, part).items():
                if isinstance(layer, torch.nn.Linear) and layer.weight.requires_grad:
                    found[f"{prefix}.{part}.{adapter}.weight"] = layer
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    if not found:
        raise TrainError("method: the model has no trainable LoRA adapters; gradient features "
                         "need them (train with method 'lora' or 'qlora', wrap the model with "
                         "peft)")
    other = [n for n in trainable if n not in found]
    if other:
        raise TrainError(f"method: {len(other)} trainable parameters are not LoRA Linear "
                         f"weights (e.g. {other[0]!r}); gradient features cover LoRA weights "
                         "only (lora bias 'none', no modules_to_save)")
    return found


def per_sample_gradients(model: Any, examples: Sequence[EncodedExample], pad_id: int,
                         bf16_autocast: bool = False,
                         layers: Mapping[str, torch.nn.Linear] | None = None,
                         ) -> dict[str, torch.Tensor]:
    """Each example's gradient of its mean response cross-entropy, per LoRA weight.

    One forward and one backward for the whole batch (see the module docstring); returns
    ``{parameter name: float32 tensor (len(examples), *weight.shape)}``. The model runs in
    eval mode (its mode is restored). Every example needs at least one response token.

    >>> from zsg_lib.train.config import TrainConfig
    >>> from zsg_lib.train.loop import _unwrap, _wrap
    >>> from zsg_lib.train.models import tiny_model
    >>> from zsg_lib.train.prompts import encode_instance
    >>> cfg = TrainConfig(model="tiny", lora_r=2)
    >>> base, tok = tiny_model()
    >>> model = _wrap(base, cfg)
    >>> ex = encode_instance(tok, [{"role": "user", "content": "hi"},
    ...                            {"role": "assistant", "content": "yo"}])
    >>> g = per_sample_gradients(model, [ex, ex], tok.pad_token_id)
    >>> name = next(n for n in g if "lora_B" in n)
    >>> g[name].shape[0], bool(torch.allclose(g[name][0], g[name][1], atol=1e-6))
    (2, True)
    >>> _unwrap(model, cfg)
    """
    layers = lora_weights(model) if layers is None else layers
    grads: dict[str, torch.Tensor] = {}
    for name, dw in _per_sample_parts(model, examples, pad_id, bf16_autocast, layers):
        grads[name] = grads[name] + dw if name in grads else dw
    device = next(model.parameters()).device
    return {name: grads[name] if name in grads
            else torch.zeros(len(examples), *layer.weight.shape, device=device)
            for name, layer in layers.items()}


def _per_sample_parts(model: Any, examples: Sequence[EncodedExample], pad_id: int,
                      bf16_autocast: bool, layers: Mapping[str, torch.nn.Linear],
                      ) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, (B, *weight.shape))`` per LoRA layer call, one after another, so a caller
    that sketches them holds one layer's per-sample gradients at a time."""
    if any(ex.n_target == 0 for ex in examples):
        raise TrainError("examples: an example has no response tokens (no loss, no gradient)")
    device = next(model.parameters()).device
    seen: list[tuple[str, torch.Tensor, torch.Tensor]] = []  # (name, input, output) per call

    def recorder(name: str):
        def hook(_module: Any, args: tuple, out: torch.Tensor) -> None:
            seen.append((name, args[0], out))
        return hook

    handles = [layer.register_forward_hook(recorder(name)) for name, layer in layers.items()]
    was_training = model.training
    model.eval()  # dropout off: a feature must not depend on a random mask
    try:
        batch = collate(examples, pad_id, device=device)
        with torch.enable_grad(), fast_attention(model, device, batch.input_ids.shape[1]), \
                lora_under_autocast(model, bf16_autocast, device), \
                autocast_context(bf16_autocast, device):
            ce, rows = response_token_ce(model, batch)
            counts = torch.bincount(rows, minlength=len(examples))
            loss = (ce / counts[rows]).sum()  # sum of per-instance means: rows separate
        outs = list(torch.autograd.grad(loss, [out for _, _, out in seen], allow_unused=True))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    inputs = [(name, x.detach()) for name, x, _ in seen]
    seen.clear()  # drop the outputs (and the graph they hold)
    while inputs:  # pop as we go: each layer's activations are freed once used
        (name, x), g = inputs.pop(), outs.pop()
        if g is not None:  # None: a layer the loss does not reach
            yield name, _split_outer(g.float(), x.float(), rows, len(examples))


def _split_outer(g: torch.Tensor, x: torch.Tensor, rows: torch.Tensor,
                 n: int) -> torch.Tensor:
    """``dW_b = sum_t g_bt ⊗ x_bt`` for each row ``b``: one batched matmul for ``(B, T, ·)``
    activations (the decoder's), a loop over rows for the response tokens the LM head sees
    (``(n_tokens, ·)`` in row-major order, row of each token in ``rows``)."""
    if g.dim() == 3 and g.shape[0] == n:
        return torch.bmm(g.transpose(1, 2), x)
    g, x = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
    if g.shape[0] != len(rows):  # pragma: no cover - a layout no Linear here produces
        raise TrainError(f"a LoRA layer saw {g.shape[0]} positions for {n} rows: cannot split "
                         "its gradient per instance")
    out = torch.zeros(n, g.shape[1], x.shape[1], device=g.device)
    for b in range(n):
        sel = rows == b
        out[b] = g[sel].T @ x[sel]
    return out


class CountSketch:
    """A seeded CountSketch of vectors split into named parts (a model's LoRA weights).

    Parameter ``k`` (in the order of ``sizes``) goes to bucket ``h(k)`` with sign ``s(k)``,
    both drawn from ``torch.Generator().manual_seed(seed)``; ``project`` sums signed entries
    per bucket. Inner products are unbiased: ``E <Sa, Sb> = <a, b>``.

    >>> sk = CountSketch({"w": 3}, dim=2, seed=0)
    >>> e = torch.eye(3).reshape(3, 3)  # three one-hot "gradients"
    >>> out = sk.project({"w": e})
    >>> out.abs().sum(1).tolist()  # each lands in one bucket with sign +-1
    [1.0, 1.0, 1.0]
    """

    def __init__(self, sizes: Mapping[str, int], dim: int, seed: int = 0) -> None:
        if dim < 1:
            raise TrainError(f"dim={dim}: must be >= 1")
        self.dim, self.seed = dim, seed
        self.sizes = dict(sizes)
        total = sum(self.sizes.values())
        gen = torch.Generator().manual_seed(seed)
        # One draw in [0, 2·dim): bucket = v mod dim, sign = + below dim, - above; summing
        # into 2·dim slots and subtracting the halves avoids a multiply per entry.
        code = torch.randint(0, 2 * dim, (total,), generator=gen)
        self._codes: dict[str, torch.Tensor] = {}
        start = 0
        for name, n in self.sizes.items():
            self._codes[name] = code[start : start + n]
            start += n

    def matrix(self) -> torch.Tensor:
        """The dense ``N × dim`` matrix of ±1 / 0 the sketch multiplies by (for tests)."""
        code = torch.cat(list(self._codes.values()))
        m = torch.zeros(len(code), self.dim)
        sign = torch.where(code < self.dim, 1.0, -1.0)
        m[torch.arange(len(code)), code % self.dim] = sign
        return m

    def project(self, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``(B, dim)`` float32 sketches of ``B`` vectors given as ``{name: (B, ...)}``."""
        rows = next(iter(parts.values())).shape[0]
        return self.project_parts(parts.items(), rows)

    def project_parts(self, parts: Iterable[tuple[str, torch.Tensor]],
                      rows: int) -> torch.Tensor:
        """:meth:`project` of ``(name, (rows, ...))`` pairs, consumed one at a time (a name
        given twice adds up: the sketch is linear)."""
        acc = torch.zeros(rows, 2 * self.dim, dtype=torch.float32)
        for name, part in parts:
            acc.index_add_(1, self._codes[name], part.reshape(rows, -1).float().cpu())
        return acc[:, : self.dim] - acc[:, self.dim :]


def _check_ids(encoded: Mapping[str, EncodedExample], ids: Sequence[str]) -> None:
    missing = [i for i in ids if i not in encoded]
    if missing:
        raise TrainError(f"ids: {len(missing)} id(s) not in encoded, e.g. {missing[0]!r}")
    empty = [i for i in ids if encoded[i].n_target == 0]
    if empty:
        raise TrainError(f"ids: instance {empty[0]!r} has zero response tokens (after "
                         f"truncation; {len(empty)} such), so no loss and no gradient: drop it "
                         "or raise max_target_len")


def _check_dim(dim: int, n_params: int | None = None) -> None:
    if dim < 1:
        raise TrainError(f"dim={dim}: must be >= 1")
    if n_params is not None and dim > n_params:
        raise TrainError(f"dim={dim}: larger than the {n_params} trainable LoRA parameters it "
                         "projects (use dim <= the parameter count)")


def gradient_features(model: Any, tokenizer: Any, encoded: Mapping[str, EncodedExample],
                      ids: Sequence[str], dim: int = 32768, seed: int = 0, batch_size: int = 16,
                      bf16_autocast: bool = False, progress: bool = False) -> np.ndarray:
    """Sketched per-instance LoRA gradients: float32 ``(len(ids), dim)``, rows in ``ids`` order.

    ``model``: a peft model with trainable LoRA adapters (train or eval mode: eval is used,
    see the module docstring). Instances are batched by length (little padding); each row is
    the :class:`CountSketch` (``dim``, ``seed``) of the instance's gradient of its mean
    response cross-entropy. Checked before any work: ``dim`` in ``1 … #LoRA parameters``,
    ``batch_size >= 1``, every id in ``encoded`` with at least one response token.

    >>> from zsg_lib.train.models import tiny_model
    >>> gradient_features(tiny_model()[0], None, {}, [], dim=8)
    Traceback (most recent call last):
    ...
    zsg_lib.errors.TrainError: method: the model has no trainable LoRA adapters; gradient features need them (train with method 'lora' or 'qlora', wrap the model with peft)
    """
    _check_dim(dim)
    if batch_size < 1:
        raise TrainError(f"batch_size={batch_size}: must be >= 1")
    layers = lora_weights(model)
    sizes = {name: layer.weight.numel() for name, layer in layers.items()}
    _check_dim(dim, sum(sizes.values()))
    _check_ids(encoded, ids)
    sketch = CountSketch(sizes, dim, seed)
    out = np.zeros((len(ids), dim), dtype=np.float32)
    unique = list(dict.fromkeys(ids))
    ordered = sorted(unique, key=lambda i: -len(encoded[i].input_ids))  # little padding
    chunks = [ordered[k : k + batch_size] for k in range(0, len(ordered), batch_size)]
    rows = {i: [] for i in unique}
    for pos, i in enumerate(ids):
        rows[i].append(pos)
    bar = _bar(progress, len(ordered))
    for chunk in chunks:
        parts = _per_sample_parts(model, [encoded[i] for i in chunk], tokenizer.pad_token_id,
                                  bf16_autocast, layers)
        feats = sketch.project_parts(parts, len(chunk)).numpy()
        for k, i in enumerate(chunk):
            out[rows[i]] = feats[k]
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return out


def _bar(enabled: bool, total: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="gradients", unit="inst")
