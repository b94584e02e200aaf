"""Streaming per-domain sources under any coolmix schedule: example slots or packed token rows.

A *source* is one domain's items in order: a re-iterable (list, custom iterable), a zero-argument
factory returning an iterator (a generator function), an HF ``datasets.IterableDataset``, a
``torchdata.nodes`` node, or a directory of ``*.jsonl`` / ``*.txt`` shards (one item per line).
`coolmix.integrations.readers` reads each one in the domain's *global order* (pass after pass;
a pass restarts the source, calling ``set_epoch(pass)`` where it has one).

One global stream, sliced into lanes. Every (data-parallel rank, DataLoader worker) pair is a
*lane*. The stream is defined globally and does not depend on the layout:

- `StreamMixture`: the counts of global step s come from one `coolmix.MixtureSampler` (exact:
  largest remainder with carried residuals, `cumulative_counts`), so each domain's count is
  within 1 of Σ B·p(s) whatever the number of lanes; the B rows are ordered by a keyed shuffle of
  (seed, s); global row j takes the next item of its domain in that domain's global order.
- `PackedStreams`: one `coolmix.packing.TokenPacker` packs the global (rows, seq_len) batch of
  step s from the domains' global orders (its token deficit decides the domain).

Rank r of R takes the contiguous rows [r·B/R, (r+1)·B/R) of each step (as `MixtureSampler.batch`
does), and worker w of W makes that rank's batches of steps o + w, o + w + W, … (the order a
DataLoader collects them in; o is the step the iteration started at: 0, or a loaded state's).
So what all lanes yield together is the single-process stream, for any layout.

Cost (documented, not hidden): every lane reads every domain's stream and skips the items other
lanes take, so reading is up to L = R·W times a single reader's. Skips are in contiguous runs (a
rank's rows of a domain are consecutive in its order; other workers' steps are whole), and use
the source's own skip where it has one (a shard directory skips lines unparsed; restore is a
seek). ``transform`` runs only on the lane's own items in `StreamMixture` (on every item when
``tokens`` is given, to count the global realised tokens); `PackedStreams` must tokenise every
document in every lane, since the deficit rule needs every document's length: L× the packing
work, so W DataLoader workers pack no faster than one (on a 2-core machine the DataLoader's
transfer, not packing, bounded `benchmarks/bench_pipeline.py` either way); one worker overlaps
packing with training.

State. `state_dict` is global: the run (total_steps, schedule, sizes, batch size or rows, seed),
the next global step, each domain's reader state at that step's position (its pass, position and
the source's own state: HF and torchdata states, a shard directory's (file, byte)), the realised
exposure, and the packer's state for `PackedStreams`. A lane's state after its batch of step s is
the global state at s + 1, so under a ``StatefulDataLoader`` each worker's saved state restores it
exactly (same layout), and `latest_state` of all lanes' states (the largest step: what the loader
delivered) resumes under *any* other layout through ``load_state_dict`` before iterating: no item
of any domain duplicated or skipped. Every field is checked by ``load_state_dict``
(`coolmix.integrations.stream_state`), with one-line `ConfigError`s naming the field.

The data-parallel coordinate comes from ``dp=``, as in every adapter (`coolmix.integrations.ranks`:
None, ``DataParallel(rank, world_size)``, a process group or a ``DeviceMesh``), resolved when
iteration starts. When a source raises, the error reaches the loop and the lane stops: every later
``next`` (and `state_dict`) is a ConfigError naming the source; resume from a state saved before
the failure. Batches cross the worker boundary by value (`coolmix.integrations.transfer`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from coolmix.errors import ConfigError
from coolmix.integrations.ranks import DataParallelView, as_data_parallel
from coolmix.integrations.readers import ItemReader, ShardDirReader, reader_class, reader_for, shard_files
from coolmix.integrations.stream_state import (
    ORIGIN_KEY,
    REALISED_KEY,
    STATE_VERSION,
    STEP_KEY,
    STREAMS_KEY,
    latest_state,
    read_examples,
    read_packed,
    read_reader,
    read_stream,
    realised_from_state,
)
from coolmix.integrations.transfer import ByValueBatch
from coolmix.mixture import Mixture
from coolmix.packing import LongDocs, TokenPacker, as_tokens, resolve_schedule
from coolmix.permutation import derive_key, permute, splitmix64
from coolmix.sampler import MixtureSampler
from coolmix.schedules import Schedule
from coolmix.state_format import envelope
from coolmix.validate import check_int

__all__ = [
    "STATE_VERSION",
    "DomainStream",
    "PackedStreams",
    "StreamMixture",
    "latest_state",
    "realised_from_state",
]


class DomainStream:
    """Items ``lane``, ``lane + lanes``, … of one domain's global order (a strided view of a reader).

    ``state_dict()`` is the reader's: ``{"pass", "consumed", "total", "source"}`` (its pass, items
    read in the pass and overall, and the source's own state where it has one).

    >>> s = DomainStream(lambda: iter("abc"), "letters", lane=1, lanes=2)
    >>> [next(s) for _ in range(3)], s.state_dict()["pass"]
    (['b', 'a', 'c'], 1)
    """

    def __init__(self, source: Any, name: str, lane: int = 0, lanes: int = 1) -> None:
        self.lanes = check_int("lanes", lanes, lo=1)
        self.lane = check_int("lane", lane, lo=0, hi=self.lanes - 1)
        self.reader = reader_for(source, name)
        self.name, self.kind, self.source = name, self.reader.kind, source

    def state_dict(self) -> dict[str, Any]:
        return self.reader.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        src = read_reader(state, self.name, type(self.reader))[3]
        self.reader.verify_source(src, f"stream_state.streams.{self.name}.source")
        self.reader.load_state_dict(state)

    def __iter__(self) -> DomainStream:
        return self

    def __next__(self) -> Any:
        self.reader.skip((self.lane - self.reader.total) % self.lanes)
        return next(self.reader)


# -- lanes ----------------------------------------------------------------------------------------


def _worker_info() -> Any:
    """torch's DataLoader worker info in a worker process, else None (torch stays lazy)."""
    if "torch" not in sys.modules:
        return None
    from torch.utils.data import get_worker_info

    return get_worker_info()


