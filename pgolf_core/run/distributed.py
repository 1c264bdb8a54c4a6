"""Multi-process evaluation under torchrun: every rank runs the same loop on the same stream.

Count-based experts and mixers are deterministic, so every rank computes them identically; an
expert that is expensive (the neural expert) splits its work across ranks and gathers the
results, so every rank ends each chunk with identical log-probabilities. Only rank 0 prints.
torch is imported only when the environment asks for more than one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info_from_env(env=None) -> DistInfo:
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        from ..errors import UsageError

        raise UsageError(f"WORLD_SIZE/RANK/LOCAL_RANK must be integers ({exc})") from None
    return DistInfo(rank, world, local)


def init_distributed(device: str = "cpu") -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL for CUDA, gloo otherwise)."""
    info = dist_info_from_env()
    if info.world_size <= 1:
        return info
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":  # one GPU per process: collectives use the current device
            import torch

            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)


# ----------------------------------------------------------------------------- collectives
# Used by plugins that split work across ranks (the neural expert's windows, TTT's sequences).
# Work is split by ``share``, a pure function of the counts, so every rank knows every other
# rank's share without asking; results are gathered so every rank ends with identical arrays,
# and gradients are summed so every rank takes the identical step.

def world() -> tuple:
    """(rank, world_size) of the joined process group, or (0, 1) when running alone."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def share(n: int, rank: int, world_size: int) -> tuple:
    """Contiguous ``[lo, hi)`` of ``n`` items for ``rank``; shares differ in size by at most one."""
    return (n * rank) // world_size, (n * (rank + 1)) // world_size


def gather_rows(local, counts):
    """Concatenate every rank's rows in rank order, so that every rank holds the same result.

    ``local`` is this rank's tensor of shape ``(counts[rank], ...)``; ``counts`` lists how many rows
    each rank holds (every rank knows them, see ``share``). Rows are padded to the largest count so
    that one all_gather moves them (works with NCCL and gloo).
    """
    import torch
    import torch.distributed as dist

    rank, size = world()
    if size == 1:
        return local
    if len(counts) != size or local.shape[0] != counts[rank]:
        raise ValueError(f"rank {rank} holds {local.shape[0]} rows; counts {list(counts)} for {size} ranks")
    home = local.device
    if dist.get_backend() == "nccl":  # NCCL moves CUDA tensors only
        local = local.to(torch.device("cuda", torch.cuda.current_device()))
    padded = local.new_zeros((max(counts), *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, counts)], dim=0).to(home)


def ensure_grads(params) -> None:
    """Give every parameter a gradient (zeros where backward did not reach it).

    A rank with no sequence in a step, or a parameter the loss does not touch, must still take
    part in the all-reduce; doing this on one process too keeps the optimizer's steps identical.
    """
    import torch

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)


def sum_gradients(params, extra=None):
    """All-reduce (sum) the gradients of ``params`` and the 1-D tensor ``extra`` (returned summed).

    One flat buffer per dtype, so a step costs one collective per dtype.
    """
    import torch
    import torch.distributed as dist

    params = list(params)
    ensure_grads(params)
    if world()[1] == 1:
        return extra
    groups: dict = {}
    for p in params:
        groups.setdefault(p.grad.dtype, []).append(p)
    for group in groups.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p in group:
            n = p.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n
    if extra is not None:
        extra = extra.clone()
        dist.all_reduce(extra, op=dist.ReduceOp.SUM)
    return extra

