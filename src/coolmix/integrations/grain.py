"""Grain (and MaxText) adapter: a coolmix schedule as a ``grain`` selection map.

Grain mixes ``MapDataset``s through a *selection map*: a stateless, picklable object with
``len`` and ``map[g] -> (dataset index, index in that dataset)`` (``grain.MapDataset.
select_from_datasets``). `SelectionMap` is coolmix's global sample map g = step·B + slot ->
(domain id, item), i.e. `coolmix.MixtureSampler.sample_at`, served by `coolmix.global_index.
GlobalIndex` (the scalar path reads a prebuilt or cached array, or the current block; `lookup` and
`block` are the batched path). So Grain gets what its own ``mix`` cannot give:

- a time-varying schedule (Cooldown, Stages, Anneal...), keyed on the global sample index;
- exact counts: with ``composition="exact"`` every prefix of whole batches holds each domain
  within 1 item of its target X_i(t) = Σ_{s<t} B·p_i(s), so a domain of weight 2e-5 still gets
  its share (MaxText rounds weights to 4 decimals, turning it into 0, which Grain then refuses);
- epochs inside the map: item = a keyed permutation of the domain, pass after pass, so parents
  need no ``.repeat()`` and the mixture is exactly ``total_steps·B`` long.

Data parallelism: ``mix(..., dp=DataParallel(rank, world_size))`` (or ``shard(dp)``; ``dp`` as for every
adapter, `coolmix.integrations.ranks`, but resolved at once: a map is built for one rank) keeps this
rank's contiguous slice of every global batch, the rows ``sampler.batch(step, rank, world_size)``
gives; Grain's own ``ds[rank::world_size]`` slicing also partitions the stream (strided slots).
Without a build, a block is computed for whole global batches, so a rank reading 1/W of them pays
W× the per-sample build: for data parallelism ``build=True`` with a ``cache_dir`` on a shared
filesystem, so one index is built once and every rank (and worker) memory-maps it.
Checkpoints are Grain's own (``iterator.get_state()`` / ``set_state``: a position, nothing of
coolmix), and since the map is a pure function of g, a rank's position n under world size W is
global sample n·W, so `rescale_state` moves a checkpoint to another world size.

Pickling (Grain's ``mp_prefetch`` workers are spawned) is `GlobalIndex`'s: the sampler, plus the
prebuilt arrays, or only their file when they are cached under ``cache_dir`` (a worker maps it).
``grain`` is imported only when a map is created; ``import coolmix`` never imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from coolmix.errors import ConfigError
from coolmix.global_index import GlobalIndex
from coolmix.integrations.ranks import as_data_parallel
from coolmix.sampler import MixtureSampler
from coolmix.validate import check_int

__all__ = ["RankSelectionMap", "SelectionMap", "mix", "rescale_state", "selection_map"]


def _grain() -> Any:
    """The ``grain`` package, with a one-line error naming the extra when it is missing."""
    try:
        import grain
    except ImportError:
        raise ConfigError("grain", None, "not installed: pip install 'coolmix[engines]' (grain)") from None
    return grain


def _register() -> None:
    """Make our maps ``grain.transforms.DatasetSelectionMap``s (an ABC: registered, not inherited,
    so that importing this module does not import grain)."""
    base = _grain().transforms.DatasetSelectionMap
    for cls in (SelectionMap, RankSelectionMap):
        if not issubclass(cls, base):
            base.register(cls)


class SelectionMap(GlobalIndex):
    """``map[g] -> (domain id, item)`` for g in [0, total_steps·B): a Grain ``DatasetSelectionMap``.

    A `GlobalIndex` (a snapshot of the sampler), so ``map[g] == sampler.sample_at(g)``; `lookup`
    (int array) and `block` (range) are the vectorised path. ``build`` (n, default all) makes the
    scalar path an array read for random access (e.g. after ``.shuffle``); sequential reads need
    no build (one vectorised block of whole batches at a time).
    """

    def shard(self, dp: Any = None) -> SelectionMap | RankSelectionMap:
        """This data-parallel rank's view (``dp`` resolved now): entry step·(B/W) + k is global slot
        rank·(B/W) + k of ``step``; the map itself when W = 1."""
        rank, world_size = as_data_parallel(dp).resolve()
        return self if world_size == 1 else RankSelectionMap(self, rank, world_size)

    def __repr__(self) -> str:
        return f"coolmix.grain.SelectionMap({len(self.names)} domains, len={len(self)}, B={self.batch_size})"


class RankSelectionMap:
    """One data-parallel rank's slice of a `SelectionMap`: ``total_steps·(B/W)`` entries, entry
    i = global sample (i div b)·B + rank·b + (i mod b) with b = B/W (world-size-elastic: a pure
    function of the global position)."""

    def __init__(self, full: SelectionMap, rank: int, world_size: int) -> None:
        self.world_size = check_int("world_size", world_size, lo=1, hi=full.batch_size)
        self.rank = check_int("rank", rank, lo=0, hi=self.world_size - 1)
        if full.batch_size % self.world_size:
            raise ConfigError("world_size", world_size, f"must divide the global batch {full.batch_size}")
        self.full = full
        self.per_rank = full.batch_size // self.world_size
        self._offset = self.rank * self.per_rank
        self._len = full.total_steps * self.per_rank
        self._block = full.block_len // self.world_size  # this rank's rows of one block of the full map
        self._drop_block()

    def _drop_block(self) -> None:
        self._lo, self._n, self._d, self._i = 0, 0, [], []  # the current block, as lists (scalar path)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> tuple[int, int]:
        """(domain id, item) of this rank's entry ``i`` (ints): a list read inside the current block,
        else one vectorised `lookup` of the next block of this rank's entries."""
        if type(i) is int:
            r = i - self._lo
            if 0 <= r < self._n:
                return self._d[r], self._i[r]
        i = check_int("index", i, lo=0, hi=self._len - 1)
        lo = i - i % self._block
        d, it = self.lookup(np.arange(lo, min(lo + self._block, self._len), dtype=np.int64))
        self._lo, self._n, self._d, self._i = lo, len(d), d.tolist(), it.tolist()
        return self._d[i - lo], self._i[i - lo]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_lo=0, _n=0, _d=[], _i=[])  # workers rebuild their own blocks
        return state

    def global_index(self, i: Any) -> np.ndarray:
        """Global sample numbers of this rank's entries ``i`` (int array)."""
        arr = np.asarray(i, dtype=np.int64)
        s, k = np.divmod(arr, self.per_rank)
        return s * self.full.batch_size + self._offset + k

    def lookup(self, i: Any) -> tuple[np.ndarray, np.ndarray]:
        """(domain ids, items) for an int array of this rank's entries, vectorised."""
        arr = np.asarray(i)
        if arr.dtype.kind not in "iu" or (arr.size and (arr.min() < 0 or arr.max() >= self._len)):
            raise ConfigError("index", i, f"must be integers in [0, {self._len})")
        return self.full.lookup(self.global_index(arr))

    def __repr__(self) -> str:
        return f"coolmix.grain.RankSelectionMap(rank={self.rank}/{self.world_size}, len={self._len})"


