"""Streaming per-domain sources under any coolmix schedule: example slots or packed token rows.

A *source* is one domain's items in order: a re-iterable (list, custom iterable), a zero-argument
factory returning an iterator (a generator function), an HF ``datasets.IterableDataset``, a
``torchdata.nodes`` node, or a directory of ``*.jsonl`` / ``*.txt`` shards (one item per line). When
a source runs out, a new *pass* restarts it, calling ``set_epoch(pass)`` where it has one.

Lanes. Every (data-parallel rank, DataLoader worker) pair is one *lane*; lane ℓ = rank·W + worker
of L = world_size·W lanes reads its own sub-stream of every domain, so no item is read by two
lanes and, within a pass, each lane reads its sub-stream without gaps:

- HF ``IterableDataset``: ``datasets.distributed.split_dataset_by_node(ds, ℓ, L)`` (whole shards
  when L divides ``num_shards``, else every L-th example);
- a shard directory: whole files round-robin when L divides the file count, else every L-th line;
- a source with its own ``shard(num_shards, index)`` (HF-style): that, with ``(L, ℓ)``;
- anything else: every L-th item (round-robin by item index; the others are read and dropped).

The data-parallel rank and size come from `coolmix.integrations.ranks`, as for the torch
adapters: explicit ``rank``/``world_size``, a process ``group`` or a device ``mesh`` (its
``mesh_dim``), else the default group, resolved when iteration starts. Tensor-parallel peers
(same dp rank) read identical batches, and ``WORLD_SIZE`` > 1 with no group joined is a
`ConfigError`, not a silent world of one.

Each lane runs the schedule on its own: `StreamMixture` gives each of its batches exact
per-domain counts (largest remainder with carried residuals, `coolmix.sampler.exact_counts`);
`PackedStreams` packs (rows/world_size, seq_len) batches with a `coolmix.packing.TokenPacker`.
Worker w of a rank makes that rank's batches at steps w, w + W, … (the order a DataLoader
collects them in), and the schedule is evaluated at that global step. Global counts are the sum
of the lanes': within L items per domain (examples), within L·(one document per domain) (tokens).

State. Per lane and domain: pass number, items consumed in the pass, plus the source's own
``state_dict()`` where it has one (HF, torchdata nodes), so restoring is a load. A source without
state is *skipped forward*: re-iterated from the start of its pass and ``consumed·L`` items dropped
(cost proportional to the items read in the current pass; a ``transform`` given here runs only on
kept items, so prefer passing raw items and tokenising through ``transform``). The lane layout is
part of the state: resume needs the same world size and worker count (lanes are independent, so
this stream is not world-size-elastic like `MixtureSampler`); another layout is a `ConfigError`
naming ``stream_state.layout`` with the saved and the current ``[world_size, workers]``. With
DataLoader workers, use ``torchdata.stateful_dataloader.StatefulDataLoader(ds.as_torch(),
batch_size=None, ...)``: it calls `state_dict` / `load_state_dict` inside each worker, which is
the protocol implemented here. A lane state names its run (total_steps, schedule, sizes, batch
size or rows, seed) and every field is checked on load (`coolmix.integrations.stream_state`).
When a source raises, the error reaches the loop and the lane stops: every later ``next`` (and
`state_dict`) is a ConfigError naming the source, never a silently shortened stream; resume from
a state saved before the failure. Batches cross the worker boundary by value
(`coolmix.integrations.transfer`).

Size: one home for the lane machinery both mixers share (sources and passes, sharding, the state
format with its reader and writer, the torch view); split, the state format would be read in one
module and written in another.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from coolmix.errors import ConfigError
from coolmix.fileio import iter_lines, open_regular
from coolmix.integrations.ranks import DP_MESH_DIM, DataParallel, DataParallelView, data_parallel
from coolmix.integrations.stream_state import (
    CONSUMED_KEY,
    LAYOUT_KEY,
    PASS_KEY,
    REALISED_KEY,
    SOURCE_KEY,
    STATE_VERSION,
    TOTAL_KEY,
    read_domain,
    read_examples_lane,
    read_lane,
    read_packed_lane,
)
from coolmix.integrations.transfer import ByValueBatch
from coolmix.mixture import Mixture
from coolmix.packing import LongDocs, TokenPacker, as_tokens, resolve_schedule
from coolmix.permutation import derive_key, permute, splitmix64
from coolmix.sampler import exact_counts
from coolmix.schedules import Context, Schedule
from coolmix.validate import check_int

__all__ = [
    "STATE_VERSION",
    "DomainStream",
    "PackedStreams",
    "StreamMixture",
    "realised_from_state",
]

SHARD_SUFFIXES = (".jsonl", ".txt")


# -- one domain's stream in one lane --------------------------------------------------------------


def _kind(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return "dir"
    if type(source).__module__.startswith("datasets") and hasattr(source, "iter"):
        return "hf"
    if hasattr(source, "reset") and hasattr(source, "get_state"):
        return "node"  # torchdata.nodes.BaseNode
    if callable(source) and not hasattr(source, "__iter__"):
        return "factory"
    if isinstance(source, Iterable):
        return "iterable"
    raise ConfigError(
        "sources", type(source).__name__, "must be an iterable, a factory, an HF/torchdata source or a dir"
    )


class DomainStream:
    """One domain's items for one lane, in order; a new pass restarts the source; resumable.

    ``state_dict()`` is ``{"pass", "consumed", "total", "source"}``: the pass number, items this
    lane took in the pass and overall, and the source's own state (HF / torchdata) or None.

    >>> s = DomainStream(lambda: iter("abc"), "letters", lane=1, lanes=2)
    >>> [next(s) for _ in range(3)], s.state_dict()["pass"]
    (['b', 'b', 'b'], 2)
    """

    def __init__(self, source: Any, name: str, lane: int = 0, lanes: int = 1) -> None:
        self.name, self.kind = name, _kind(source)
        self.source, self.lane, self.lanes = source, lane, lanes
        self._pass, self._consumed, self._total = 0, 0, 0
        self._view: Any = None  # the lane's view of the source (HF split or the node itself)
        self._it: Iterator[Any] | None = None
        self._failed = False  # the source raised: a one-shot iterator cannot be reopened
        if self.kind == "dir":
            self._files = _shard_files(Path(source))

    # state -----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        src = None
        if self._it is not None and self.kind in ("hf", "node"):
            src = self._view.state_dict()
        return {PASS_KEY: self._pass, CONSUMED_KEY: self._consumed, TOTAL_KEY: self._total, SOURCE_KEY: src}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._pass, self._consumed, self._total, src = read_domain(state, self.name, self.kind)
        self._it = self._open(src if self._consumed else None, skip=0 if src else self._consumed)

    # iteration -------------------------------------------------------------------------------

    def __iter__(self) -> DomainStream:
        return self

    def __next__(self) -> Any:
        """The next item. If the source raises, the error propagates and the next call reopens the
        pass and skips the items already taken (as a resume does): the item that failed is read
        again, nothing is skipped or repeated (a one-shot iterator cannot reopen: ConfigError)."""
        if self._it is None:
            self._it = self._open(None, self._consumed)
        try:
            item = next(self._it)
        except StopIteration:
            if self._consumed == 0:
                raise self._empty() from None
            self._pass, self._consumed = self._pass + 1, 0
            self._it = self._open(None, 0)
            try:
                item = next(self._it)
            except StopIteration:
                raise self._empty() from None
        except Exception:
            self._it, self._failed = None, True  # a failed iterator is done: reopen at (pass, consumed)
            raise
        self._consumed += 1
        self._total += 1
        return item

    def _empty(self) -> ConfigError:
        return ConfigError(
            f"sources.{self.name}", self.kind, f"no items for lane {self.lane} of {self.lanes}"
        )

    def _open(self, state: Any, skip: int) -> Iterator[Any]:
        """An iterator over this lane's items of the current pass, resumed from ``state`` or ``skip``."""
        src, lane, lanes, p = self.source, self.lane, self.lanes, self._pass
        if self.kind == "hf":
            from datasets.distributed import split_dataset_by_node

            view = split_dataset_by_node(src, rank=lane, world_size=lanes) if lanes > 1 else src
            view.set_epoch(p)
            if state is not None:
                view.load_state_dict(state)
            self._view = view
            # .iter() instead of iter(): HF would shard again by DataLoader worker inside a worker
            return islice(_unbatch(view.iter(batch_size=1)), skip, None)
        if self.kind == "node":
            self._view = src
            src.reset(state)
            if state is not None:  # the saved state sits right after this lane's last item
                return islice(src, lanes - 1, None, lanes)
            return islice(src, lane + skip * lanes, None, lanes)
        if hasattr(src, "set_epoch"):
            src.set_epoch(p)
        if lanes > 1 and self.kind in ("factory", "iterable") and hasattr(src, "shard"):
            view = src.shard(num_shards=lanes, index=lane)  # the source's own sharding
            return islice(
                view() if callable(view) and not hasattr(view, "__iter__") else iter(view), skip, None
            )
        if self.kind == "dir":
            files = self._files
            if len(files) % lanes == 0:  # whole files per lane: nothing read twice
                return islice(_read_lines(files[lane::lanes]), skip, None)
            return islice(_read_lines(files), lane + skip * lanes, None, lanes)
        it = src() if self.kind == "factory" else iter(src)
        if it is src and (p > 0 or self._failed):
            raise ConfigError(
                f"sources.{self.name}", type(src).__name__, "a one-shot iterator cannot restart"
            )
        return islice(it, lane + skip * lanes, None, lanes)


