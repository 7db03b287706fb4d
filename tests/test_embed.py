"""Embedding cache and the embedded default model."""

from __future__ import annotations

import numpy as np
import pytest

from zsg_lib.embed import (
    EmbeddingCache,
    default_model_path,
    embed_instances,
    embed_texts,
    model_identity,
)
from zsg_lib.errors import ZsgError
from zsg_lib.schema import instances_from_records


class Counting:
    """A stand-in model: a deterministic vector per text, counting what it was asked."""

    zsg_identity = "counting-v1"

    def __init__(self, fail_after: int | None = None):
        self.seen: list[str] = []
        self.fail_after = fail_after

    def encode(self, texts, batch_size=64, **kw):
        if self.fail_after is not None and len(self.seen) >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.seen += list(texts)
        rng = [np.random.default_rng(abs(hash(t)) % 2**32) for t in texts]
        return np.stack([3.0 * r.normal(size=8) for r in rng])


def texts(n, prefix="t"):
    return [f"{prefix} {i} " + "x" * (i % 7) for i in range(n)]


def test_second_call_reads_the_cache_and_new_texts_only_are_computed(tmp_path):
    model = Counting()
    first = embed_texts(texts(10), model=model, cache_dir=tmp_path, progress=False)
    assert len(model.seen) == 10
    assert first.dtype == np.float32 and first.shape == (10, 8)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)
    again = embed_texts(texts(10), model=model, cache_dir=tmp_path, progress=False)
    assert len(model.seen) == 10 and np.array_equal(first, again)
    mixed = embed_texts(texts(10)[::-1] + ["new one", "new one"], model=model,
                        cache_dir=tmp_path, progress=False)
    assert model.seen[10:] == ["new one"]  # only the new text, once
    assert np.array_equal(mixed[:10], first[::-1]) and np.array_equal(mixed[10], mixed[11])


def test_interrupted_run_keeps_finished_shards_and_leaves_no_partial_file(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        embed_texts(texts(25), model=Counting(fail_after=10), cache_dir=tmp_path,
                    progress=False, batch_size=5, shard_size=10)
    shard_dir = next(tmp_path.iterdir())
    files = sorted(p.name for p in shard_dir.iterdir())
    assert len(files) == 1 and files[0].startswith("shard-")  # no .tmp-* left behind
    model = Counting()
    out = embed_texts(texts(25), model=model, cache_dir=tmp_path, progress=False,
                      batch_size=5, shard_size=10)
    assert len(model.seen) == 15 and out.shape == (25, 8)
    assert np.array_equal(out, embed_texts(texts(25), model=Counting(), cache_dir=False,
                                           progress=False))


def test_unreadable_shard_is_skipped_not_trusted(tmp_path):
    embed_texts(texts(3), model=Counting(), cache_dir=tmp_path, progress=False)
    shard = next(next(tmp_path.iterdir()).glob("shard-*.npz"))
    shard.write_bytes(shard.read_bytes()[:40])  # damaged outside zsg
    model = Counting()
    with pytest.warns(UserWarning, match="unreadable"):
        out = embed_texts(texts(3), model=model, cache_dir=tmp_path, progress=False)
    assert len(model.seen) == 3 and out.shape == (3, 8)


def test_cache_keys_depend_on_model_and_precision(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"a": 1}')
    a = model_identity(tmp_path / "m")
    assert a == model_identity(tmp_path / "m")
    assert a != model_identity(tmp_path / "m", precision="bf16")
    (tmp_path / "m" / "config.json").write_text('{"a": 2}')
    assert a != model_identity(tmp_path / "m")
    assert model_identity(object()) is None  # unknown objects are never cached


def test_cache_store_round_trip(tmp_path):
    cache = EmbeddingCache(tmp_path)
    keys = np.array([b"a" * 64, b"b" * 64], dtype="S64")
    cache.write(keys, np.eye(2, dtype=np.float64))
    got = cache.lookup(np.array([b"b" * 64, b"c" * 64], dtype="S64"))
    assert list(got) == [b"b" * 64] and got[b"b" * 64].tolist() == [0.0, 1.0]


def test_views_and_bad_arguments(tmp_path):
    msgs = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    table = instances_from_records([{"id": "i", "messages": msgs}])
    model = Counting()
    embed_instances(table, "first_turn", model=model, cache_dir=False, progress=False)
    embed_instances(table, model=model, cache_dir=False, progress=False)
    assert model.seen == ["q1 a1", "q1 a1 q2 a2"]
    with pytest.raises(ZsgError, match="precision"):
        embed_texts(["x"], model=model, precision="fp16")
    assert embed_texts([], model=model, cache_dir=False).shape == (0, 0)


def test_default_model_is_found_without_importing_it():
    path = default_model_path()
    assert (path / "modules.json").is_file() and (path / "model.safetensors").is_file()


@pytest.mark.slow
def test_default_model_embeds_offline_fp32_and_bf16(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sents = ["The cat sat on the mat.", "A cat is sitting on a mat.", "Stock prices fell."]
    e = embed_texts(sents, cache_dir=tmp_path, progress=False, device="cpu")
    assert e.shape == (3, 384) and e.dtype == np.float32
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3  # paraphrases are closer
    b = embed_texts(sents, cache_dir=tmp_path, progress=False, precision="bf16", device="cpu")
    assert b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, rtol=1e-5)
    assert np.all(np.sum(e * b, axis=1) > 0.99)
    assert len(list(next(tmp_path.iterdir()).glob("shard-*"))) == 1
    assert len(list(tmp_path.iterdir())) == 2  # fp32 and bf16 under separate keys
