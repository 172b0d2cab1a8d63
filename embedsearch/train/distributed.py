"""Data parallelism across processes (``torchrun``): set-up from the environment, a gather that keeps
gradients (so every process computes the loss of the global batch), and gradient averaging.

Why not ``DistributedDataParallel``: with GradCache a step runs one backward pass per chunk, and DDP would
all-reduce after each of them unless every one but the last ran under ``no_sync``. One explicit all-reduce
after the last backward pass is the same arithmetic, written once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Cluster:
    """Where this process stands: ``rank`` of ``world`` processes, ``local_world`` of them on this machine."""

    rank: int = 0
    world: int = 1
    local_world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str) -> str:
        """The device of this process: ``cuda`` means this process's own GPU (``cuda:LOCAL_RANK``)."""
        return f"cuda:{self.local_rank}" if requested == "cuda" and self.world > 1 else requested


def init_from_env(device: str = "cpu") -> Cluster:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``, ...).

    A single process (``WORLD_SIZE`` unset or 1) needs no process group. The backend is gloo on CPU and
    NCCL on CUDA.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Cluster()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return Cluster(dist.get_rank(), dist.get_world_size(), local_world, local_rank)


def shutdown(cluster: Cluster) -> None:
    """Leave the process group (a no-op for a single process)."""
    if cluster.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def gather_with_grad(tensor: torch.Tensor, cluster: Cluster) -> torch.Tensor:
    """Concatenate every process's ``(n, ...)`` tensor in rank order into ``(world * n, ...)``, keeping the graph.

    The backward pass sums the gradients that every process computes for each slice, so a loss that all
    processes compute identically yields ``world`` times its gradient here; :func:`average_gradients`
    divides that back out. (The semantics of ``torch.distributed.nn.functional.all_gather``, which torch
    2.14 deprecates; written here on the stable ``all_gather``/``all_reduce``.)
    """
    if cluster.world == 1:
        return tensor
    return _GatherWithGrad.apply(tensor.contiguous(), cluster.rank, cluster.world)


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, rank: int, world: int) -> torch.Tensor:
        ctx.rank, ctx.rows = rank, len(tensor)
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows], None, None


def average_gradients(parameters: list[torch.nn.Parameter], cluster: Cluster) -> None:
    """Replace each gradient by its mean over the processes (one flat all-reduce)."""
    if cluster.world == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= cluster.world
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def broadcast_parameters(module: torch.nn.Module, cluster: Cluster) -> None:
    """Make every process start from rank 0's weights."""
    if cluster.world == 1:
        return
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=0)


def barrier(cluster: Cluster) -> None:
    if cluster.world > 1:
        dist.barrier()


def gather_objects(value: object, cluster: Cluster) -> list[object]:
    """Every process's ``value`` (picklable), in rank order (e.g. each process's RNG state for a checkpoint)."""
    if cluster.world == 1:
        return [value]
    values: list[object] = [None] * cluster.world
    dist.all_gather_object(values, value)
    return values


def mean_over_processes(value: float, cluster: Cluster, device: torch.device | str = "cpu") -> float:
    """The mean of every process's ``value`` (e.g. SigLIP's loss, which differs per process); ``device`` is
    where the backend reduces (a CUDA device under NCCL)."""
    if cluster.world == 1:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total.item()) / cluster.world
