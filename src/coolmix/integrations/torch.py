"""PyTorch adapters: feed a `MixtureSampler`'s stream to a `DataLoader` as domain-tagged examples.

Two ways in; both deliver exactly ``sampler.batch(step, rank, world_size)`` for step = start, start+1, …:

- **Map-style** (recommended): `MixtureDataset` (a concatenated view of per-domain datasets) plus
  `MixtureBatchSampler` (one list of flat indices per step), passed as
  ``DataLoader(dataset, batch_sampler=..., collate_fn=MixtureCollator())``. The main process samples
  and workers only fetch, so ``num_workers > 0`` can neither duplicate nor drop an example.
- **Iterable**: `MixtureIterableDataset`, passed as ``DataLoader(ds, batch_size=ds.batch_size)``. Worker
  w of W yields the whole batches of steps start + w, start + w + W, …; the DataLoader collects
  worker batches round-robin, which restores step order. Use it when your stack wants an
  ``IterableDataset``; it fixes the schedule for one pass (events recorded after iteration starts
  do not reach the worker copies).

Tagging. A dict example ``ex`` of domain ``d`` at item ``i`` becomes
``{"domain": d, "domain_name": names[d], "index": i, **ex}``; any other example becomes ``(ex, d)``.
`MixtureCollator` turns ``domain`` into a LongTensor, so
``coolmix.weighted_loss(loss_per_example, batch["domain"], weights)`` works as is.

Ranks are *data-parallel* coordinates, given as one ``dp=`` argument (`coolmix.integrations.ranks`):
``DataParallel(rank, world_size)``, a process group of the data-parallel peers, a ``DeviceMesh`` with
a ``"dp"`` dimension, or nothing (the default process group). They are read when iteration starts, not at
construction, so an adapter built before ``init_process_group`` is still right, and tensor- or
pipeline-parallel peers (same dp coordinate) get identical rows. Each dp rank gets its contiguous
slice of the global batch (`MixtureSampler.batch`), so a run resumed under another world size
sees the same global stream.

Resume. ``state_dict()`` is the core sampler's own state (a few counters, JSON-able, no rank) as of
the last batch your loop *consumed*. A DataLoader with workers asks for batches ahead of the loop
(``num_workers × prefetch_factor``), so "consumed" is counted where batches come out. Three ways,
all exact: wrap the loader, ``loader = MixtureLoader(DataLoader(...))`` (`coolmix.integrations.loader`),
whose ``state_dict()`` counts the batches it delivered; use torchdata's ``StatefulDataLoader``, which
snapshots the batch sampler's state per delivered batch (``loader.state_dict()`` alone resumes);
or iterate ``for batch in X.track(loader)`` / pass your own count, ``X.state_dict(step=n)``. The
batch sampler keeps the core state of each produced step not yet consumed, so rewinding to the
consumed step is a lookup, never a replay.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from torch.utils.data import Dataset, IterableDataset, Sampler, get_worker_info

from coolmix.errors import ConfigError
from coolmix.integrations.collate import (
    DOMAIN_KEY,
    DOMAIN_NAME_KEY,
    INDEX_KEY,
    TAG_KEYS,
    MixtureCollator,
    PadCollator,
)
from coolmix.integrations.ranks import DataParallel, DataParallelView, as_data_parallel
from coolmix.sampler import EVENTS_KEY, STEP_KEY, MixtureSampler
from coolmix.validate import check_int

__all__ = [
    "DOMAIN_KEY",
    "DOMAIN_NAME_KEY",
    "INDEX_KEY",
    "DataParallel",
    "MixtureBatchSampler",
    "MixtureCollator",
    "MixtureDataset",
    "MixtureIterableDataset",
    "PadCollator",
    "state_at",
]


# -- helpers shared with the HF adapter -------------------------------------------------------------


def _check_world_size(sampler: MixtureSampler, world_size: int) -> int:
    """The per-rank batch size; the global batch must split evenly over ranks."""
    if sampler.batch_size % world_size:
        raise ConfigError("world_size", world_size, f"does not divide batch_size={sampler.batch_size}")
    return sampler.batch_size // world_size


def _sampler_sizes(sampler: MixtureSampler) -> list[tuple[str, int]]:
    """(name, item count) per domain: item indices range over the counts, not the sizes (tokens)."""
    return list(sampler.items.items())


def _checked_dp(sampler: MixtureSampler, dp: Any) -> DataParallel:
    """``dp=`` read by `as_data_parallel`; an explicit coordinate is checked against the batch size
    at once, the others at iteration."""
    dp = as_data_parallel(dp)
    if dp.explicit:
        _check_world_size(sampler, dp.world_size)
    return dp


def _dp_slice(sampler: MixtureSampler, dp: DataParallel) -> tuple[int, int, int]:
    """(dp rank, dp size, per-rank batch size), resolved now."""
    rank, world = dp.resolve()
    return rank, world, _check_world_size(sampler, world)


def _check_matches(dataset: MixtureDataset, sampler: MixtureSampler) -> None:
    """Domain ids are positions, so names, order and lengths must all agree: the sampler draws
    item indices below its item counts, which must be the datasets' lengths (with sizes in
    tokens, pass ``items=`` the lengths)."""
    if list(dataset.sizes.items()) != _sampler_sizes(sampler):
        why = (
            f"lengths must be the sampler's item counts {dict(_sampler_sizes(sampler))} (names, order, "
            "lengths; sizes in tokens need MixtureSampler(..., items=<dataset lengths>))"
        )
        raise ConfigError("datasets", dataset.sizes, why)


def _check_step(step: Any) -> int:
    return check_int("step", step, lo=0)


def state_at(sampler: MixtureSampler, step: int) -> dict[str, Any]:
    """``sampler.state_dict()`` once ``step`` steps are consumed; moves ``sampler`` forward to ``step``.

    For streams produced elsewhere (worker copies, the HF adapter): the sampler you kept stays a
    cheap position marker. Moving forward costs O(K) per step (counts only) plus one batch;
    positions never move back.

    >>> s = MixtureSampler({"en": 100, "sw": 3}, 5.0, total_steps=10, batch_size=4)
    >>> state_at(s, 6)["step"]
    6
    """
    step = _check_step(step)
    if step < sampler.step:
        raise ConfigError(
            "step", step, f"the sampler is already at step {sampler.step}; it only moves forward"
        )
    if step > sampler.step:
        sampler.global_batch(step - 1)
    return sampler.state_dict()


def _count_batches(batches: Iterable[Any], on_batch: Callable[[Any, bool], None]) -> Iterator[Any]:
    """Yield ``batches`` and report each one as consumed (``first`` is True for the first)."""
    if getattr(batches, "in_order", True) is False:
        raise ConfigError("in_order", False, "track() counts batches in sampler order; use in_order=True")

    def counted() -> Iterator[Any]:
        first = True
        for batch in batches:
            on_batch(batch, first)
            first = False
            yield batch

    return counted()


# -- the concatenated, tagged view ------------------------------------------------------------------


class MixtureDataset(Dataset):
    """Per-domain map-style datasets as one dataset: flat index = ``offsets[domain] + index``.

    ``datasets`` is a mapping name → dataset (anything with ``__len__`` and ``__getitem__``: lists,
    torch datasets, HF ``datasets.Dataset``); its order defines the domain ids, so build the sampler
    from `sizes`. Items come back tagged (see the module docstring). Batched fetches
    (``__getitems__``, used by the DataLoader) call each domain's own ``__getitems__`` once when it
    has one (HF Datasets read a batch from Arrow in one go).

    >>> ds = MixtureDataset({"en": [{"x": 10}, {"x": 11}], "sw": [{"x": 20}]})
    >>> ds.sizes, len(ds), ds[2]
    ({'en': 2, 'sw': 1}, 3, {'domain': 1, 'domain_name': 'sw', 'index': 0, 'x': 20})
    """

    def __init__(self, datasets: Mapping[str, Any]) -> None:
        if not isinstance(datasets, Mapping) or not datasets:
            raise ConfigError("datasets", datasets, "must be a non-empty mapping name -> map-style dataset")
        lengths = []
        for name, ds in datasets.items():
            if not isinstance(name, str) or not name:
                raise ConfigError("datasets", name, "domain names must be non-empty strings")
            try:
                n = len(ds)
            except TypeError:
                raise ConfigError(
                    f"datasets.{name}", type(ds).__name__, "needs __len__ and __getitem__"
                ) from None
            if n <= 0:
                raise ConfigError(f"datasets.{name}", n, "is empty")
            lengths.append(n)
        self.names: tuple[str, ...] = tuple(datasets)
        self.datasets: tuple[Any, ...] = tuple(datasets.values())
        #: offsets[d] is the first flat index of domain d; offsets[-1] the total length
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

    @property
    def sizes(self) -> dict[str, int]:
        """Items per domain, in domain-id order: pass it to `MixtureSampler`."""
        bounds = zip(self.names, self.offsets[:-1], self.offsets[1:], strict=True)
        return {n: int(b - a) for n, a, b in bounds}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, flat: Any) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices → (domain ids, item indices), vectorised."""
        flat = np.asarray(flat, dtype=np.int64)
        domains = np.searchsorted(self.offsets, flat, side="right") - 1
        return domains, flat - self.offsets[domains]

    def flat_index(self, domains: Any, indices: Any) -> np.ndarray:
        """(domain ids, item indices) → flat indices, vectorised."""
        return self.offsets[np.asarray(domains, dtype=np.int64)] + np.asarray(indices, dtype=np.int64)

    def __getitem__(self, flat: int) -> Any:
        flat = int(flat)
        if not 0 <= flat < len(self):
            raise IndexError(f"flat index {flat} out of range [0, {len(self)})")
        d, i = self.locate([flat])
        return self.examples(d, i)[0]

    def __getitems__(self, flat: list[int]) -> list[Any]:
        return self.examples(*self.locate(flat))

    def examples(self, domains: np.ndarray, indices: np.ndarray) -> list[Any]:
        """Tagged examples for aligned (domain, index) arrays, in order; one fetch per domain.

        An index past its domain's length (a sampler built on other sizes, e.g. token counts)
        is a ConfigError, never another domain's item or an IndexError from the dataset.
        """
        domains, indices = np.asarray(domains, dtype=np.int64), np.asarray(indices, dtype=np.int64)
        lengths = np.diff(self.offsets)
        bad_d = (domains < 0) | (domains >= len(lengths))
        if bad_d.any():
            raise ConfigError("domains", int(domains[bad_d][0]), f"must be in [0, {len(lengths)})")
        bad = (indices < 0) | (indices >= lengths[domains])
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            name, n = self.names[int(domains[j])], int(lengths[domains[j]])
            why = (
                f"item of {name!r} past its dataset's end ({n} items): the sampler's item counts must be "
                "the datasets' lengths (sizes in tokens need MixtureSampler(..., items=<lengths>))"
            )
            raise ConfigError("index", int(indices[j]), why)
        out: list[Any] = [None] * len(domains)
        for d in np.unique(domains).tolist():
            where = np.flatnonzero(domains == d).tolist()
            items = indices[where].tolist()
            ds, name = self.datasets[d], self.names[d]
            fetch = getattr(ds, "__getitems__", None)
            got = fetch(items) if fetch else [ds[i] for i in items]
            for pos, i, ex in zip(where, items, got, strict=True):
                out[pos] = _tag(ex, d, name, i)
        return out


