"""QLoRA on the CPU (issue 27): 4-bit base weights wherever bitsandbytes runs them, the whole
run in 4-bit on a tiny saved model folder, and the errors of bad input."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch
from factories import conv, save_tiny_model

from zsg_lib.errors import ParamsError, TrainError
from zsg_lib.schema import instances_from_records
from zsg_lib.train import TrainConfig, compiled, models, quantized, records as runs, train_run
from zsg_lib.train.config import ConfigError
from zsg_lib.train.generation import generate_greedy
from zsg_lib.train.gradients import gradient_features
from zsg_lib.train.inference import merged_lora
from zsg_lib.train.loop import _unwrap, _wrap
from zsg_lib.train.prompts import encode_many
from zsg_lib.train.scoring import score_examples

TRAIN = instances_from_records([{"id": f"t{i}", "task": f"k{i % 3}",
                                 "messages": conv(f"{i} + {i}?", str(2 * i))} for i in range(24)])
TEST = instances_from_records([{"id": f"x{i}", "task": f"k{i % 3}",
                                "messages": conv(f"{i} + 1?", str(i + 1))} for i in range(5)])
IDS = TRAIN.column("id").to_pylist()
# dropout on and a cosine schedule: resume and branch must carry RNG and schedule state too
QLORA = dict(method="qlora", bf16_autocast=False, learning_rate=1e-2, lora_r=4,
             lora_dropout=0.1, schedule="cosine", batch_size=2, eval_every=2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    """A tiny LLaMA saved as a safetensors folder (hidden size 64: whole 4-bit blocks)."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny", hidden_size=64,
                           intermediate_size=128)


def _frames(rec) -> tuple[pd.DataFrame, pd.DataFrame]:
    return rec.log.drop(columns=["seconds"]), rec.scores


# ----------------------------------------------------------------------------- where 4-bit runs


def test_4bit_is_decided_by_what_bitsandbytes_runs(monkeypatch):
    quantized.check_4bit("cpu")  # no CUDA here: the CPU kernels of bitsandbytes
    with pytest.raises(TrainError, match="cannot run nf4 weights on device 'meta'"):
        quantized.check_4bit("meta")  # a device torch knows and bitsandbytes does not run
    monkeypatch.setattr(quantized, "bitsandbytes_version", lambda: "0.45.5")
    with pytest.raises(TrainError, match=r"0\.45\.5 is older than 0\.49.*zsg\[qlora\]"):
        quantized.check_4bit("cpu")
    monkeypatch.setattr(quantized, "bitsandbytes_version", lambda: None)
    with pytest.raises(TrainError, match=r"not installed: pip install 'zsg\[qlora\]'"):
        models.load_model("anything", precision="4bit", device="cpu")


def test_a_folder_loads_in_nf4_with_double_quantization(folder):
    model, tok = models.load_model(folder, "4bit", "cpu")
    layers = [m for m in model.modules() if quantized.is_4bit_layer(m)]
    assert len(layers) == 7 * model.config.num_hidden_layers  # q k v o gate up down
    state = layers[0].weight.quant_state
    assert (state.quant_type, state.nested) == ("nf4", True)
    assert all(layer.support_avx512bf16_for_cpu is False for layer in layers)  # one layout
    assert model.get_input_embeddings().weight.dtype == torch.float32
    assert quantized.describe(model, "4bit")["layers_4bit"] == len(layers)
    with pytest.raises(TrainError, match="tiny models have no 4-bit form"):
        models.load_model("tiny", "4bit", "cpu")


def test_bad_model_folders_are_named(folder, tmp_path):
    no_weights = tmp_path / "no-weights"
    shutil.copytree(folder, no_weights, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(TrainError, match="no-weights"):
        models.load_model(str(no_weights), "4bit", "cpu")
    other = tmp_path / "other-architecture"
    shutil.copytree(folder, other)
    from transformers import LlamaConfig, ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
              intermediate_size=64).save_pretrained(other)
    with pytest.raises(TrainError, match="other-architecture.*not one of a causal language"):
        models.load_model(str(other), "4bit", "cpu")
    wider = tmp_path / "wider"
    shutil.copytree(folder, wider)
    config = LlamaConfig.from_pretrained(folder)
    config.hidden_size, config.intermediate_size = 128, 256
    config.save_pretrained(wider)
    with pytest.raises(TrainError, match="wider.*weights do not fit its config"):
        models.load_model(str(wider), "4bit", "cpu")


def test_full_fine_tuning_of_4bit_weights_is_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="precision: 4-bit weights cannot be trained"):
        TrainConfig(method="full", precision="4bit")
    from zsg_lib.profiles.params import load_profile

    with pytest.raises(ParamsError, match=r"paper-gpu\.yaml \(overrides\): precision: 4-bit"):
        load_profile("paper-gpu", {"train.method": "full"}, check_paths=False)


# ----------------------------------------------------------------------------- stages on 4-bit


