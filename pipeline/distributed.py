"""Training with several processes (torchrun): where this process sits, and the few collective
operations the loop needs. With one process every helper is a no-op.

Every process trains a contiguous block of ``batch_size / WORLD_SIZE`` rows under
DistributedDataParallel (NCCL on GPUs, gloo on the CPU); rank 0 evaluates and writes the
checkpoint folder::

    rank 0   rows [0, B/N)      ─┐  all_reduce(loss, flags) per step    rank 0: evaluate, write
    rank 1   rows [B/N, 2B/N)   ─┤  broadcast(run state) after an evaluation
    ...                          ─┘  all_gather(carried state, RNG) when a checkpoint is written
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from .device import resolve_device

T = TypeVar("T")


@dataclass
class Processes:
    """Where this process sits among torchrun's (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_backend(device: torch.device, local_world: int) -> str:
    """NCCL when every local process has a GPU of its own, else gloo (CPU, or several
    processes sharing a GPU, which NCCL refuses)."""
    if device.type == "cuda" and local_world <= torch.cuda.device_count():
        return "nccl"
    return "gloo"


def start(device_name: str) -> Processes:
    """This process's place, from torchrun's environment (``WORLD_SIZE``, ``RANK``, ...); joins
    the process group when there are several."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world == 1:
        return Processes(device=device)
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    backend = dist_backend(device, local_world)
    if device.type == "cuda":
        device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend)
    if rank:
        logging.getLogger("pocketlm").setLevel(logging.WARNING)
    return Processes(rank, world, device, backend)



def wrap(net: torch.nn.Module, procs: Processes, find_unused: bool) -> torch.nn.Module:
    """``net`` under DistributedDataParallel when there are several processes, else ``net``."""
    if procs.world == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        net, device_ids=[procs.device.index] if procs.device.type == "cuda" else None,
        find_unused_parameters=find_unused)

def gather_rows(tensor: torch.Tensor, procs: Processes) -> torch.Tensor:
    """Concatenate every process's ``[layers, rows, hidden]`` state along the rows."""
    if procs.world == 1:
        return tensor
    import torch.distributed as dist

    local = tensor.contiguous() if procs.backend == "nccl" else tensor.cpu().contiguous()
    parts = [torch.empty_like(local) for _ in range(procs.world)]
    dist.all_gather(parts, local)
    return torch.cat(parts, dim=1)


def gather_objects(value: Any, procs: Processes) -> list[Any]:
    """Every process's ``value`` (picklable, e.g. RNG states), by rank."""
    if procs.world == 1:
        return [value]
    import torch.distributed as dist

    values: list[Any] = [None] * procs.world
    dist.all_gather_object(values, value)
    return values


#: Rank 0's flags, sent with each step's loss: a checkpoint is due, the time budget is spent.
SAVE_DUE, TIME_UP = 1, 2


def rank0_flags(procs: Processes, elapsed: float, since_save: float,
                max_minutes: float | None, save_minutes: float | None) -> int:
    """Rank 0's :data:`TIME_UP` / :data:`SAVE_DUE` for this step (0 on the other ranks, which
    follow what :func:`step_sync` hands them): ``elapsed`` seconds of the run against
    ``max_minutes``, ``since_save`` seconds since the last checkpoint against ``save_minutes``."""
    flags = 0
    if procs.main:
        if max_minutes and elapsed >= max_minutes * 60:
            flags |= TIME_UP
        if save_minutes and since_save >= save_minutes * 60:
            flags |= SAVE_DUE
    return flags


def step_sync(loss: torch.Tensor, flags: int, procs: Processes) -> tuple[float, int]:
    """The loss averaged over processes and rank 0's stop/save flags, in one reduction."""
    if procs.world == 1:
        return float(loss.item()), flags
    import torch.distributed as dist

    buf = torch.stack([loss.detach().float(), torch.tensor(float(flags), device=loss.device)])
    if procs.backend == "gloo":
        buf = buf.cpu()
    dist.all_reduce(buf)
    return float(buf[0]) / procs.world, int(buf[1])


def share(record: T, procs: Processes) -> T:
    """Rank 0's copy of a dataclass ``record`` (the run's bookkeeping), given to every process."""
    if procs.world == 1:
        return record
    import torch.distributed as dist

    box = [dataclasses.asdict(record)]  # type: ignore[call-overload]
    dist.broadcast_object_list(box, src=0)
    return type(record)(**box[0])


def barrier(procs: Processes) -> None:
    if procs.world > 1:
        import torch.distributed as dist

        dist.barrier()


def finish(procs: Processes) -> None:
    """Wait for every process, then leave the process group."""
    if procs.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
