"""Gradient features: batched per-sample LoRA gradients, the CountSketch, the cache, bad input
(tiny models, CPU, fp32)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from factories import conv

from zsg_lib.errors import TrainError
from zsg_lib.schema import instances_from_records
from zsg_lib.train import gradient_cache, gradients
from zsg_lib.train.batching import collate
from zsg_lib.train.config import ConfigError, TrainConfig
from zsg_lib.train.forward import lora_under_autocast, response_token_ce
from zsg_lib.train.gradient_cache import features_for
from zsg_lib.train.gradients import (
    CountSketch,
    gradient_features,
    lora_weights,
    per_sample_gradients,
)
from zsg_lib.train.loop import _trainable_state, _unwrap, _wrap
from zsg_lib.train.models import tiny_model
from zsg_lib.train.prompts import encode_many

# Lengths differ (prompt and response), so batches are padded.
CONVS = [conv(f"What is {k} plus {k}? " + "Think. " * (k % 4), f"{2 * k}" + " ok" * (k % 3))
         for k in range(12)]
IDS = [f"i{k}" for k in range(12)]
CFG = TrainConfig(model="tiny", bf16_autocast=False, lora_r=4)


def table(n: int = 6):
    return instances_from_records(
        [{"id": IDS[k], "task": "add", "messages": CONVS[k]} for k in range(n)])


def randomise(model, seed: int = 1) -> None:
    """Give every LoRA weight random values: a fresh adapter has lora_B = 0, so its lora_A
    gradients are zero and would agree with anything."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


@pytest.fixture
def wrapped(request):
    """A tiny model with random LoRA adapters (``cfg`` by indirect parametrisation)."""
    cfg = getattr(request, "param", CFG)
    base, tok = tiny_model()
    model = _wrap(base, cfg)
    randomise(model)
    enc, _ = encode_many(tok, IDS, CONVS)
    yield model, tok, enc
    _unwrap(model, cfg)


def loop_gradients(model, tok, examples) -> list[dict[str, torch.Tensor]]:
    """The reference: one forward/backward per instance (eval mode, like the batched path)."""
    model.eval()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    out = []
    for ex in examples:
        model.zero_grad(set_to_none=True)
        ce, _ = response_token_ce(model, collate([ex], tok.pad_token_id))
        ce.mean().backward()
        out.append({n: p.grad.detach().clone() for n, p in params.items()})
    model.zero_grad(set_to_none=True)
    return out


def flat(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1)


