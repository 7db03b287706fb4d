"""What a run costs, as arithmetic: FLOPs per token, memory of one run, time at a rate.

The one FLOP model of the project (``zsg plan`` and ``bench/book_flops.py`` both use it):

* a **LoRA step on a frozen base** multiplies ``4 N_body`` per token it runs (forward ``2 N``,
  the input gradients ``2 N``; the frozen weights get no gradient) and ``4 N_head`` per
  response position (the loop runs the LM head only where a response token is predicted),
  plus ``6`` per adapter parameter and token (forward, input and weight gradients);
  full fine-tuning also computes the weight gradients: ``6 N``;
* a **scoring pass** is a forward: ``2 N_body`` per test token, ``2 N_head`` per response
  position;
* **greedy generation** runs ``2 (N_body + N_head)`` per prompt token and per generated token
  (counted at ``max_new_tokens``: an upper bound, answers stop at their end token).

Attention's own products (``~ 4 d s`` per token and layer) are left out: at these lengths
they are a few percent. Memory of one run: base weights at their precision (4-bit NF4 with
double quantization: :data:`NF4_BITS` a parameter for the decoder's linear layers, the
embeddings, norms and LM head stay bf16), adapters, their gradients and AdamW's two moments in
fp32, and a rough count of the activations one micro-batch keeps for the backward.
No torch here: the measured rates come from :mod:`zsg_lib.train.gemm_rate`.

>>> s = ModelShape(n_body=100, n_head=10, n_embed=10, n_linear=90, lora_per_rank=8,
...                hidden=4, layers=2, kv_dim=4, intermediate=8, vocab=3, tied=True)
>>> train_flops(s, tokens=5, head_positions=2, lora_r=2)  # 4*100*5 + 4*10*2 + 6*16*5
2560
>>> forward_flops(s, tokens=5, head_positions=2)
1040
>>> round(weight_bytes(s, "4bit"))  # 90 linear weights at 4.127 bits, 20 others in bf16
86
"""

from __future__ import annotations

from dataclasses import dataclass

#: Bits a parameter of a 4-bit linear layer takes: NF4 codes (4 bits), one fp8 absmax per
#: block of 64 (0.125), and the fp32 second-level constants of double quantization per 256
#: blocks (~0.002) — bitsandbytes' ``bnb_4bit_use_double_quant``, as QLoRA reports (~4.127).
NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)
BYTES = {"fp32": 4.0, "bf16": 2.0}

#: NVIDIA H100 SXM5 (80 GB): dense bf16 tensor-core peak and HBM3 bandwidth (datasheet).
H100_BF16_FLOPS = 989.4e12
H100_HBM_BYTES_PER_S = 3.35e12
H100_MEMORY_BYTES = 80e9


@dataclass(frozen=True)
class ModelShape:
    """The parameter counts and sizes the cost model needs (read from a model's config).

    ``n_body``: parameters multiplied per token in the decoder (its layers and final norm;
    the embedding is a lookup, not a product); ``n_head``: the LM head (vocab × hidden);
    ``n_embed``: the input embedding (the head's own matrix when ``tied``); ``n_linear``:
    the weights of the decoder layers' linear projections (what 4-bit stores in NF4);
    ``lora_per_rank``: ``sum(in + out)`` over the linear layers LoRA adapts, so rank ``r``
    adds ``r * lora_per_rank`` parameters.
    """

    n_body: int
    n_head: int
    n_embed: int
    n_linear: int
    lora_per_rank: int
    hidden: int
    layers: int
    kv_dim: int
    intermediate: int
    vocab: int
    tied: bool
    #: one decoder layer's linear projections as ``(in, out)``, for timing their products
    layer_linears: tuple[tuple[int, int], ...] = ()
    source: str = ""

    @property
    def n_total(self) -> int:
        """Every parameter, a tied embedding counted once."""
        return self.n_body + self.n_head + (0 if self.tied else self.n_embed)


def lora_params(shape: ModelShape, lora_r: int, method: str = "lora") -> int:
    """Trainable parameters: the adapters (``lora``/``qlora``) or every weight (``full``)."""
    return shape.n_total if method == "full" else lora_r * shape.lora_per_rank


def train_flops(shape: ModelShape, tokens: float, head_positions: float, lora_r: int,
                method: str = "lora") -> float:
    """FLOPs of training on ``tokens`` tokens with ``head_positions`` response positions."""
    if method == "full":
        return 6 * (shape.n_body * tokens + shape.n_head * head_positions)
    return (4 * (shape.n_body * tokens + shape.n_head * head_positions)
            + 6 * lora_params(shape, lora_r) * tokens)


