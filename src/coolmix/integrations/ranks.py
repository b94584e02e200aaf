"""Data-parallel coordinates (dp rank, dp size), resolved when iteration starts, for every adapter.

Under tensor or pipeline parallelism the data-parallel rank is not the global rank: the 2 × 2 run
"TP=2 × DP=2" has global ranks 0..3 but only 2 data-parallel slices, and the two TP peers of a
slice must read identical rows. So every adapter takes one ``dp=`` parameter saying where its
data-parallel coordinate comes from, and asks only when it starts iterating (a sampler may be
built before ``init_process_group``; asking then would silently give every process world size 1):

- ``dp=DataParallel(rank, world_size)``: explicit dp rank and dp size (validated at once);
- ``dp=group``: a ``torch.distributed`` process group spanning the data-parallel peers (dp rank =
  ``get_rank(group)``, dp size = ``get_world_size(group)``);
- ``dp=mesh``: a ``torch.distributed.device_mesh.DeviceMesh``, read along its ``"dp"`` dimension
  (or its only one: ``dp=mesh["dp_shard"]`` picks another); dp rank = ``mesh.get_local_rank(dim)``,
  dp size = the mesh's size along it. ``DataParallel(mesh=mesh, mesh_dim=...)`` says the same;
- ``dp=None`` (the default): the default process group if one is joined, else (0, 1). If the
  environment says more than one process (``WORLD_SIZE`` > 1, as torchrun sets it) but no group
  is joined when iteration starts, that is a `ConfigError`: every process would train on the
  same data.

`as_data_parallel` turns any of these into a `DataParallel` (the one place they are told apart
and validated); ``resolve()`` answers it. Pickling a spec (DataLoader workers started with
``spawn``) carries the answer resolved in the parent, since a worker has no process group of its
own.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Any, overload

from coolmix.errors import ConfigError
from coolmix.validate import check_int

__all__ = ["DP_MESH_DIM", "DataParallel", "DataParallelView", "as_data_parallel", "env_int"]

DP_MESH_DIM = "dp"
"""The mesh dimension name read by default (torchtitan's and Megatron's name for data parallel)."""


_ENV_INT = re.compile(r"[+-]?[0-9]+")


@overload
def env_int(name: str, default: int, lo: int = 0) -> int: ...
@overload
def env_int(name: str, default: None = None, lo: int = 0) -> int | None: ...
def env_int(name: str, default: int | None = None, lo: int = 0) -> int | None:
    """An integer environment variable (torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

    Unset or blank gives ``default``; anything but a decimal integer >= ``lo`` is a one-line
    `ConfigError` naming the variable and its raw value. The one reader of these variables
    (`coolmix.train.distributed` and the CLI use it too).

    >>> env_int("COOLMIX_UNSET_EXAMPLE", 0)
    0
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    if not _ENV_INT.fullmatch(text) or int(text) < lo:
        raise ConfigError(name, raw, f"environment variable must be an integer >= {lo}")
    return int(text)


def _dist() -> Any:
    """``torch.distributed`` when torch is loaded and distributed is available, else None.

    A process that never imported torch cannot have joined a process group, so it is not
    imported here (numpy-only users of `coolmix.integrations.streams` stay free of torch).
    """
    if "torch" not in sys.modules:
        return None
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is installed wherever the adapters run
        return None
    return dist if dist.is_available() else None


@dataclass(frozen=True)
class DataParallel:
    """Where the data-parallel coordinate comes from; `resolve` reads it (at iteration start).

    Give at most one of ``rank`` and ``world_size`` (both), ``group`` or ``mesh`` (+ ``mesh_dim``);
    none means the default process group. Adapters take it as ``dp=`` (see `as_data_parallel`).

    >>> DataParallel(1, 4).resolve()
    (1, 4)
    """

    rank: int | None = None
    world_size: int | None = None
    group: Any = None
    mesh: Any = None
    mesh_dim: str = DP_MESH_DIM

    def __post_init__(self) -> None:
        explicit = self.rank is not None or self.world_size is not None
        given = (("rank", explicit), ("group", self.group is not None), ("mesh", self.mesh is not None))
        sources = [name for name, on in given if on]
        if len(sources) > 1:
            raise ConfigError(sources[1], "and " + sources[0], "give one of rank/world_size, group or mesh")
        if explicit:
            if self.rank is None or self.world_size is None:
                missing = "rank" if self.rank is None else "world_size"
                raise ConfigError(missing, None, "give both rank and world_size, or neither")
            size = check_int("world_size", self.world_size, lo=1)
            object.__setattr__(self, "world_size", size)
            object.__setattr__(self, "rank", check_int_in("rank", self.rank, size))
        if self.mesh is not None:
            names = getattr(self.mesh, "mesh_dim_names", None)
            if not isinstance(self.mesh_dim, str) or not names or self.mesh_dim not in names:
                raise ConfigError("mesh_dim", self.mesh_dim, f"is not a dimension of the mesh {names}")

    @property
    def explicit(self) -> bool:
        """True when the coordinate is fixed at construction (no group, mesh or environment)."""
        return self.rank is not None

    def resolve(self) -> tuple[int, int]:
        """(dp rank, dp size) now; see the module docstring for the order of sources."""
        if self.rank is not None and self.world_size is not None:
            return self.rank, self.world_size
        if self.mesh is not None:
            dim = list(self.mesh.mesh_dim_names).index(self.mesh_dim)  # DeviceMesh.size takes an int
            return int(self.mesh.get_local_rank(self.mesh_dim)), int(self.mesh.size(dim))
        dist = _dist()
        joined = dist is not None and dist.is_initialized()
        if self.group is not None:
            if not joined:
                raise ConfigError("group", self.group, "torch.distributed is not initialised")
            rank = dist.get_rank(self.group)
            if rank < 0:
                raise ConfigError("group", self.group, "this process is not a member of the group")
            return int(rank), int(dist.get_world_size(self.group))
        if joined:
            return int(dist.get_rank()), int(dist.get_world_size())
        world = env_int("WORLD_SIZE", lo=1)
        env_int("RANK")  # a non-integer RANK is an error too, even when WORLD_SIZE is unset
        if world is not None and world > 1:
            raise ConfigError(
                "WORLD_SIZE",
                world,
                "says several processes but no torch.distributed process group is joined: call "
                "init_process_group before iterating, or pass dp=DataParallel(rank, world_size)",
            )
        return 0, 1

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the resolved coordinate when it can be resolved here (workers have no group)."""
        if self.explicit:
            return dict(self.__dict__)
        try:
            rank, size = self.resolve()
        except ConfigError:  # not resolvable yet (e.g. hashed before init): stay lazy
            return dict(self.__dict__)
        return {"rank": rank, "world_size": size, "group": None, "mesh": None, "mesh_dim": self.mesh_dim}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)


class DataParallelView:
    """Mixin: ``rank`` / ``world_size`` of an adapter that keeps its `DataParallel` as ``dp``.

    Both are resolved when read, so reading them before ``init_process_group`` raises the same
    errors that iterating would.
    """

    dp: DataParallel

    @property
    def rank(self) -> int:
        """This process's data-parallel rank, resolved now."""
        return self.dp.resolve()[0]

    @property
    def world_size(self) -> int:
        """The data-parallel size, resolved now."""
        return self.dp.resolve()[1]


def check_int_in(field: str, value: Any, size: int) -> int:
    """``value`` as an int in [0, size), else `ConfigError` naming ``field``."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ConfigError(field, value, f"must be an integer in [0, {size})")
    v = int(value)
    if not 0 <= v < size:
        raise ConfigError(field, value, f"must be an integer in [0, {size})")
    return v


DP_KINDS = "None, a DataParallel(rank, world_size), a torch.distributed process group or a DeviceMesh"


def as_data_parallel(dp: Any = None) -> DataParallel:
    """The one reading of an adapter's ``dp=`` argument: a `DataParallel`, validated now, resolved later.

    ``None`` → the default process group (else one process); a `DataParallel` as is; a
    ``DeviceMesh`` → its ``"dp"`` dimension, or its only dimension when it has one (so
    ``mesh["dp_shard"]`` selects another); a ``torch.distributed`` process group → that group.
    Anything else is a one-line `ConfigError` naming ``dp``.

    >>> as_data_parallel(DataParallel(0, 2)).resolve()
    (0, 2)
    """
    if dp is None:
        return DataParallel()
    if isinstance(dp, DataParallel):
        return dp
    if hasattr(dp, "mesh_dim_names") and hasattr(dp, "get_local_rank"):  # a DeviceMesh (duck-typed)
        names = tuple(dp.mesh_dim_names or ())
        if len(names) == 1:
            return DataParallel(mesh=dp, mesh_dim=names[0])
        if DP_MESH_DIM not in names:
            why = (
                f"the mesh's dimensions have no {DP_MESH_DIM!r}: pass its data-parallel slice "
                "(mesh['<name>']) or DataParallel(mesh=mesh, mesh_dim='<name>')"
            )
            raise ConfigError("dp", f"DeviceMesh{names}", why)
        return DataParallel(mesh=dp, mesh_dim=DP_MESH_DIM)
    dist = _dist()
    if dist is not None and isinstance(dp, dist.ProcessGroup):
        return DataParallel(group=dp)
    raise ConfigError("dp", type(dp).__name__, f"must be {DP_KINDS}")