def cosines(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    c = x @ x.T
    return c[np.triu_indices(len(x), 1)]


# ------------------------------------------------------------------ per-sample gradients


@pytest.mark.parametrize("wrapped", [
    CFG,
    # LoRA on the LM head too: it sees response positions only, (n_tokens, hidden), the
    # per-row split of that layout
    TrainConfig(model="tiny", bf16_autocast=False, lora_r=4,
                target_modules=("q_proj", "v_proj", "down_proj", "lm_head")),
], indirect=True, ids=["all-linear", "with-lm-head"])
def test_batched_per_sample_gradients_equal_a_per_instance_loop(wrapped):
    model, tok, enc = wrapped
    model.train()
    examples = [enc[i] for i in IDS[:7]]
    assert len({len(ex.input_ids) for ex in examples}) > 2  # padding is exercised
    batched = per_sample_gradients(model, examples, tok.pad_token_id)
    assert model.training  # the caller's mode comes back
    reference = loop_gradients(model, tok, examples)
    assert set(batched) == set(reference[0])
    for b, ref in enumerate(reference):
        for name, g in ref.items():
            assert batched[name][b].shape == g.shape
            torch.testing.assert_close(batched[name][b], g, atol=1e-5, rtol=0)
    # both LoRA factors carry gradient, and instances differ
    some_a = next(n for n in batched if "lora_A" in n)
    assert batched[some_a].abs().max() > 1e-3
    assert not torch.allclose(batched[some_a][0], batched[some_a][1])


def test_bf16_autocast_gradients_follow_the_fp32_ones(wrapped):
    """Under bf16 autocast (the book's CPU setting) each instance's gradient is the fp32 one
    up to bf16 rounding (8 bits of mantissa: cosine far above 0.99; the random adapters'
    per-instance gradients cancel over tokens, measured 0.9975-0.9999), on average at least
    as close as autograd's own gradient under the same autocast (which rounds the weight
    gradients to bf16; the batched path forms them in fp32)."""
    model, tok, enc = wrapped
    examples = [enc[i] for i in IDS[:6]]
    exact = flat(per_sample_gradients(model, examples, tok.pad_token_id))
    bf16 = flat(per_sample_gradients(model, examples, tok.pad_token_id, bf16_autocast=True))
    cos = torch.nn.functional.cosine_similarity(exact, bf16, dim=1)
    assert (cos > 0.995).all(), cos
    assert not torch.equal(exact, bf16)  # autocast was on
    with torch.autocast("cpu", dtype=torch.bfloat16), lora_under_autocast(model, True, "cpu"):
        loop = torch.stack([flat({n: g[None] for n, g in ref.items()})[0]
                            for ref in loop_gradients(model, tok, examples)])
    loop_cos = torch.nn.functional.cosine_similarity(exact, loop, dim=1)
    assert (loop_cos > 0.99).all(), loop_cos
    assert (1 - cos).mean() <= (1 - loop_cos).mean(), (cos, loop_cos)


def test_eval_mode_features_do_not_depend_on_dropout(wrapped):
    model, tok, enc = wrapped
    model.train()  # lora_dropout 0.05 would draw masks in train mode
    a = gradient_features(model, tok, enc, IDS[:4], dim=256)
    b = gradient_features(model, tok, enc, IDS[:4], dim=256)
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ the projection


def test_features_are_the_count_sketch_of_the_gradients(wrapped):
    model, tok, enc = wrapped
    ids = IDS[:5]
    grads = per_sample_gradients(model, [enc[i] for i in ids], tok.pad_token_id)
    sketch = CountSketch({n: g[0].numel() for n, g in grads.items()}, dim=128, seed=3)
    dense = sketch.matrix()
    assert (dense.abs().sum(1) == 1).all()  # one ±1 per parameter
    expected = (flat(grads) @ dense).numpy()
    feats = gradient_features(model, tok, enc, ids, dim=128, seed=3, batch_size=2)
    np.testing.assert_allclose(feats, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("wrapped", [TrainConfig(model="tiny", bf16_autocast=False, lora_r=16)],
                         indirect=True)
def test_projection_preserves_cosines(wrapped):
    """A CountSketch estimates a cosine with error of standard deviation at most
    ``(1 - cos²) / sqrt(dim)`` (as a dense Gaussian sketch does). With dim = 1024 that is
    <= 0.031: the 66 pairs' mean absolute error should be ~0.8 of that, and the largest below
    5 sigma (a chance of about 4e-5 for the worst pair)."""
    model, tok, enc = wrapped
    dim = 1024
    n_params = sum(layer.weight.numel() for layer in lora_weights(model).values())
    assert n_params >= 4 * dim  # a real reduction
    grads = flat(per_sample_gradients(model, [enc[i] for i in IDS], tok.pad_token_id)).numpy()
    true = cosines(grads)
    assert true.std() > 0.1  # a spread of cosines to preserve (a broken sketch would not)
    est = cosines(gradient_features(model, tok, enc, IDS, dim=dim))
    err = np.abs(est - true)
    sigma = 1 / math.sqrt(dim)
    assert err.mean() <= 1.5 * sigma
    assert err.max() <= 5 * sigma
    # the rank order of similarities (what nearest/farthest-first uses) survives
    assert np.corrcoef(np.argsort(np.argsort(est)), np.argsort(np.argsort(true)))[0, 1] > 0.95


def test_same_seed_same_features_other_seed_other_features(wrapped):
    model, tok, enc = wrapped
    a = gradient_features(model, tok, enc, IDS[:6], dim=64, seed=0)
    b = gradient_features(model, tok, enc, IDS[:6], dim=64, seed=0, batch_size=4)
    c = gradient_features(model, tok, enc, IDS[:6], dim=64, seed=1)
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)  # batching does not matter
    np.testing.assert_array_equal(a, gradient_features(model, tok, enc, IDS[:6], dim=64))
    assert not np.allclose(a, c, atol=1e-3)
    assert a.dtype == np.float32 and a.shape == (6, 64)


def test_rows_follow_ids_order_with_repeats(wrapped):
    model, tok, enc = wrapped
    feats = gradient_features(model, tok, enc, ["i3", "i0", "i3"], dim=32)
    alone = gradient_features(model, tok, enc, ["i0"], dim=32)
    np.testing.assert_array_equal(feats[0], feats[2])
    np.testing.assert_allclose(feats[1], alone[0], atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------ run level and cache


def run_state(cfg: TrainConfig, seed: int = 5) -> dict[str, torch.Tensor]:
    """A trained-looking adapter state with this config's names (what a final state holds)."""
    base, _ = tiny_model()
    model = _wrap(base, cfg)
    randomise(model, seed)
    state = _trainable_state(model)
    _unwrap(model, cfg)
    return state


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """ZSG_HOME in a temporary folder, and a count of real feature computations."""
    monkeypatch.setenv("ZSG_HOME", str(tmp_path))
    calls = []
    real = gradient_cache.gradient_features

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(gradient_cache, "gradient_features", counting)
    return calls, tmp_path / "gradients"


def test_features_for_caches_by_state(counted):
    calls, folder = counted
    state = run_state(CFG)
    t = table()
    announced = []
    first = features_for(CFG, t, state, dim=64, on_compute=announced.append)
    assert len(calls) == 1 and len(list(folder.glob("*.npy"))) == 1
    again = features_for(CFG, t, state, dim=64, on_compute=announced.append)
    assert len(calls) == 1  # read from disk
    assert announced == [len(t)]  # told once: when computing, not on the hit
    np.testing.assert_array_equal(first, again)

    changed = {k: v.clone() for k, v in state.items()}
    name = next(k for k in changed if "lora_A" in k)
    changed[name][0, 0] += 0.5  # one LoRA weight
    other = features_for(CFG, t, changed, dim=64)
    assert len(calls) == 2 and len(list(folder.glob("*.npy"))) == 2
    assert not np.allclose(first, other, atol=1e-4)

    fresh = features_for(CFG, t, None, dim=64)  # the fresh adapter of cfg.seed: another key
    assert len(calls) == 3
    assert not np.allclose(first, fresh, atol=1e-4)
    features_for(CFG, t, state, dim=64, seed=1)
    features_for(CFG, t, state, dim=32)
    features_for(CFG, table(5), state, dim=64)
    features_for(TrainConfig(model="tiny", bf16_autocast=False, lora_r=4, lora_alpha=2), t,
                 state, dim=64)
    assert len(calls) == 7  # seed, dim, instances and LoRA scaling are in the key
    features_for(CFG, t, state, dim=64, cache=False)
    assert len(calls) == 8 and len(list(folder.glob("*.npy"))) == 7


def test_features_for_matches_gradient_features(counted):
    _, folder = counted
    state = run_state(CFG)
    t = table()
    got = features_for(CFG, t, state, dim=64, cache=False)
    base, tok = tiny_model()
    model = _wrap(base, CFG)
    model.load_state_dict(state, strict=False)
    enc, _ = encode_many(tok, IDS[:6], CONVS[:6])
    want = gradient_features(model, tok, enc, IDS[:6], dim=64)
    _unwrap(model, CFG)
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=1e-5)
    assert not folder.exists()  # cache=False writes nothing


def test_unreadable_cache_is_recomputed(counted):
    calls, folder = counted
    state = run_state(CFG)
    first = features_for(CFG, table(), state, dim=16)
    (path,) = folder.glob("*.npy")
    path.write_bytes(b"not a numpy file")
    with pytest.warns(UserWarning, match="unreadable"):
        again = features_for(CFG, table(), state, dim=16)
    assert len(calls) == 2
    np.testing.assert_array_equal(first, again)


# ------------------------------------------------------------------ bad input, before any work


@pytest.fixture
def no_work(monkeypatch):
    """Any model load or gradient computation fails the test."""
    def forbidden(*args, **kwargs):
        raise AssertionError("work was done before the input was checked")

    monkeypatch.setattr(gradient_cache, "load_model", forbidden)
    monkeypatch.setattr(gradients, "_per_sample_parts", forbidden)


@pytest.mark.parametrize("dim", [0, -3])
def test_dim_below_one(wrapped, no_work, dim):
    model, tok, enc = wrapped
    with pytest.raises(TrainError, match=rf"dim={dim}"):
        gradient_features(model, tok, enc, IDS[:2], dim=dim)
    with pytest.raises(TrainError, match=rf"dim={dim}"):
        features_for(CFG, table(), dim=dim)


def test_dim_above_the_parameter_count(wrapped, monkeypatch):
    model, tok, enc = wrapped
    n = sum(layer.weight.numel() for layer in lora_weights(model).values())
    assert gradient_features(model, tok, enc, IDS[:1], dim=n).shape == (1, n)
    monkeypatch.setattr(gradients, "_per_sample_parts", None)  # must not get that far
    with pytest.raises(TrainError, match=rf"dim={n + 1}: larger than the {n} trainable"):
        gradient_features(model, tok, enc, IDS[:1], dim=n + 1)
    monkeypatch.setattr(gradient_cache, "gradient_features", None)
    with pytest.raises(TrainError, match=rf"dim={n + 1}"):
        features_for(CFG, table(), dim=n + 1, cache=False)


def test_full_fine_tuning_is_refused(no_work):
    with pytest.raises(ConfigError, match="method") as info:
        features_for(TrainConfig(model="tiny", method="full"), table(), dim=8)
    assert info.value.key == "method"


def test_model_without_lora_adapters(monkeypatch):
    monkeypatch.setattr(gradients, "_per_sample_parts", None)
    model, tok = tiny_model()
    with pytest.raises(TrainError, match="^method: the model has no trainable LoRA"):
        gradient_features(model, tok, {}, [], dim=8)
    for p in model.parameters():  # full fine-tuning: everything trainable, no adapters
        p.requires_grad_(True)
    with pytest.raises(TrainError, match="^method"):
        gradient_features(model, tok, {}, [], dim=8)


def test_lora_plus_other_trainable_parameters(wrapped, no_work):
    model, tok, enc = wrapped
    next(p for n, p in model.named_parameters() if "norm" in n).requires_grad_(True)
    with pytest.raises(TrainError, match="^method: 1 trainable parameters are not LoRA"):
        gradient_features(model, tok, enc, IDS[:1], dim=8)


def test_id_missing_from_encoded(wrapped, no_work):
    model, tok, enc = wrapped
    with pytest.raises(TrainError, match="ids: 1 id.*'nope'"):
        gradient_features(model, tok, enc, ["i0", "nope"], dim=8)


def test_zero_response_tokens_name_the_id(wrapped, no_work, monkeypatch):
    model, tok, _ = wrapped
    enc, _ = encode_many(tok, ["a", "b"], [conv("q", "a"), conv("q", "b")], max_target_len=0)
    with pytest.raises(TrainError, match="instance 'a' has zero response tokens"):
        gradient_features(model, tok, enc, ["a", "b"], dim=8)
    monkeypatch.undo()  # features_for loads the model to encode; it must stop before grads
    monkeypatch.setattr(gradient_cache, "gradient_features", None)
    cut = TrainConfig(model="tiny", bf16_autocast=False, lora_r=4, max_target_len=0)
    with pytest.raises(TrainError, match="instance 'i0' has zero response tokens"):
        features_for(cut, table(2), dim=8, cache=False)


def test_state_that_does_not_fit_the_config(monkeypatch):
    monkeypatch.setattr(gradient_cache, "gradient_features", None)
    state = run_state(CFG)
    with pytest.raises(TrainError, match="^state: its names do not match"):
        features_for(TrainConfig(model="tiny", bf16_autocast=False, lora_r=4,
                                 target_modules=("q_proj",)), table(), state, dim=8)
    wrong = run_state(TrainConfig(model="tiny", bf16_autocast=False, lora_r=2))
    with pytest.raises(TrainError, match="^state: .* has shape"):
        features_for(CFG, table(), wrong, dim=8)
    with pytest.raises(TrainError, match="^state: got a whole final state"):
        features_for(CFG, table(), {"trainable": state, "step": 3}, dim=8)