def _dequantized_twin(quant, folder: str):
    """The fp32 model whose linear weights are exactly the 4-bit model's, dequantized."""
    return _dequantized_into(quant, models.tiny_model(hidden_size=64, intermediate_size=128)[0])


def _dequantized_into(quant, twin):
    """``twin`` (the same model in fp32) with each 4-bit layer's weight dequantized in."""
    import bitsandbytes.functional as bf

    layers = dict(twin.named_modules())
    with torch.no_grad():
        for name, module in quant.named_modules():
            if quantized.is_4bit_layer(module):
                w = module.weight
                layers[name].weight.copy_(bf.dequantize_4bit(w.data, w.quant_state))
    return twin.eval()


def test_adapters_on_4bit_layers_score_generate_and_give_gradients(folder, random_adapters):
    """Each stage on 4-bit layers computes what the same adapters compute on the dequantized
    weights in fp32; folding LoRA for scoring is the stage skipped for 4-bit layers."""
    base, tok = models.load_model(folder, "4bit", "cpu")
    twin = _dequantized_twin(base, folder)
    cfg = TrainConfig(method="qlora", lora_r=4, bf16_autocast=False)
    quant_model = _wrap(base, cfg)
    twin_model = _wrap(twin, TrainConfig(lora_r=4, bf16_autocast=False, precision="fp32"))
    try:
        for m in (quant_model, twin_model):
            random_adapters(m, seed=1, scale=0.1)
        ids = TEST.column("id").to_pylist()
        enc, _ = encode_many(tok, ids, TEST.column("messages").to_pylist())
        with merged_lora(quant_model) as n_quant, merged_lora(twin_model) as n_twin:
            assert n_quant == 0 and n_twin == 7 * 2  # folding: skipped on 4-bit layers only
        got, want = (pd.DataFrame(score_examples(m, enc, ids, tok.pad_token_id))
                     for m in (quant_model, twin_model))
        assert (got["loss"] - want["loss"]).abs().max() < 1e-4
        assert generate_greedy(quant_model, tok, enc, ids, 4) == \
            generate_greedy(twin_model, tok, enc, ids, 4)
        f_quant, f_twin = (gradient_features(m, tok, enc, ids, dim=64, seed=0)
                           for m in (quant_model, twin_model))
        assert abs(f_quant).sum() > 0
        assert abs(f_quant - f_twin).max() < 1e-3 * abs(f_twin).max()
    finally:
        _unwrap(quant_model, cfg)
    assert all(quantized.is_4bit_layer(base.get_submodule(f"model.layers.0.{n}"))
               for n in ("self_attn.q_proj", "mlp.down_proj"))  # the cached base is whole again


def test_4bit_runs_are_never_compiled(monkeypatch):
    monkeypatch.setenv(compiled.ENV, "1")  # even where compiling is forced
    assert not compiled.wanted(TrainConfig(method="qlora"), "cpu")
    assert not compiled.wanted(TrainConfig(precision="4bit", bf16_autocast=False), "cpu")
    assert compiled.wanted(TrainConfig(precision="fp32", bf16_autocast=False), "cpu")


# ----------------------------------------------------------------------------- whole runs


def test_a_4bit_run_is_recorded_as_such_and_repeats_exactly(folder, tmp_path):
    cfg = TrainConfig(model=folder, **QLORA, max_steps=6, generate_at=(6,), max_new_tokens=3)
    a, b = (train_run(cfg, TRAIN, TEST, IDS, runs_root=tmp_path / r, progress=False)
            for r in ("a", "b"))
    assert a.params["config"]["method"] == "qlora"
    assert a.params["precision"] == {**a.params["precision"], "weights": "4bit",
                                     "quant_type": "nf4", "double_quant": True,
                                     "compute_dtype": "float32"}
    assert a.params["precision"]["bitsandbytes"] == quantized.bitsandbytes_version()
    assert sorted(a.scores["step"].unique()) == [0, 2, 4, 6]
    assert a.scores["prediction"].notna().sum() == len(TEST)  # generated at step 6
    log_a, scores_a = _frames(a)
    log_b, scores_b = _frames(b)
    pd.testing.assert_frame_equal(log_a, log_b)  # same seed: the same records, bit for bit
    pd.testing.assert_frame_equal(scores_a, scores_b)
    assert log_a["train_loss"].iloc[-2:].mean() < log_a["train_loss"].iloc[:2].mean()


def _interrupted(cfg: TrainConfig, root, at: int):
    """Train until ``at``, where the process 'dies' (after the checkpoint before it)."""
    def die(step, _row):
        if step == at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, TRAIN, TEST, IDS, runs_root=root, progress=False, on_step=die)
    run_dir = next(root.glob(f"*/{runs.CHECKPOINT}")).parent
    assert not runs.is_done(run_dir)
    return run_dir


