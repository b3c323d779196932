"""Data-parallel training on CPU: the process group that ``torchrun`` sets up, and helpers.

``torchrun --nproc_per_node N script.py`` starts N copies of the script and gives each
one its ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``. The script calls
:func:`init_from_env`; :func:`llmcourse.training.train` then sees an initialised process
group and wraps the model in ``DistributedDataParallel``. Each rank reads its own shard
of every global batch (:func:`shard`), and the gradients are averaged across ranks
before each update, so the ranks take the same steps as one process on the whole batch.
Without ``torchrun`` every helper falls back to a single process: rank 0 of 1.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def init_from_env(backend: str = "gloo", timeout_seconds: float = 60.0) -> bool:
    """Join the process group described by torchrun's environment variables.

    Args:
        backend: the ``torch.distributed`` backend; "gloo" runs on CPU.
        timeout_seconds: how long a collective operation waits for the other ranks
            before failing, > 0.

    Returns:
        True when a process group is initialised (now or before), False when the process
        was not started by torchrun (then nothing is done).
    """
    if not timeout_seconds > 0:
        raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds!r}")
    if is_initialized():
        return True
    present = [name for name in TORCHRUN_VARIABLES if name in os.environ]
    if not present:
        return False
    if len(present) < len(TORCHRUN_VARIABLES):
        missing = sorted(set(TORCHRUN_VARIABLES) - set(present))
        raise RuntimeError(f"incomplete torchrun environment: {', '.join(missing)} not set")
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds))
    return True


def is_initialized() -> bool:
    """Whether this process belongs to an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank, 0 without a process group."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """The number of processes, 1 without a process group."""
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """Whether this is rank 0, the process that prints, logs and writes checkpoints."""
    return rank() == 0


def shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s equal share of a global batch along dimension 0.

    Args:
        batch: ``(global_batch, ...)``; global_batch must be divisible by world_size.
        rank: 0 <= rank < world_size.
        world_size: the number of ranks, >= 1.

    Returns:
        ``(global_batch // world_size, ...)``, rows ``rank * b`` to ``(rank + 1) * b``.
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be an integer >= 1, got {world_size!r}")
    if not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an integer in [0, {world_size}), got {rank!r}")
    if batch.ndim < 1 or batch.shape[0] % world_size:
        raise ValueError(
            f"the batch's first dimension must be divisible by world_size={world_size}, "
            f"got shape {tuple(batch.shape)}"
        )
    size = batch.shape[0] // world_size
    return batch[rank * size : (rank + 1) * size]


def mean_across_ranks(value: torch.Tensor) -> torch.Tensor:
    """The average of a tensor over all ranks, in float64 (the tensor itself in one process)."""
    if not is_initialized():
        return value
    total = value.detach().to(torch.float64, copy=True)
    dist.all_reduce(total)
    return total / world_size()


def gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order (``[value]`` in one process)."""
    if not is_initialized():
        return [value]
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    return values
