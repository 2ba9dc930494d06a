"""Helpers for code that runs in one process or in several under `torch.distributed`.

Every function works without an initialised process group (one process: rank 0 of 1), so the
same training code runs on a laptop and under `torchrun`. Detectron2's `detectron2.utils.comm`
names: `get_rank`, `get_world_size`, `get_local_rank`, `get_local_size`, `is_main_process`,
`synchronize`, `all_gather`, `gather`, `shared_random_seed`, `reduce_dict`.

The local rank and size come from torchrun's environment variables (`LOCAL_RANK`,
`LOCAL_WORLD_SIZE`), which `masktron.engine.launch` sets for the processes it starts.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "all_gather",
    "broadcast_object",
    "gather",
    "get_local_rank",
    "get_local_size",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "reduce_dict",
    "shared_random_seed",
    "synchronize",
]


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """Number of processes in the default group (1 without torch.distributed)."""
    return dist.get_world_size() if _initialized() else 1


def get_rank() -> int:
    """This process's global rank (0 without torch.distributed)."""
    return dist.get_rank() if _initialized() else 0


def get_local_rank() -> int:
    """This process's rank on its machine (torchrun's `LOCAL_RANK`; 0 by default)."""
    if not _initialized():
        return 0
    return int(os.environ.get("LOCAL_RANK", 0))


def get_local_size() -> int:
    """Number of processes on this machine (torchrun's `LOCAL_WORLD_SIZE`; 1 by default)."""
    if not _initialized():
        return 1
    return int(os.environ.get("LOCAL_WORLD_SIZE", get_world_size()))


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """A barrier across all processes; nothing to do with a single process."""
    if get_world_size() == 1:
        return
    if dist.get_backend() == dist.Backend.NCCL and torch.cuda.is_available():
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def all_gather(data: Any) -> list[Any]:
    """Every rank's `data` (any picklable object), in rank order, on every rank."""
    if get_world_size() == 1:
        return [data]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, data)
    return gathered


def gather(data: Any, dst: int = 0) -> list[Any]:
    """Every rank's `data` in rank order on rank `dst`; an empty list on the other ranks."""
    if get_world_size() == 1:
        return [data]
    gathered = all_gather(data)
    return gathered if get_rank() == dst else []


def broadcast_object(data: Any, src: int = 0) -> Any:
    """Rank `src`'s `data` (picklable), returned on every rank."""
    if get_world_size() == 1:
        return data
    box = [data if get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shared_random_seed() -> int:
    """A random integer in [0, 2^31) drawn on rank 0 and returned on every rank."""
    return int(broadcast_object(int(np.random.randint(2**31))))


def reduce_dict(input_dict: dict[str, torch.Tensor], average: bool = True) -> dict[str, Any]:
    """Sum (or average) scalar tensors of the same names over all ranks; rank 0 gets the result.

    Args:
        input_dict: name -> scalar tensor; every rank must pass the same names.
        average: divide the sums by the world size.

    Returns:
        The reduced dict on rank 0 (on other ranks its values are undefined partial sums).
    """
    world_size = get_world_size()
    if world_size == 1:
        return input_dict
    names = sorted(input_dict)
    with torch.no_grad():
        values = torch.stack([input_dict[k] for k in names])  # (K,)
        dist.reduce(values, dst=0)
        if average and get_rank() == 0:
            values /= world_size
    return dict(zip(names, values))
