"""The dequantised-GGUF cache: a tiny GGUF file built here, the embedded default (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from zsg_lib.train import gguf_cache, models


def write_tiny_gguf(path: Path, hidden: int = 32, layers: int = 2, heads: int = 4,
                    kv_heads: int = 2, ff: int = 64, seed: int = 0) -> Path:
    """A two-layer LLaMA GGUF (F32 tensors) with the tiny test tokenizer's vocabulary."""
    import gguf

    tok = models.build_tiny_tokenizer()
    spec = json.loads(tok.backend_tokenizer.to_str())
    added = {t["content"]: t["id"] for t in spec["added_tokens"]}
    tokens: list[str] = [""] * len(tok)
    for text, i in {**spec["model"]["vocab"], **added}.items():
        tokens[i] = text
    merges = [" ".join(m) if isinstance(m, list) else m for m in spec["model"]["merges"]]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(hidden // heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in added else gguf.TokenType.NORMAL
                       for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_unk_token_id(tok.unk_token_id)
    w.add_chat_template(models.CHATML_TEMPLATE)
    rng = np.random.default_rng(seed)
    head_dim = hidden // heads

    def tensor(name: str, *shape: int) -> None:
        w.add_tensor(name, rng.standard_normal(shape).astype(np.float32))

    tensor("token_embd.weight", len(tokens), hidden)
    tensor("output_norm.weight", hidden)
    tensor("output.weight", len(tokens), hidden)
    for b in range(layers):
        tensor(f"blk.{b}.attn_norm.weight", hidden)
        tensor(f"blk.{b}.ffn_norm.weight", hidden)
        tensor(f"blk.{b}.attn_q.weight", heads * head_dim, hidden)
        tensor(f"blk.{b}.attn_k.weight", kv_heads * head_dim, hidden)
        tensor(f"blk.{b}.attn_v.weight", kv_heads * head_dim, hidden)
        tensor(f"blk.{b}.attn_output.weight", hidden, heads * head_dim)
        tensor(f"blk.{b}.ffn_gate.weight", ff, hidden)
        tensor(f"blk.{b}.ffn_up.weight", ff, hidden)
        tensor(f"blk.{b}.ffn_down.weight", hidden, ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """A fresh cache root; every real dequantisation is appended to the returned list."""
    monkeypatch.setenv("ZSG_HOME", str(tmp_path / "home"))
    calls: list[str] = []
    real = gguf_cache._dequantize

    def spy(path, precision):
        calls.append(precision)
        return real(path, precision)

    monkeypatch.setattr(gguf_cache, "_dequantize", spy)
    return calls


def _same_model(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def test_miss_writes_hit_reads_the_same_weights(tiny_gguf, counted, capfd) -> None:
    direct, direct_tok = gguf_cache.load_gguf(tiny_gguf, "fp32", cache=False)
    assert counted == ["fp32"]
    folder = gguf_cache.gguf_cache_dir(tiny_gguf, "fp32")
    assert not folder.exists()

    first, _ = gguf_cache.load_gguf(tiny_gguf, "fp32")             # miss: dequantise, write
    assert counted == ["fp32", "fp32"] and (folder / gguf_cache.WEIGHTS_FILE).is_file()
    assert not list(folder.parent.glob(".stage-*")) and not list(folder.glob(".tmp-*"))
    second, tok = gguf_cache.load_gguf(tiny_gguf, "fp32")          # hit: no dequantisation
    assert counted == ["fp32", "fp32"]
    _same_model(direct, first)
    _same_model(direct, second)
    assert not hasattr(second.config, "quantization_config") and second.hf_quantizer is None
    text = "<|im_start|>user\nBonjour, 12!<|im_end|>"
    assert tok(text)["input_ids"] == direct_tok(text)["input_ids"]
    assert tok.chat_template == direct_tok.chat_template == models.CHATML_TEMPLATE
    # Neither path leaves transformers' progress bars in the output (notebooks keep them).
    out = capfd.readouterr()
    assert "de-quantizing" not in out.err + out.out
    assert "%|" not in out.err + out.out  # no tqdm bar at all (loading, saving)


def test_bf16_is_its_own_entry_and_matches_direct(tiny_gguf, counted) -> None:
    direct, _ = gguf_cache.load_gguf(tiny_gguf, "bf16", cache=False)
    gguf_cache.load_gguf(tiny_gguf, "bf16")
    cached, _ = gguf_cache.load_gguf(tiny_gguf, "bf16")
    assert counted == ["bf16", "bf16"]
    assert next(cached.parameters()).dtype == torch.bfloat16
    _same_model(direct, cached)
    assert gguf_cache.gguf_cache_dir(tiny_gguf, "bf16") != gguf_cache.gguf_cache_dir(tiny_gguf, "fp32")


def test_key_follows_file_bytes_and_transformers_version(tmp_path, monkeypatch) -> None:
    import transformers

    f = tmp_path / "m.gguf"
    f.write_bytes(b"one")
    a = gguf_cache.gguf_cache_dir(f, "fp32", root=tmp_path)
    assert a == gguf_cache.gguf_cache_dir(f, "fp32", root=tmp_path) and a.parent == tmp_path
    assert a.name.startswith("m-fp32-")
    monkeypatch.setattr(transformers, "__version__", "0.0.1")
    b = gguf_cache.gguf_cache_dir(f, "fp32", root=tmp_path)
    monkeypatch.undo()
    f.write_bytes(b"two, longer")  # new size: the memoised hash is not reused
    c = gguf_cache.gguf_cache_dir(f, "fp32", root=tmp_path)
    assert len({a, b, c}) == 3


def test_damaged_cache_is_rebuilt(tiny_gguf, counted) -> None:
    gguf_cache.load_gguf(tiny_gguf, "fp32")
    weights = gguf_cache.gguf_cache_dir(tiny_gguf, "fp32") / gguf_cache.WEIGHTS_FILE
    weights.write_bytes(b"not safetensors")
    with pytest.warns(UserWarning, match="unreadable model cache"):
        model, _ = gguf_cache.load_gguf(tiny_gguf, "fp32")
    assert counted == ["fp32", "fp32"] and weights.stat().st_size > 1000
    _same_model(model, gguf_cache.load_gguf(tiny_gguf, "fp32")[0])
    assert counted == ["fp32", "fp32"]


def test_unwritable_cache_still_loads(tiny_gguf, counted, monkeypatch) -> None:
    def refuse(*_):
        raise OSError("disk full")

    monkeypatch.setattr(gguf_cache, "_write_cached", refuse)
    with pytest.warns(UserWarning, match="could not cache"):
        model, _ = gguf_cache.load_gguf(tiny_gguf, "fp32")
    assert model.config.hidden_size == 32


def test_other_precisions_are_refused(tiny_gguf) -> None:
    with pytest.raises(models.TrainError, match="'4bit'"):
        gguf_cache.load_gguf(tiny_gguf, "4bit")


@pytest.mark.slow
def test_embedded_default_from_cache_equals_direct(tmp_path, monkeypatch, capfd) -> None:
    monkeypatch.setenv("ZSG_HOME", str(tmp_path))
    gguf_file = models.embedded_model_dir() / models.EMBEDDED_GGUF
    direct, _ = gguf_cache.load_gguf(gguf_file, "fp32", cache=False)
    gguf_cache.load_gguf(gguf_file, "fp32")
    cached, _ = gguf_cache.load_gguf(gguf_file, "fp32")
    _same_model(direct, cached)
    # The book's bf16 load leaves no advice about packed weights in chapter 1's output: the
    # weights are dequantised (no GGUF kernels here), so it does not apply.
    half, _ = gguf_cache.load_gguf(gguf_file, "bf16", cache=False)
    assert type(half.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    out = capfd.readouterr()
    assert "Loading a GGUF checkpoint" not in out.err + out.out