def _unbatch(batches: Iterable[Mapping[str, list[Any]]]) -> Iterator[dict[str, Any]]:
    for b in batches:
        yield {k: v[0] for k, v in b.items()}


def _shard_files(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ConfigError("sources", str(root), "a path source must be a directory of shards")
    files = sorted(f for f in root.iterdir() if f.suffix in SHARD_SUFFIXES)
    for f in files:  # a directory, FIFO or device named like a shard: one line now, not a hang later
        os.close(open_regular(f, os.O_RDONLY, "sources", follow=True))
    if not files:
        raise ConfigError("sources", str(root), f"no {' / '.join(SHARD_SUFFIXES)} shards in this directory")
    return files


def _read_lines(files: list[Path]) -> Iterator[Any]:
    """Items of shard files in order: a JSON value per ``.jsonl`` line, a string per ``.txt`` line."""
    for f in files:
        for n, line in iter_lines(f, "sources"):
            if f.suffix != ".jsonl":
                yield line.rstrip("\n")
                continue
            try:
                yield json.loads(line)
            except ValueError as e:
                raise ConfigError("sources", f"{f}:{n}", f"line {n} is not JSON ({e})") from None


# -- lanes ----------------------------------------------------------------------------------------


def _worker() -> tuple[int, int]:
    """(worker id, workers) of the DataLoader worker running this, else (0, 1) (torch stays lazy)."""
    if "torch" not in sys.modules:
        return 0, 1
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class _LaneIterator:
    """A lane's batches. Once a source (or ``transform``) raised, every later `next` is a ConfigError
    naming it: the generator that raised is finished, and iterating it again would silently end the
    stream; the lane's counters are mid-batch, so `state_dict` refuses too (resume from a state
    saved before the failure, which is exact)."""

    def __init__(self, lane: dict[str, Any], batches: Iterator[Any]) -> None:
        self.lane, self.batches = lane, batches

    def __iter__(self) -> _LaneIterator:
        return self

    def __next__(self) -> Any:
        failed = self.lane.get("failed")
        if failed is not None:
            why = "the lane stopped when its source raised; load_state_dict(an earlier state) resumes exactly"
            raise ConfigError(f"sources.{failed}", "failed", why)
        try:
            return next(self.batches)
        except StopIteration:
            raise
        except Exception:
            broken = [s.name for s in self.lane["streams"] if s._failed and s._it is None]
            self.lane["failed"] = broken[0] if broken else "transform"
            raise


class _Lanes(DataParallelView):
    """Shared machinery: argument checks, sources, the schedule, the data-parallel coordinate,
    per-lane state, the torch / StatefulDataLoader protocol.

    ``per_step`` is the subclass's global amount per step, ``(field, value, largest)``
    (``batch_size`` examples or ``rows``), split evenly over the data-parallel ranks.
    """

    def __init__(
        self,
        sources: Mapping[str, Any],
        sizes: Mapping[str, float] | Mixture,
        schedule: Schedule | float | Mapping[str, Any],
        total_steps: int,
        per_step: tuple[str, Any, int],
        dp: DataParallel,
        transform: Callable[[Any], Any] | None,
    ) -> None:
        self.names, self.sizes, self.schedule, self.total_steps = resolve_schedule(
            sizes, schedule, total_steps
        )
        if not isinstance(sources, Mapping) or set(sources) != set(self.names):
            got = sorted(sources) if isinstance(sources, Mapping) else sources
            raise ConfigError("sources", got, f"need exactly the domains {list(self.names)}")
        for n in self.names:
            _kind(sources[n])
        self.sources = {n: sources[n] for n in self.names}
        field, value, largest = per_step
        self._per_step = (field, check_int(field, value, lo=1, hi=largest))
        self.dp = dp
        if dp.explicit:  # a fixed coordinate is checked now; the others when iteration starts
            self._per_rank(dp.world_size)
        self.transform = transform
        self._lane: dict[str, Any] | None = None
        self._loaded: Mapping[str, Any] | None = None

    def _per_rank(self, world_size: int) -> int:
        """This rank's share of the per-step amount; it must divide evenly."""
        field, value = self._per_step
        if value % world_size:
            raise ConfigError(field, value, f"not divisible by world_size={world_size}")
        return value // world_size

    # lane construction -------------------------------------------------------------------------

    def lane(self, rank: int = 0, world_size: int = 1, worker: int = 0, workers: int = 1) -> Iterator[Any]:
        """Batches of one lane, from its current state (in-process simulation of ranks and workers)."""
        lane_id = rank * workers + worker
        self._lane = self._new_lane(lane_id, world_size, workers)
        self._lane[LAYOUT_KEY] = [world_size, workers]
        if self._loaded is not None:
            self._restore(self._loaded, lane_id, [world_size, workers])
            self._loaded = None
        return _LaneIterator(self._lane, self._run(self._lane, worker, workers))

    def __iter__(self) -> Iterator[Any]:
        # resolved now, not at construction: a mixer may be built before init_process_group, and a
        # spawned worker got the coordinate resolved in the parent (pickled with DataParallel)
        rank, world_size = self.dp.resolve()
        return self.lane(rank, world_size, *_worker())

    def _streams(self, lane_id: int, lanes: int) -> list[DomainStream]:
        return [DomainStream(self.sources[n], n, lane_id, lanes) for n in self.names]

    def _puller(self, streams: list[DomainStream]) -> Callable[[int], Any]:
        """d → the next (transformed) item of domain d; bound once per lane, as it runs per document."""
        pull, transform = [s.__next__ for s in streams], self.transform
        if transform is None:
            return lambda d: pull[d]()
        return lambda d: transform(pull[d]())

    # state -------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """This lane's state (JSON-able); {} before iteration starts. Save one per (rank, worker).

        It names the run (`_run_fields`); after a source raised mid-batch there is no batch
        boundary to save, so it is a ConfigError (resume from a state saved before the failure).
        """
        if self._lane is None:
            return dict(self._loaded or {})
        lane = self._lane
        if lane.get("failed"):
            why = "a source raised mid-batch; resume from a state saved before the failure"
            raise ConfigError(f"sources.{lane['failed']}", "failed", why)
        return {
            "version": STATE_VERSION,
            "lane": lane["id"],
            LAYOUT_KEY: lane[LAYOUT_KEY],
            "streams": {n: s.state_dict() for n, s in zip(self.names, lane["streams"], strict=True)},
            **self._run_fields(),
            **self._extra_state(lane),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume: the next iteration (or `lane` call) continues that lane exactly.

        Every field is checked now (`coolmix.integrations.stream_state`), before anything changes:
        a state of another run (total_steps, schedule, sizes, batch size, seed) is refused.
        """
        if not isinstance(state, Mapping):
            raise ConfigError("stream_state", state, "must be a mapping from state_dict()")
        if state:
            kinds = [_kind(self.sources[n]) for n in self.names]
            r, layout, totals = read_lane(state, self._run_fields(), self.names, kinds)
            self._check_state(r, layout, totals)
        self._loaded = state or None
        self._lane = None

    def _restore(self, state: Mapping[str, Any], lane_id: int, layout: list[int]) -> None:
        saved = state.get(LAYOUT_KEY)
        if not isinstance(saved, (list, tuple)) or list(saved) != layout:
            why = f"saved under [world_size, workers] = {saved}, resumed under {layout} (must be equal)"
            raise ConfigError(f"stream_state.{LAYOUT_KEY}", saved, why)
        if state.get("lane") != lane_id:
            why = f"saved by another lane; this is lane {lane_id} (rank·workers + worker) of {layout}"
            raise ConfigError("stream_state.lane", state.get("lane"), why)
        assert self._lane is not None
        for n, s in zip(self.names, self._lane["streams"], strict=True):
            s.load_state_dict(state["streams"][n])
        self._load_extra(self._lane, state)

    def realised(self) -> dict[str, dict[str, int]]:
        """This lane's realised documents (and tokens, where counted) per domain."""
        return self._lane[REALISED_KEY]() if self._lane is not None else {}

    def as_torch(self) -> Any:
        """A ``torch.utils.data.IterableDataset`` view (for ``DataLoader(..., batch_size=None)``).

        `PackedStreams` batches leave a DataLoader worker by value (`ByValueBatch`): one pickle of
        the numpy rows per batch instead of a shared-memory file-descriptor handshake per tensor,
        and arrive in the main process as a dict of CPU tensors with the numpy dtypes (int64 ids,
        bool ``loss_mask``), so the loop reads ``b["input_ids"]`` as before.
        """
        return _torch_class()(self)

    # subclass hooks
    def _run_fields(self) -> dict[str, Any]:
        """What a saved state must have been saved by: the run's length, schedule and sizes."""
        return {
            "total_steps": self.total_steps,
            "schedule": self.schedule.to_dict(),
            "sizes": dict(zip(self.names, self.sizes.tolist(), strict=True)),
        }

    def _check_state(self, r: Any, layout: list[int], totals: list[int]) -> None:
        raise NotImplementedError

    def _new_lane(self, lane_id: int, world_size: int, workers: int) -> dict[str, Any]:
        raise NotImplementedError

    def _run(self, lane: dict[str, Any], worker: int, workers: int) -> Iterator[Any]:
        raise NotImplementedError

    def _extra_state(self, lane: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _load_extra(self, lane: dict[str, Any], state: Mapping[str, Any]) -> None:
        raise NotImplementedError


class StreamMixture(_Lanes):
    """Example-level mixing of streams: each lane batch has exact per-domain counts from p(step).

    ``batch_size`` is global; each rank's batches hold batch_size / world_size items, as a list of
    ``{"domain": d, "domain_name": name, **item}`` (mapping items) or ``(item, d)`` pairs, in a
    keyed-shuffled order. ``tokens(item)`` (optional) counts tokens for `realised`.

    >>> mix = StreamMixture({"a": lambda: iter(range(100)), "b": lambda: iter(range(100, 110))},
    ...                     {"a": 100, "b": 10}, 1.0, total_steps=4, batch_size=11)
    >>> [sum(d == 1 for _, d in batch) for batch in mix]
    [1, 1, 1, 1]
    """

    def __init__(
        self,
        sources: Mapping[str, Any],
        sizes: Mapping[str, float] | Mixture,
        schedule: Schedule | float | Mapping[str, Any],
        total_steps: int,
        batch_size: int,
        *,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        group: Any = None,
        mesh: Any = None,
        mesh_dim: str = DP_MESH_DIM,
        transform: Callable[[Any], Any] | None = None,
        tokens: Callable[[Any], int] | None = None,
    ) -> None:
        dp = data_parallel(rank, world_size, group=group, mesh=mesh, mesh_dim=mesh_dim)
        super().__init__(
            sources, sizes, schedule, total_steps, ("batch_size", batch_size, 2**26), dp, transform
        )
        self.batch_size = self._per_step[1]
        self.seed = check_int("seed", seed, lo=0)
        self.tokens = tokens

    def _new_lane(self, lane_id: int, world_size: int, workers: int) -> dict[str, Any]:
        local = self._per_rank(world_size)
        k = len(self.names)
        lane: dict[str, Any] = {
            "id": lane_id,
            "streams": self._streams(lane_id, world_size * workers),
            "k": 0,  # batches this lane produced
            "residuals": np.zeros(k),
            "docs": np.zeros(k, dtype=np.int64),
            "toks": np.zeros(k, dtype=np.int64),
            "local": local,
        }
        lane[REALISED_KEY] = lambda: {
            n: {"documents": int(d), "tokens": int(t)}
            for n, d, t in zip(self.names, lane["docs"], lane["toks"], strict=True)
        }
        return lane

    def _run(self, lane: dict[str, Any], worker: int, workers: int) -> Iterator[list[Any]]:
        b = lane["local"]
        order_key = derive_key(self.seed, "stream-order", lane["id"])
        ctx = Context(self.names, self.sizes, self.total_steps, (), lane["docs"])
        item = self._puller(lane["streams"])
        while (step := lane["k"] * workers + worker) < self.total_steps:
            counts, lane["residuals"] = exact_counts(self.schedule.probs(step, ctx), b, lane["residuals"])
            domains = np.repeat(np.arange(len(self.names)), counts)
            key = order_key ^ int(splitmix64(np.array([step], dtype=np.uint64))[0])
            domains = domains[permute(np.arange(b, dtype=np.uint64), b, key).astype(np.int64)]
            batch = []
            for d in domains.tolist():
                x = item(d)
                lane["docs"][d] += 1
                if self.tokens is not None:
                    lane["toks"][d] += int(self.tokens(x))
                if isinstance(x, Mapping):
                    if "domain" in x or "domain_name" in x:  # the item's own field would replace the tag
                        clash = sorted(k for k in ("domain", "domain_name") if k in x)
                        why = "items already have these keys (the stream tags each item); rename them"
                        raise ConfigError(f"sources.{self.names[d]}", clash, why)
                    batch.append({"domain": d, "domain_name": self.names[d], **x})
                else:
                    batch.append((x, d))
            lane["k"] += 1
            yield batch

    def _run_fields(self) -> dict[str, Any]:
        return {**super()._run_fields(), "batch_size": self.batch_size, "seed": self.seed}

    def _check_state(self, r: Any, layout: list[int], totals: list[int]) -> None:
        read_examples_lane(r, self.names, totals, self._per_rank(layout[0]), self.total_steps)

    def _extra_state(self, lane: dict[str, Any]) -> dict[str, Any]:
        return {
            "batches": lane["k"],
            "residuals": dict(zip(self.names, lane["residuals"].tolist(), strict=True)),
            REALISED_KEY: lane[REALISED_KEY](),
        }

    def _load_extra(self, lane: dict[str, Any], state: Mapping[str, Any]) -> None:
        lane["k"] = int(state["batches"])
        lane["residuals"] = np.array([float(state["residuals"][n]) for n in self.names])
        lane["docs"][:] = [state[REALISED_KEY][n]["documents"] for n in self.names]
        lane["toks"][:] = [state[REALISED_KEY][n]["tokens"] for n in self.names]


class PackedStreams(_Lanes):
    """Token-level mixing of streams: each lane packs (rows / world_size, seq_len) batches by deficit.

    Documents come from ``tokens(transform(item))`` (default: the item is token ids or a mapping
    with ``"input_ids"``); batches are `coolmix.packing.TokenPacker` dicts of (R, T) arrays. The
    lane's packer state (with its partly placed document) is in `state_dict`.
    """

    def __init__(
        self,
        sources: Mapping[str, Any],
        sizes: Mapping[str, float] | Mixture,
        schedule: Schedule | float | Mapping[str, Any],
        total_steps: int,
        rows: int,
        seq_len: int,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        group: Any = None,
        mesh: Any = None,
        mesh_dim: str = DP_MESH_DIM,
        transform: Callable[[Any], Any] | None = None,
        tokens: Callable[[Any], Any] = as_tokens,
        pad_id: int = 0,
        long_docs: LongDocs = "split",
    ) -> None:
        dp = data_parallel(rank, world_size, group=group, mesh=mesh, mesh_dim=mesh_dim)
        super().__init__(sources, sizes, schedule, total_steps, ("rows", rows, 2**20), dp, transform)
        self.rows = self._per_step[1]
        self.seq_len = check_int("seq_len", seq_len, lo=1, hi=2**24)
        self.tokens, self.pad_id, self.long_docs = tokens, pad_id, long_docs
        TokenPacker(sizes, self.schedule, total_steps, 1, self.seq_len, pad_id=pad_id, long_docs=long_docs)

    def _new_lane(self, lane_id: int, world_size: int, workers: int) -> dict[str, Any]:
        local = self._per_rank(world_size)
        sizes = dict(zip(self.names, self.sizes.tolist(), strict=True))
        packer = TokenPacker(
            sizes,
            self.schedule,
            self.total_steps,
            local,
            self.seq_len,
            pad_id=self.pad_id,
            long_docs=self.long_docs,
        )
        return {
            "id": lane_id,
            "streams": self._streams(lane_id, world_size * workers),
            "packer": packer,
            REALISED_KEY: packer.realised,
        }

    def _run(self, lane: dict[str, Any], worker: int, workers: int) -> Iterator[dict[str, np.ndarray]]:
        packer, tokens, item = lane["packer"], self.tokens, self._puller(lane["streams"])

        def next_doc(d: int) -> Any:
            return tokens(item(d))

        if tokens is as_tokens:  # the packer applies as_tokens itself: one call less per document
            next_doc = item
        while (step := packer.step * workers + worker) < self.total_steps:
            yield packer.pack(next_doc, step=step)

    def _run_fields(self) -> dict[str, Any]:
        return {**super()._run_fields(), "rows": self.rows, "seq_len": self.seq_len}

    def _check_state(self, r: Any, layout: list[int], totals: list[int]) -> None:
        read_packed_lane(r, self._new_lane(0, layout[0], layout[1])["packer"], self.names, totals)

    def _extra_state(self, lane: dict[str, Any]) -> dict[str, Any]:
        return {"packer": lane["packer"].state_dict(), REALISED_KEY: lane["packer"].realised()}

    def _load_extra(self, lane: dict[str, Any], state: Mapping[str, Any]) -> None:
        lane["packer"].load_state_dict(state["packer"])


_TORCH_CLASS: list[type] = []


def _torch_class() -> type:
    """The torch IterableDataset wrapper, defined on first use so importing this module needs no torch."""
    if not _TORCH_CLASS:
        from torch.utils.data import IterableDataset

        class TorchStreams(IterableDataset):
            """Delegates iteration and the StatefulDataLoader state protocol to a stream mixer."""

            def __init__(self, inner: _Lanes) -> None:
                self.inner = inner

            def __iter__(self) -> Iterator[Any]:
                if isinstance(self.inner, PackedStreams):
                    return map(ByValueBatch, iter(self.inner))
                return iter(self.inner)

            def state_dict(self) -> dict[str, Any]:
                return self.inner.state_dict()

            def load_state_dict(self, state: Mapping[str, Any]) -> None:
                self.inner.load_state_dict(state)

        # pickle (spawned DataLoader workers) finds the class as module.qualname, via __getattr__
        TorchStreams.__module__, TorchStreams.__qualname__ = __name__, "TorchStreams"
        _TORCH_CLASS.append(TorchStreams)
    return _TORCH_CLASS[0]


def __getattr__(name: str) -> Any:  # PEP 562: lets pickle find the lazily defined class
    if name == "TorchStreams":
        return _torch_class()
    raise AttributeError(name)


def realised_from_state(states: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Sum per-lane realised documents and tokens (from each lane's `state_dict`) per domain."""
    total: dict[str, dict[str, int]] = {}
    for st in states:
        lane = st[REALISED_KEY]
        for n, c in lane.items():
            acc = total.setdefault(n, {"documents": 0, "tokens": 0})
            acc["documents"] += int(c["documents"])
            acc["tokens"] += int(c["tokens"])
    return total