def _tag(example: Any, domain: int, name: str, index: int) -> Any:
    if isinstance(example, Mapping):
        if TAG_KEYS & example.keys():
            clash = sorted(TAG_KEYS & example.keys())
            raise ConfigError(f"datasets.{name}", clash, "examples already have these keys; rename them")
        return {DOMAIN_KEY: domain, DOMAIN_NAME_KEY: name, INDEX_KEY: index, **example}
    return (example, domain)


# -- map-style: the main process samples, workers fetch ---------------------------------------------


class _DataParallelView(DataParallelView):
    """`DataParallelView` plus ``batch_size``: examples per step on this rank (B / dp size)."""

    sampler: MixtureSampler

    @property
    def batch_size(self) -> int:
        """Examples per step on this rank: the sampler's batch_size / dp size."""
        return _dp_slice(self.sampler, self.dp)[2]


class MixtureBatchSampler(_DataParallelView, Sampler[list[int]]):
    """Per step, this rank's flat indices into a `MixtureDataset`: ``DataLoader(batch_sampler=...)``.

    Yields ``offsets[d] + i`` for ``(d, i) = sampler.batch(step, rank, world_size)`` (the ``dp``
    coordinate, see `coolmix.integrations.ranks`) from the
    consumed position to ``sampler.total_steps``; ``len`` is the number of steps left. The
    ``sampler`` you pass is the producer: ``sampler.step`` runs ahead of your loop by the
    DataLoader's prefetch, and events you record on it take effect at that produced step (a
    resumed run replays them at the same step, so resume stays exact).

    ``state_dict()`` is the core state at the consumed position: counted by `track`, else the
    produced one (exact with ``num_workers=0``), or given as ``state_dict(step=n)``. The core
    states of the last ``window`` produced steps are kept to answer it; a new ``iter`` restarts
    at the consumed position, so batches prefetched but never consumed are produced again.
    ``dataset``, when given, is checked against the sampler's sizes.
    """

    def __init__(
        self,
        sampler: MixtureSampler,
        *,
        dp: Any = None,
        dataset: MixtureDataset | None = None,
        window: int = 256,
    ) -> None:
        if not isinstance(sampler, MixtureSampler):
            raise ConfigError("sampler", type(sampler).__name__, "must be a coolmix.MixtureSampler")
        self.sampler = sampler
        self.dp = _checked_dp(sampler, dp)
        if dataset is not None:
            _check_matches(dataset, sampler)
        window = check_int("window", window, lo=1)
        self._offsets = np.concatenate([[0], np.cumsum([n for _, n in _sampler_sizes(sampler)])])
        self._snapshots: deque[dict[str, Any]] = deque(maxlen=window)
        self._position = sampler.step  # steps consumed
        self._iter_start = sampler.step
        self._tracking = False

    def __len__(self) -> int:
        return max(self.sampler.total_steps - self._position, 0)

    def __iter__(self) -> Iterator[list[int]]:
        rank, world, _ = _dp_slice(self.sampler, self.dp)  # at iteration start, not at construction
        start = self._position
        if self.sampler.step != start:  # a previous pass ran ahead of what was consumed
            self.sampler.load_state_dict(self._state_at(start))
        self._iter_start, self._tracking = start, False
        for step in range(start, self.sampler.total_steps):
            self._snapshot()
            d, i = self.sampler.batch(step, rank, world)
            if not self._tracking:
                self._position = step + 1
            yield (self._offsets[d] + i).tolist()

    def _snapshot(self) -> None:
        state = self.sampler.state_dict()
        del state[EVENTS_KEY]  # events are append-only: the current list is merged in on read
        self._snapshots.append(state)

    def _state_at(self, step: int) -> dict[str, Any]:
        current = self.sampler.state_dict()
        if step == current[STEP_KEY]:
            return current
        for state in self._snapshots:
            if state[STEP_KEY] == step:
                return {**state, EVENTS_KEY: current[EVENTS_KEY]}
        kept = [s[STEP_KEY] for s in self._snapshots] + [current[STEP_KEY]]
        raise ConfigError("step", step, f"not a kept position (kept {min(kept)}..{max(kept)})")

    def track(self, batches: Iterable[Any]) -> Iterator[Any]:
        """Yield the DataLoader's batches, counting each as consumed (one batch = one step)."""

        def on_batch(_batch: Any, first: bool) -> None:
            if first:  # the pass began at _iter_start, whatever the prefetch produced since
                self._tracking, self._position = True, self._iter_start
            self._position += 1
            while self._snapshots and self._snapshots[0][STEP_KEY] < self._position:
                self._snapshots.popleft()

        return _count_batches(batches, on_batch)

    def state_dict(self, step: int | None = None) -> dict[str, Any]:
        """The core sampler's state after ``step`` steps consumed (default: the consumed position)."""
        return self._state_at(self._position if step is None else _check_step(step))

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a core state (from any world size); the next ``iter`` starts at its step."""
        self.sampler.load_state_dict(state)
        self._snapshots.clear()
        self._position = self._iter_start = self.sampler.step
        self._tracking = False


# -- iterable: workers sample their own steps -------------------------------------------------------


class MixtureIterableDataset(_DataParallelView, IterableDataset):
    """Tagged examples in step order, this rank's slice; use ``DataLoader(ds, batch_size=ds.batch_size)``.

    With W workers, worker w yields the whole per-rank batches of steps start + w + kW; the
    DataLoader takes worker batches round-robin, so batch k is step start + k. Every worker
    computes the per-step counts itself (O(K) a step) and fetches only its own batches.

    ``sampler`` is the position marker: iteration runs on copies, and ``state_dict()`` moves it
    forward to the consumed step (counted by `track`, or given as ``step=``) with `state_at`.

    The consumed position lives in shared memory, so a DataLoader with ``persistent_workers=True``
    (whose workers keep the copy they got at the first pass) starts every pass at the current
    position, not the first one's. `load_state_dict` while such workers live is refused at their
    next pass (their sampler copies would be stale): build a new DataLoader after loading.
    """

    def __init__(
        self,
        datasets: Mapping[str, Any] | MixtureDataset,
        sampler: MixtureSampler,
        *,
        dp: Any = None,
    ) -> None:
        if not isinstance(sampler, MixtureSampler):
            raise ConfigError("sampler", type(sampler).__name__, "must be a coolmix.MixtureSampler")
        self.dataset = datasets if isinstance(datasets, MixtureDataset) else MixtureDataset(datasets)
        _check_matches(self.dataset, sampler)
        self.sampler = sampler
        self.dp = _checked_dp(sampler, dp)
        self._position = sampler.step
        self._shared = _shared_counters()  # [the pass's start, loads]: read by the workers
        self._loads = 0
        self._publish()

    def _publish(self) -> None:
        """Make the consumed position the next pass starts at (and the number of loads) visible to
        worker copies. Called at construction, load and the start and end of a tracked pass, never
        per batch: a worker that starts late must not see a position the loop has already moved."""
        if self._shared is not None:
            self._shared[0], self._shared[1] = self._position, self._loads

    def _start(self) -> int:
        """The step a pass starts at: the parent's consumed position when the pass began, read through
        shared memory (a persistent worker's own copy keeps the position it was made with)."""
        if self._shared is None:
            if get_worker_info() is not None and getattr(self, "_passes", 0) > 0:
                why = "no shared memory to send the position to living workers: persistent_workers=False"
                raise ConfigError("persistent_workers", True, why)
            self._passes = getattr(self, "_passes", 0) + 1
            return self._position
        if int(self._shared[1]) != self._loads:
            why = "load_state_dict after the workers started (stale sampler copies): build a new DataLoader"
            raise ConfigError("persistent_workers", True, why)
        return int(self._shared[0])

    def __len__(self) -> int:
        """Examples this rank yields from the consumed position on."""
        return max(self.sampler.total_steps - self._position, 0) * self.batch_size

    def __iter__(self) -> Iterator[Any]:
        # resolved in the worker: a spawned worker got the parent's answer pickled (DataParallel)
        rank, world, _ = _dp_slice(self.sampler, self.dp)
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        core = copy.deepcopy(self.sampler)  # never move the position marker while iterating
        for step in range(self._start() + worker, core.total_steps, workers):
            yield from self.dataset.examples(*core.batch(step, rank, world))

    def track(self, batches: Iterable[Any]) -> Iterator[Any]:
        """Yield the DataLoader's batches, counting each as one consumed step.

        Checks that collated batches hold exactly one step (``batch_size=ds.batch_size``).
        """

        def on_batch(batch: Any, _first: bool) -> None:
            if (
                isinstance(batch, Mapping)
                and DOMAIN_KEY in batch
                and len(batch[DOMAIN_KEY]) != self.batch_size
            ):
                raise ConfigError("batch_size", len(batch[DOMAIN_KEY]), f"use the per-rank {self.batch_size}")
            self._position += 1

        counted = _count_batches(batches, on_batch)

        def one_pass() -> Iterator[Any]:
            self._publish()  # the workers start at iter(loader), inside the first next(): this pass's start
            try:
                yield from counted
            finally:
                self._publish()  # after a break, the next pass (persistent workers too) resumes here

        return one_pass()

    def state_dict(self, step: int | None = None) -> dict[str, Any]:
        """The core sampler's state after ``step`` steps consumed (default: as counted by `track`)."""
        return state_at(self.sampler, self._position if step is None else step)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a core state (from any world size); the next ``iter`` starts at its step."""
        self.sampler.load_state_dict(state)
        self._position = self.sampler.step
        self._loads += 1
        self._publish()


def _shared_counters() -> Any:
    """Two int64 counters in shared memory (inherited or sent by handle to DataLoader workers,
    fork or spawn), or None where shared memory is unavailable."""
    import torch

    try:
        return torch.zeros(2, dtype=torch.int64).share_memory_()
    except (RuntimeError, OSError):  # no /dev/shm: persistent workers are then refused (see _start)
        return None
