"""Several processes, one global order.

Under ``accelerate launch`` or ``torchrun`` (``WORLD_SIZE`` > 1) every process takes its
slice ``ids[rank::world]`` of each global batch, so the global order stays the arrangement's.
Gradients are summed across processes after each step (each process divides by the *global*
response-token count), which gives the same update as one process seeing the whole batch.
Only the main process scores the test set and writes the run record. Only the environment
both launchers set (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...) is read, through
``torch.distributed``; zsg does not import accelerate.

>>> Dist(rank=1, world=2).shard(["a", "b", "c", "d", "e"])
['b', 'd']
>>> Dist(rank=0, world=2).interleave([["a", "c", "e"], ["b", "d"]])
['a', 'b', 'c', 'd', 'e']
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place among ``world`` processes (``world == 1``: no communication)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This process's slice of one global batch."""
        return list(items[self.rank :: self.world])

    def interleave(self, parts: Sequence[Sequence[T]]) -> list[T]:
        """Undo :meth:`shard`: per-rank slices back into global order."""
        out: list[T] = []
        for k in range(max((len(p) for p in parts), default=0)):
            out.extend(p[k] for p in parts if k < len(p))
        return out

    def sum(self, value: float) -> float:
        """A number summed over processes."""
        if self.world == 1:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t.item())

    def gather(self, obj: Any) -> list[Any]:
        """One picklable object from every process, in rank order."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def sum_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Sum the gradients of ``params`` over processes (a parameter without grad gets 0)."""
        if self.world == 1:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grad = p.grad.to(torch.float32) if p.grad.dtype != torch.float32 else p.grad
            torch.distributed.all_reduce(grad)
            if grad is not p.grad:
                p.grad.copy_(grad)

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def current() -> Dist:
    """The process group of this launch, initialised on first use (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return Dist(rank=torch.distributed.get_rank(), world=torch.distributed.get_world_size())
