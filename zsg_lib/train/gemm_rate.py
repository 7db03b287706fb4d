"""How fast this machine multiplies matrices: the measured rates ``zsg plan`` costs time with.

:func:`square_gflops` is the classic peak (one ``n × n`` product, best of several).
:func:`layer_gflops` times what a run actually multiplies: one decoder layer's linear
projections (and the LM head) at a phase's own row count — few rows run well below the
square peak on a CPU — forward only (scoring, generation) or with the input gradients of a
frozen base (a LoRA step). Both in the dtype the run computes in.

>>> from zsg_lib.train.cost import ModelShape
>>> s = ModelShape(0, 0, 0, 0, 0, hidden=8, layers=1, kv_dim=8, intermediate=16, vocab=32,
...                tied=True, layer_linears=((8, 8), (8, 16), (16, 8)))
>>> layer_gflops(s, rows=4, head_rows=2, backward=True, dtype="float32", reps=1) > 0
True
"""

from __future__ import annotations

import time

from .cost import ModelShape


def _best_seconds(fn, reps: int) -> float:
    fn()  # the first call picks and warms the kernels
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return max(best, 1e-9)


def square_gflops(dtype: str = "float32", n: int = 2048, reps: int = 8) -> float:
    """Best-of-``reps`` GFLOP/s of one ``n × n`` by ``n × n`` product in ``dtype``."""
    import torch

    dt = getattr(torch, dtype)
    a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
    return 2 * n**3 / _best_seconds(lambda: torch.mm(a, b), reps) / 1e9


def layer_gflops(shape: ModelShape, rows: float, head_rows: float, backward: bool,
                 dtype: str = "float32", reps: int = 3, device: str = "cpu") -> float:
    """GFLOP/s of one decoder layer's projections on ``rows`` token rows and the LM head on
    ``head_rows`` rows, timed alone (forward ``x @ W.T``; with ``backward`` also the input
    gradient ``g @ W``)."""
    import torch

    dt = getattr(torch, dtype)
    m, h = max(1, round(rows)), max(1, round(head_rows))
    prods = [(m, i, o) for i, o in shape.layer_linears]
    head = [(h, shape.hidden, shape.vocab)] if shape.vocab and shape.hidden else []
    if backward:
        prods += [(m, o, i) for i, o in shape.layer_linears]
        head += [(h, v, d) for h, d, v in head]
    prods += head
    mats = [(torch.randn(r, k, device=device).to(dt), torch.randn(k, n, device=device).to(dt))
            for r, k, n in prods]
    flops = sum(2 * r * k * n for r, k, n in prods)

    def once() -> None:
        for a, b in mats:
            torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()

    return flops / _best_seconds(once, reps) / 1e9