def forward_flops(shape: ModelShape, tokens: float, head_positions: float) -> float:
    """FLOPs of one forward (a scoring pass) over ``tokens`` with ``head_positions``."""
    return 2 * (shape.n_body * tokens + shape.n_head * head_positions)


def generate_flops(shape: ModelShape, prompt_tokens: float, new_tokens: float) -> float:
    """FLOPs of greedy generation: every prompt and generated token through the whole model."""
    return 2 * (shape.n_body + shape.n_head) * (prompt_tokens + new_tokens)


def weight_bytes(shape: ModelShape, precision: str) -> float:
    """Bytes of the base weights at ``precision`` (``fp32``, ``bf16``, ``4bit``)."""
    if precision == "4bit":
        return shape.n_linear * NF4_BITS / 8 + (shape.n_total - shape.n_linear) * BYTES["bf16"]
    return shape.n_total * BYTES[precision]


@dataclass(frozen=True)
class Memory:
    """Bytes one training run holds at its peak (an estimate: see :func:`train_memory`)."""

    weights: float
    adapters: float
    gradients: float
    optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.adapters + self.gradients + self.optimizer + self.activations


def activation_bytes(shape: ModelShape, tokens: int, head_positions: int, lora_r: int,
                     autocast_bf16: bool) -> float:
    """What one micro-batch of ``tokens`` keeps for its backward (no gradient checkpointing):
    per layer and token the normed inputs, q/k/v (and their rotated copies), the attention
    output, the MLP's gate, up, activation and product, and the adapters' rank-``r``
    intermediates (``7 d + 3 kv + 4 ff + 7 r`` values), in bf16 under autocast (fp32 without);
    and the fp32 logits of the response positions with their gradient. A rough count (a
    factor ~2 either way), not a measurement.

    >>> s = ModelShape(0, 0, 0, 0, 0, hidden=2, layers=1, kv_dim=2, intermediate=4, vocab=5,
    ...                tied=True)
    >>> activation_bytes(s, tokens=1, head_positions=1, lora_r=0, autocast_bf16=False)
    184.0
    """
    per_token = 7 * shape.hidden + 3 * shape.kv_dim + 4 * shape.intermediate + 7 * lora_r
    size = 2.0 if autocast_bf16 else 4.0
    return shape.layers * tokens * per_token * size + head_positions * shape.vocab * 8.0


def train_memory(shape: ModelShape, precision: str, method: str, lora_r: int,
                 micro_tokens: int, micro_head_positions: int,
                 autocast_bf16: bool) -> Memory:
    """Peak memory of one run: base weights at ``precision``, trainable parameters, their
    gradients and AdamW's two moments (fp32), and the activations of the largest micro-batch.
    Full fine-tuning keeps fp32 masters as its weights (no separate adapters)."""
    trainable = lora_params(shape, lora_r, method)
    weights = weight_bytes(shape, precision) if method != "full" else shape.n_total * 4.0
    return Memory(weights=weights, adapters=0.0 if method == "full" else trainable * 4.0,
                  gradients=trainable * 4.0, optimizer=2 * trainable * 4.0,
                  activations=activation_bytes(shape, micro_tokens, micro_head_positions,
                                               lora_r, autocast_bf16))


def decode_seconds(shape: ModelShape, precision: str, steps: float, flops: float,
                   flops_per_s: float, bytes_per_s: float) -> float:
    """Time of ``steps`` batched decode steps doing ``flops`` in all: each step reads every
    weight once, so it takes at least the weights over the memory bandwidth (a roofline)."""
    return max(flops / flops_per_s, steps * weight_bytes(shape, precision) / bytes_per_s)


def human_bytes(n: float) -> str:
    """``1.5e9`` -> ``'1.50 GB'`` (decimal units, as GPU datasheets).

    >>> human_bytes(1.5e9), human_bytes(2.5e6)
    ('1.50 GB', '2.5 MB')
    """
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.1f} MB"


def human_seconds(s: float) -> str:
    """``5400`` -> ``'1.5 h'``; minutes under two hours, days past two days.

    >>> human_seconds(90), human_seconds(5400), human_seconds(3 * 86400)
    ('1.5 min', '1.5 h', '3.0 days')
    """
    if s < 60:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"