def test_a_4bit_run_resumes_to_the_uninterrupted_records(folder, tmp_path):
    cfg = TrainConfig(model=folder, **QLORA, max_steps=8, checkpoint_every=2)
    run_dir = _interrupted(cfg, tmp_path / "killed", at=5)
    models.clear_cache()  # as a new process: the base quantized again from the folder
    resumed = train_run(cfg, TRAIN, TEST, IDS, runs_root=tmp_path / "killed", progress=False)
    whole = train_run(cfg, TRAIN, TEST, IDS, runs_root=tmp_path / "whole", progress=False)
    assert resumed.path == run_dir and resumed.summary["resumed_from"] == 4
    for got, want in zip(_frames(resumed), _frames(whole)):
        pd.testing.assert_frame_equal(got, want, check_exact=False, atol=1e-6, rtol=0)


def test_4bit_branches_continue_their_warm_up(folder, tmp_path):
    base = {**QLORA, "schedule_steps": 6}
    warm = train_run(TrainConfig(model=folder, **base, max_steps=2, keep_final_state=True),
                     TRAIN, TEST, IDS[:4], runs_root=tmp_path, progress=False)
    arm = train_run(TrainConfig(model=folder, **base, max_steps=4), TRAIN, TEST, IDS[4:12],
                    runs_root=tmp_path, progress=False, start_from=warm)
    whole = train_run(TrainConfig(model=folder, **base, max_steps=6), TRAIN, TEST, IDS[:12],
                      runs_root=tmp_path, progress=False)
    tail = whole.log[whole.log["step"] > 2].reset_index(drop=True)
    pd.testing.assert_series_equal(arm.log["train_loss"], tail["train_loss"], atol=1e-5)
    got = arm.scores.set_index(["step", "id"])["loss"]
    want = whole.scores.set_index(["step", "id"])["loss"]
    pd.testing.assert_series_equal(got.loc[6], want.loc[6], atol=1e-5)


@pytest.mark.parametrize("other", [{"precision": "fp32", "method": "lora"}, {"lora_r": 8}],
                         ids=["bf16-or-fp32-state", "another-rank"])
def test_a_checkpoint_of_another_run_is_refused_and_kept(folder, tmp_path, other):
    cfg = TrainConfig(model=folder, **QLORA, max_steps=6, checkpoint_every=1)
    run_dir = _interrupted(cfg, tmp_path / "mine", at=3)
    foreign = _interrupted(TrainConfig(model=folder, **{**QLORA, **other}, max_steps=6,
                                       checkpoint_every=1), tmp_path / "theirs", at=3)
    shutil.copy(foreign / runs.CHECKPOINT, run_dir / runs.CHECKPOINT)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(TrainError, match=f"{run_dir}: its saved state"):
        train_run(cfg, TRAIN, TEST, IDS, runs_root=tmp_path / "mine", progress=False)
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()
             if p.name != runs.LOCK}
    assert after == {k: v for k, v in before.items() if k != runs.LOCK}  # nothing overwritten


@pytest.mark.slow
def test_the_embedded_model_runs_in_4bit(tmp_path):
    """SmolLM2 quantized from its fp32 cache: a short QLoRA run whose step-0 losses (fresh
    adapters add nothing) are those of the fp32 model carrying the dequantized weights, so
    the run differs from an fp32 run by the quantization alone (bench/bench_qlora.py
    measures how much: NF4 moves each of SmolLM2's weight matrices by ~10% of its norm)."""
    import copy

    train = instances_from_records([{"id": f"t{i}", "task": "add",
                                     "messages": conv(f"{i}+{i}?", str(2 * i))} for i in range(4)])
    test = instances_from_records([{"id": f"x{i}", "task": "add",
                                    "messages": conv(f"{i}+1?", str(i + 1))} for i in range(4)])
    cfg = TrainConfig(method="qlora", batch_size=2, eval_every=2, generate_at=(2,),
                      max_new_tokens=4, bf16_autocast=False)
    run = train_run(cfg, train, test, ["t0", "t1", "t2", "t3"], runs_root=tmp_path,
                    progress=False)
    described = run.params["precision"]
    assert (described["weights"], described["quant_type"]) == ("4bit", "nf4")
    assert described["layers_4bit"] == 7 * 30  # every linear layer of SmolLM2's 30 blocks
    assert run.scores["prediction"].notna().sum() == len(test)
    assert run.log["train_loss"].notna().all()

    quant, tok = models.load_model(None, "4bit", "cpu")
    twin = _dequantized_into(quant, copy.deepcopy(models.load_model(None, "fp32", "cpu")[0]))
    ids = test.column("id").to_pylist()
    enc, _ = encode_many(tok, ids, test.column("messages").to_pylist(),
                         max_source_len=cfg.max_source_len, max_target_len=cfg.max_target_len)
    want = pd.DataFrame(score_examples(twin, enc, ids, tok.pad_token_id)).set_index("id")["loss"]
    got = run.scores[run.scores["step"] == 0].set_index("id")["loss"]
    assert (got - want).abs().max() < 1e-3