def _worker() -> tuple[int, int]:
    """(worker id, workers) of the DataLoader worker running this, else (0, 1)."""
    info = _worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class _LaneIterator:
    """A lane's batches. Once a source (or ``transform``) raised, every later `next` is a ConfigError
    naming it: the generator that raised is finished, and iterating it again would silently end the
    stream; the lane's counters are mid-step, so `state_dict` refuses too (resume from a state
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
            broken = [r.name for r in self.lane["readers"] if r._failed]
            self.lane["failed"] = broken[0] if broken else "transform"
            raise


class _Lanes(DataParallelView):
    """Shared machinery: argument checks, readers, the schedule, the data-parallel coordinate, the
    global state, the torch / StatefulDataLoader protocol.

    ``per_step`` is the subclass's global amount per step, ``(field, value, largest)``
    (``batch_size`` examples or ``rows``), split evenly over the data-parallel ranks; ``dp`` is the
    adapters' one data-parallel argument, read by `as_data_parallel`.
    """

    def __init__(
        self,
        sources: Mapping[str, Any],
        sizes: Mapping[str, float] | Mixture,
        schedule: Schedule | float | Mapping[str, Any],
        total_steps: int,
        per_step: tuple[str, Any, int],
        dp: Any,
        transform: Callable[[Any], Any] | None,
    ) -> None:
        self.names, self.sizes, self.schedule, self.total_steps = resolve_schedule(
            sizes, schedule, total_steps
        )
        if not isinstance(sources, Mapping) or set(sources) != set(self.names):
            got = sorted(sources) if isinstance(sources, Mapping) else sources
            raise ConfigError("sources", got, f"need exactly the domains {list(self.names)}")
        self.sources = {n: sources[n] for n in self.names}
        self._classes = [reader_class(self.sources[n]) for n in self.names]
        for n, cls in zip(self.names, self._classes, strict=True):
            if cls is ShardDirReader:  # a bad directory is one line now, not at the first batch
                shard_files(Path(self.sources[n]), n)
        field, value, largest = per_step
        self._per_step = (field, check_int(field, value, lo=1, hi=largest))
        self.dp = as_data_parallel(dp)
        if self.dp.explicit:  # a fixed coordinate is checked now; the others when iteration starts
            self._per_rank(self.dp.world_size)
        self.transform = transform
        self._lane: dict[str, Any] | None = None
        self._loaded: Mapping[str, Any] | None = None
        self._anchor = True

    def _per_rank(self, world_size: int) -> int:
        """This rank's share of the per-step amount; it must divide evenly."""
        field, value = self._per_step
        if value % world_size:
            raise ConfigError(field, value, f"not divisible by world_size={world_size}")
        return value // world_size

    # lanes -------------------------------------------------------------------------------------

    def lane(self, rank: int = 0, world_size: int = 1, worker: int = 0, workers: int = 1) -> Iterator[Any]:
        """Batches of one lane, from the loaded state (or step 0): in-process simulation of a layout.

        Each call starts a new lane from the last `load_state_dict` (so several lanes can be
        simulated from one state); `state_dict` follows the latest lane.
        """
        world_size = check_int("world_size", world_size, lo=1)
        rank = check_int("rank", rank, lo=0, hi=world_size - 1)
        workers = check_int("workers", workers, lo=1)
        worker = check_int("worker", worker, lo=0, hi=workers - 1)
        lo = rank * self._per_rank(world_size)
        rows = slice(lo, lo + self._per_rank(world_size))
        lane: dict[str, Any] = {"readers": [reader_for(self.sources[n], n) for n in self.names]}
        self._new_lane(lane)
        lane[ORIGIN_KEY] = 0
        if self._loaded is not None:
            lane[STEP_KEY] = int(self._loaded[STEP_KEY])
            lane[ORIGIN_KEY] = lane[STEP_KEY] if self._anchor else int(self._loaded[ORIGIN_KEY])
            for n, r in zip(self.names, lane["readers"], strict=True):
                r.load_state_dict(self._loaded[STREAMS_KEY][n])
            self._load_extra(lane, self._loaded)
        self._lane = lane
        return _LaneIterator(lane, self._run(lane, rows, worker, workers))

    def __iter__(self) -> Iterator[Any]:
        # resolved now, not at construction: a mixer may be built before init_process_group, and a
        # spawned worker got the coordinate resolved in the parent (pickled with DataParallel)
        rank, world_size = self.dp.resolve()
        return self.lane(rank, world_size, *_worker())

    def _puller(self, readers: list[ItemReader]) -> Callable[[int], Any]:
        """d → the next (transformed) item of domain d; bound once per lane, as it runs per document."""
        pull, transform = [r.__next__ for r in readers], self.transform
        if transform is None:
            return lambda d: pull[d]()
        return lambda d: transform(pull[d]())

    # state -------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The global stream state after this lane's last batch (JSON-able); before iteration, the
        loaded one ({} if none). It holds no rank or worker: it resumes under any layout."""
        if self._lane is None:
            return dict(self._loaded or {})
        lane = self._lane
        if lane.get("failed"):
            why = "a source raised mid-step; resume from a state saved before the failure"
            raise ConfigError(f"sources.{lane['failed']}", "failed", why)
        fields = {
            "version": STATE_VERSION,
            STEP_KEY: lane[STEP_KEY],
            ORIGIN_KEY: lane[ORIGIN_KEY],
            **self._run_fields(),
            STREAMS_KEY: {n: r.state_dict() for n, r in zip(self.names, lane["readers"], strict=True)},
            **self._extra_state(lane),
        }
        return envelope("stream", self.names, fields)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from a global state (`state_dict`, or `latest_state` of several lanes' states).

        Every field is checked now, before anything changes: a state of another run (total_steps,
        schedule, sizes, batch size, seed) or with inconsistent counters is one ConfigError.
        The lanes iterated next (any layout) continue the global stream at its ``step``.
        """
        if not isinstance(state, Mapping):
            raise ConfigError("stream_state", state, "must be a mapping from state_dict()")
        if state:
            run = self._run_fields()
            r, step, totals = read_stream(state, run, self.names, self._classes, self._extra_keys())
            self._check_state(r, step, totals)
            for n in self.names:  # a shard directory's saved offset is checked against its files now
                field = f"stream_state.streams.{n}.source"
                reader_for(self.sources[n], n).verify_source(state[STREAMS_KEY][n]["source"], field)
        self._loaded = state or None
        # Worker w of W makes the steps origin + w, origin + w + W, …: a fresh loader's order. A
        # worker restoring its own snapshot (StatefulDataLoader) keeps its origin; a state loaded
        # here, in the main process, starts a fresh iteration at its step.
        self._anchor = _worker_info() is None
        self._lane = None

    def realised(self) -> dict[str, dict[str, int]]:
        """The run's realised documents (and tokens, where counted) per domain, as of this lane's
        state (global: the same in every lane at the same step)."""
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

    def _extra_keys(self) -> tuple[str, ...]:
        return ()

    def _check_state(self, r: Any, step: int, totals: list[int]) -> None:
        raise NotImplementedError

    def _new_lane(self, lane: dict[str, Any]) -> None:
        raise NotImplementedError

    def _run(self, lane: dict[str, Any], rows: slice, worker: int, workers: int) -> Iterator[Any]:
        raise NotImplementedError

    def _extra_state(self, lane: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _load_extra(self, lane: dict[str, Any], state: Mapping[str, Any]) -> None:
        raise NotImplementedError


class StreamMixture(_Lanes):
    """Example-level mixing of streams: each global batch has the sampler's exact per-domain counts.

    ``batch_size`` is global; each data-parallel rank (``dp=``: `coolmix.integrations.ranks`) gets its
    contiguous batch_size / world_size rows, as a list of ``{"domain": d, "domain_name": name, **item}``
    (mapping items) or ``(item, d)`` pairs, in a keyed-shuffled order. ``tokens(item)`` (optional)
    counts tokens for `realised`.

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
        dp: Any = None,
        transform: Callable[[Any], Any] | None = None,
        tokens: Callable[[Any], int] | None = None,
    ) -> None:
        super().__init__(
            sources, sizes, schedule, total_steps, ("batch_size", batch_size, 2**26), dp, transform
        )
        self.batch_size = self._per_step[1]
        self.seed = check_int("seed", seed, lo=0)
        self.tokens = tokens
        self._order_key = derive_key(self.seed, "stream-order", 0)
        self._arange = np.arange(self.batch_size, dtype=np.uint64)

    def _sampler(self) -> MixtureSampler:
        """The one composition: exact counts of the global batch at every step (item indices unused)."""
        sizes = dict(zip(self.names, self.sizes.tolist(), strict=True))
        return MixtureSampler(
            sizes, self.schedule, self.total_steps, self.batch_size, self.seed, items=dict.fromkeys(sizes, 1)
        )

    def _domains(self, counts: np.ndarray, step: int) -> np.ndarray:
        """The domain of each global row at ``step``: the counts' blocks, keyed-shuffled by (seed, step)."""
        domains = np.repeat(np.arange(len(self.names)), counts)
        key = self._order_key ^ int(splitmix64(np.array([step], dtype=np.uint64))[0])
        return domains[permute(self._arange, self.batch_size, key).astype(np.int64)]

    def _new_lane(self, lane: dict[str, Any]) -> None:
        k = len(self.names)
        lane.update({STEP_KEY: 0, "sampler": self._sampler(), "toks": np.zeros(k, dtype=np.int64)})
        readers = lane["readers"]
        lane[REALISED_KEY] = lambda: {
            n: {"documents": r.total, "tokens": int(t)}
            for n, r, t in zip(self.names, readers, lane["toks"], strict=True)
        }

    def _pass_over(self, lane: dict[str, Any], counts: np.ndarray) -> None:
        """Advance each domain's reader past ``counts`` items other lanes take (counting their
        tokens when ``tokens`` is given, so `realised` stays global)."""
        for d, c in enumerate(counts.tolist()):
            if not c:
                continue
            reader = lane["readers"][d]
            if self.tokens is None:
                reader.skip(c)
                continue
            tf = self.transform or (lambda x: x)
            lane["toks"][d] += sum(int(self.tokens(tf(next(reader)))) for _ in range(c))

    def _run(self, lane: dict[str, Any], rows: slice, worker: int, workers: int) -> Iterator[list[Any]]:
        sampler, k, names = lane["sampler"], len(self.names), self.names
        item = self._puller(lane["readers"])
        while (
            s := lane[STEP_KEY] + (worker - lane[STEP_KEY] + lane[ORIGIN_KEY]) % workers
        ) < self.total_steps:
            start = sampler.cumulative_counts_array(lane[STEP_KEY])
            here = sampler.cumulative_counts_array(s)
            self._pass_over(lane, here - start)  # other workers' whole steps
            lane[STEP_KEY] = s
            counts = sampler.cumulative_counts_array(s + 1) - here
            domains = self._domains(counts, s)
            mine = domains[rows]
            before = np.bincount(domains[: rows.start], minlength=k)
            self._pass_over(lane, before)  # lower ranks' rows of this step
            batch = []
            for d in mine.tolist():
                x = item(d)
                if self.tokens is not None:
                    lane["toks"][d] += int(self.tokens(x))
                if isinstance(x, Mapping):
                    if "domain" in x or "domain_name" in x:  # the item's own field would replace the tag
                        clash = sorted(key for key in ("domain", "domain_name") if key in x)
                        why = "items already have these keys (the stream tags each item); rename them"
                        raise ConfigError(f"sources.{names[d]}", clash, why)
                    batch.append({"domain": d, "domain_name": names[d], **x})
                else:
                    batch.append((x, d))
            self._pass_over(lane, counts - before - np.bincount(mine, minlength=k))  # higher ranks'
            lane[STEP_KEY] = s + 1
            yield batch

    def _run_fields(self) -> dict[str, Any]:
        return {**super()._run_fields(), "batch_size": self.batch_size, "seed": self.seed}

    def _check_state(self, r: Any, step: int, totals: list[int]) -> None:
        read_examples(r, self.names, totals, self._sampler().cumulative_counts_array(step))

    def _extra_state(self, lane: dict[str, Any]) -> dict[str, Any]:
        return {REALISED_KEY: lane[REALISED_KEY]()}

    def _load_extra(self, lane: dict[str, Any], state: Mapping[str, Any]) -> None:
        lane["toks"][:] = [state[REALISED_KEY][n]["tokens"] for n in self.names]


class PackedStreams(_Lanes):
    """Token-level mixing of streams: one global packer fills (rows, seq_len) batches by deficit;
    each data-parallel rank (``dp=``: `coolmix.integrations.ranks`) yields its contiguous
    rows / world_size rows.

    Documents come from ``tokens(transform(item))`` (default: the item is token ids or a mapping
    with ``"input_ids"``); batches are `coolmix.packing.TokenPacker` dicts of (R, T) arrays. The
    global packer state (with its partly placed document) is in `state_dict`.
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
        dp: Any = None,
        transform: Callable[[Any], Any] | None = None,
        tokens: Callable[[Any], Any] = as_tokens,
        pad_id: int = 0,
        long_docs: LongDocs = "split",
    ) -> None:
        super().__init__(sources, sizes, schedule, total_steps, ("rows", rows, 2**20), dp, transform)
        self.rows = self._per_step[1]
        self.seq_len = check_int("seq_len", seq_len, lo=1, hi=2**24)
        self.tokens, self.pad_id, self.long_docs = tokens, pad_id, long_docs
        self._mixture = sizes
        self._packer()  # checks pad_id, long_docs and the sizes' unit now

    def _packer(self) -> TokenPacker:
        return TokenPacker(
            self._mixture,
            self.schedule,
            self.total_steps,
            self.rows,
            self.seq_len,
            pad_id=self.pad_id,
            long_docs=self.long_docs,
        )

    def _new_lane(self, lane: dict[str, Any]) -> None:
        packer = self._packer()
        lane.update({"packer": packer, REALISED_KEY: packer.realised})
        lane[STEP_KEY] = 0

    def _run(
        self, lane: dict[str, Any], rows: slice, worker: int, workers: int
    ) -> Iterator[dict[str, np.ndarray]]:
        packer, tokens, item = lane["packer"], self.tokens, self._puller(lane["readers"])

        def next_doc(d: int) -> Any:
            return tokens(item(d))

        if tokens is as_tokens:  # the packer applies as_tokens itself: one call less per document
            next_doc = item
        whole = rows.stop - rows.start == self.rows
        while (s := packer.step + (worker - packer.step + lane[ORIGIN_KEY]) % workers) < self.total_steps:
            while packer.step < s:  # other workers' steps: packed too, the deficits are global
                packer.pack(next_doc)
                lane[STEP_KEY] = packer.step
            batch = packer.pack(next_doc)
            lane[STEP_KEY] = packer.step
            yield batch if whole else {key: v[rows].copy() for key, v in batch.items()}

    def _run_fields(self) -> dict[str, Any]:
        return {**super()._run_fields(), "rows": self.rows, "seq_len": self.seq_len}

    def _extra_keys(self) -> tuple[str, ...]:
        return ("packer",)

    def _check_state(self, r: Any, step: int, totals: list[int]) -> None:
        read_packed(r, step, self._packer(), self.names, totals)

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