def selection_map(
    sampler: MixtureSampler,
    *,
    dp: Any = None,
    build: bool | int = False,
    cache_dir: Any = None,
) -> SelectionMap | RankSelectionMap:
    """The Grain selection map of ``sampler``: this data-parallel rank's slice of it (``dp``, resolved
    now; the whole stream in one process).

    ``build``: True (all) or n entries materialised up front (cached under ``cache_dir`` as
    ``.npy`` files keyed by the configuration's hash, memory-mapped on the next start).
    """
    _register()
    full = SelectionMap(sampler, cache_dir=cache_dir)
    if build is True:
        full.build()
    elif build is not False:
        full.build(check_int("build", build, lo=0, hi=len(full)))
    return full.shard(dp)


def mix(
    datasets: Mapping[str, Any],
    sampler: MixtureSampler,
    *,
    dp: Any = None,
    build: bool | int = False,
    cache_dir: Any = None,
) -> Any:
    """``grain.MapDataset`` of the sampler's stream over ``datasets`` (domain name -> MapDataset or
    sequence, each exactly as long as the sampler's item count for it, so nothing is left unread).

    >>> import grain  # doctest: +SKIP
    >>> s = MixtureSampler({"en": 90, "sw": 10}, Cooldown(hot=5, cold=1), total_steps=100, batch_size=8)
    >>> ds = mix({"en": en_ds, "sw": sw_ds}, s, dp=DataParallel(r, w))  # doctest: +SKIP
    >>> it = iter(ds.to_iter_dataset().batch(8 // w))  # doctest: +SKIP
    """
    grain = _grain()
    if not isinstance(sampler, MixtureSampler):
        raise ConfigError("sampler", sampler, "must be a coolmix.MixtureSampler")
    if not isinstance(datasets, Mapping) or set(datasets) != set(sampler.names):
        got = sorted(datasets) if isinstance(datasets, Mapping) else type(datasets).__name__
        raise ConfigError("datasets", got, f"need one dataset per domain: {', '.join(sampler.names)}")
    items = sampler.items
    parents = []
    for name in sampler.names:
        ds = datasets[name]
        if not isinstance(ds, grain.MapDataset):
            ds = grain.MapDataset.source(ds)
        if len(ds) != items[name]:
            why = f"the sampler draws from {items[name]} items of {name!r} (lengths must match)"
            raise ConfigError(f"datasets.{name}", len(ds), why)
        parents.append(ds)
    smap = selection_map(sampler, dp=dp, build=build, cache_dir=cache_dir)
    return grain.MapDataset.select_from_datasets(parents, smap)


def rescale_state(state: Mapping[str, Any], old_world_size: int, new_world_size: int) -> dict[str, Any]:
    """A Grain iterator state saved under ``old_world_size`` ranks, for ``new_world_size`` ranks.

    The state of ``ds.to_iter_dataset()`` (then ``.map``, ``.batch``...) is ``{"next_index": n}``,
    the rank's position; it becomes n·W_old / W_new, the same global sample, since each rank reads
    its slice of every global batch. n·W_old must divide by W_new (a global-batch boundary).
    ``mp_prefetch`` states (per worker slice) are refused: restore them under the old layout.
    """
    old = check_int("old_world_size", old_world_size, lo=1)
    new = check_int("new_world_size", new_world_size, lo=1)
    if not isinstance(state, Mapping) or set(state) != {"next_index"}:
        got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise ConfigError("state", got, "expected {'next_index': n} (a pipeline without mp_prefetch)")
    g = check_int("state.next_index", state["next_index"], lo=0) * old
    check_int("global position (state.next_index × old_world_size)", g, lo=0)
    if g % new:
        why = f"global position {g} is not a multiple of new_world_size={new} (resume at a batch boundary)"
        raise ConfigError("state.next_index", state["next_index"], why)
    return {"next_index": g // new}
