"""GPU check: QLoRA (4-bit) and bf16 LoRA steps on a LLaMA-2-7B-shaped random-init model.

No weights can reach the GPU machine, and throughput does not depend on them, so the model is
built from a LLaMA-2-7B config with random weights. For each mode it runs a few warm-up steps,
then timed optimizer steps through zsg's own loss (response-only LM head), and reports tokens/s,
model FLOPs utilisation (MFU: the usual 6 x params x tokens/s over the GPU's dense bf16 peak;
LoRA skips the weight gradients of frozen layers, so ~4 x params x tokens/s is the work really
done: read MFU as "as fast as full training at this MFU") and peak GPU memory.

    python bench/gpu_check.py                  # both modes, batch 4 x 512 tokens
    python bench/gpu_check.py --modes lora --batch 8 --seq 1024

Needs CUDA, and bitsandbytes for the 4-bit mode. Writes a JSON summary to $OUT if set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsg_lib.train.batching import Batch  # noqa: E402
from zsg_lib.train.forward import response_token_losses  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}


def llama2_7b_config(layers: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=32000, hidden_size=4096, intermediate_size=11008,
        num_hidden_layers=layers, num_attention_heads=32, num_key_value_heads=32,
        max_position_embeddings=4096, rms_norm_eps=1e-5, tie_word_embeddings=False,
    )


def build(mode: str, layers: int):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import LlamaForCausalLM

    cfg = llama2_7b_config(layers)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    if mode == "qlora":
        # Quantise the random bf16 weights in place: save to a temp folder and reload in NF4
        # (the path a real checkpoint takes).
        import tempfile

        from transformers import BitsAndBytesConfig

        tmp = tempfile.mkdtemp()
        model.save_pretrained(tmp)
        del model
        torch.cuda.empty_cache()
        model = LlamaForCausalLM.from_pretrained(
            tmp, device_map={"": 0}, dtype=torch.bfloat16,
            quantization_config=BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16),
        )
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    lcfg = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    return get_peft_model(model, lcfg), n_params


def run_mode(mode: str, batch: int, seq: int, steps: int, layers: int, peak: float) -> dict:
    torch.cuda.reset_peak_memory_stats()
    model, n_params = build(mode, layers)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, 32000, (batch, seq), device="cuda")
    labels = ids.clone()
    labels[:, : seq // 2] = -100  # half prompt, half response, as in instruction data
    b = Batch(ids, torch.ones_like(ids), labels)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            sums, n = response_token_losses(model, b)
        (sums.sum() / n.sum()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    tok_s = batch * seq / dt
    mfu = 6 * n_params * tok_s / (peak * 1e12)
    out = {"mode": mode, "layers": layers, "params": n_params, "batch": batch, "seq": seq,
           "s_per_step": dt, "tokens_per_s": tok_s, "mfu": mfu,
           "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30}
    model = opt = None  # free the GPU memory before the next mode (step() holds cells)
    torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="qlora,lora")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--layers", type=int, default=32, help="32 = LLaMA-2-7B")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device on this machine")
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), 989.0)
    print(f"device {name}; dense bf16 peak assumed {peak} TFLOP/s", flush=True)
    results = []
    for mode in a.modes.split(","):
        r = run_mode(mode, a.batch, a.seq, a.steps, a.layers, peak)
        results.append(r)
        print(f"{mode:6s}: {r['tokens_per_s']:.0f} tok/s, {r['s_per_step']:.3f} s/step, "
              f"MFU {100 * r['mfu']:.1f}%, peak {r['peak_mem_gib']:.1f} GiB", flush=True)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(json.dumps(
            {"device": name, "results": results}, indent=2))


if __name__ == "__main__":
    main()
