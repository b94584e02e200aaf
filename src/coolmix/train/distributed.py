"""torchrun glue: process-group setup and teardown, the DDP wrapper, and the few collectives.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) `setup` joins the process group:
gloo on CPU, NCCL on CUDA. Without it everything here is a no-op on one process, so the loop
has a single code path. Rank and world size are plain fields of `Env`, never read from globals
inside the loop (style.md principle 8).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from coolmix.errors import ConfigError
from coolmix.integrations.ranks import env_int

__all__ = [
    "Env",
    "all_gather_objects",
    "all_reduce_sum",
    "barrier",
    "setup",
    "teardown",
    "wrap",
]


@dataclass(frozen=True)
class Env:
    """Where this process runs: rank, world size and device; ``owns_group`` if `setup` created it."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0 writes every file (metrics, config, checkpoints) and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> Env:
    """Join the torchrun process group if there is one; pick the device.

    ``device="auto"`` uses CUDA when available (one GPU per local rank), else CPU. An already
    initialised group (a caller running us inside its own torchrun job) is reused, not owned.
    ``device="cuda"`` without a usable GPU, or ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` that are
    not integers (read by `coolmix.integrations.ranks.env_int`, the one reader of them), raise a
    one-line `ConfigError` before anything is built.
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device", device, "no CUDA GPU is available here; use 'auto' or 'cpu'")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world = env_int("WORLD_SIZE", 1, lo=1)
    rank = env_int("RANK", 0, lo=0)
    if world > 1 and rank >= world:
        raise ConfigError("RANK", rank, f"must be < WORLD_SIZE = {world}")
    if world <= 1 and not dist.is_initialized():
        return Env(device=_device(use_cuda, 0))
    local_rank = env_int("LOCAL_RANK", 0, lo=0)
    if use_cuda and local_rank >= torch.cuda.device_count():
        raise ConfigError("LOCAL_RANK", local_rank, f"only {torch.cuda.device_count()} CUDA devices here")
    owns = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return Env(dist.get_rank(), dist.get_world_size(), _device(use_cuda, local_rank), owns)


def _device(use_cuda: bool, local_rank: int) -> torch.device:
    return torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")


def teardown(env: Env) -> None:
    """Leave the process group if `setup` created it."""
    if env.owns_group and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, env: Env) -> torch.nn.Module:
    """DDP around ``model`` when distributed (it averages gradients over ranks), else the model."""
    if not env.distributed:
        return model
    ids = [env.device.index] if env.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_sum(tensor: torch.Tensor, env: Env) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (and return it); identity on one process."""
    if env.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: Any, env: Env) -> list[Any]:
    """Every rank's ``obj`` in rank order (pickled; for small things like decoded strings)."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(env: Env) -> None:
    if env.distributed:
        dist.barrier()
