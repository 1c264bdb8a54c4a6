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
        from .errors import UsageError

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
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)
