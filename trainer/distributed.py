"""Data-parallel training on torch.distributed: torchrun sets the environment, we follow it.

Run `torchrun --nproc-per-node N -m latentforge train ...`: each process trains on its
shard (DistributedSampler), gradients are averaged by DistributedDataParallel (gloo on CPU,
nccl on GPU), and rank 0 alone writes checkpoints, grids and metrics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def wrap(self, module: nn.Module) -> nn.Module:
        """DDP-wrap a module when running on several processes; identity otherwise."""
        if not self.enabled:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def max(self, value: int) -> int:
        """The largest of every rank's `value` (a collective: all ranks call it)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (just [obj] on one process)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group torchrun describes (WORLD_SIZE > 1), or run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank, world, local_rank, local_world, dev)


def shutdown(ctx: DistContext, together: bool = True) -> None:
    """Leave the process group. After a clean run the ranks leave together (a rank that tears
    gloo down while another still talks to it aborts the job at exit); after an error, at once,
    since the other ranks may never reach the barrier."""
    if ctx.enabled and dist.is_initialized():
        try:
            if together:
                dist.barrier()
        finally:
            dist.destroy_process_group()
