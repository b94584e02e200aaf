"""`MixtureSampler`: the global stream of (domain, index) pairs, one batch per optimizer step.

The stream is a pure function of (seed, sizes, schedule, recorded events, step). The state that
resume needs is O(#domains): the next step, per-domain cursors (items drawn so far), the
rounding residuals of the exact composition, and the events. Ranks take contiguous slices of
the global batch, so the global stream does not depend on the world size (elastic resume).

Within a domain, draw number j (its cursor) maps to item ``permute(j mod n, n, key(pass=j div n))``:
passes over fresh keyed permutations, so after k passes' worth of draws every item has been
used ⌊k⌋ or ⌈k⌉ times. All randomness is counter-based (SplitMix64 of keyed counters), so no
RNG state is saved and a resumed run recomputes exactly what an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from coolmix.errors import ConfigError
from coolmix.mixture import check_sizes, to_mapping
from coolmix.permutation import derive_key, permute, permute_each, splitmix64
from coolmix.schedule import Context, Event, Schedule, schedule_from_dict
from coolmix.types import Sizes

__all__ = ["STATE_VERSION", "MixtureSampler", "exact_counts", "planned_counts"]

STATE_VERSION = 1
MAX_BATCH = 2**26  # batches are materialised as arrays; beyond this, split the step yourself
STEP_KEY, CURSORS_KEY, RESIDUALS_KEY, EVENTS_KEY = "step", "cursors", "residuals", "events"
_MIXTURE_KEY, _SEED_KEY, _COMPOSITION_KEY, _VERSION_KEY = (
    "mixture",
    "seed",
    "composition",
    "version",
)
_INV_2_64 = 1.0 / 18446744073709551616.0


def exact_counts(p: np.ndarray, batch_size: int, residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-batch counts by largest remainder with carried residuals; returns (counts, new residuals).

    target_i = B·p_i + r_i; counts take ⌊target⌋ or ⌈target⌉ so they sum to B, and
    r_i ← target_i − counts_i. With Σ r = 0 this keeps every domain's cumulative count within
    1 of its cumulative target Σ_t B·p_i(t). Domains with p_i = 0 get nothing; their residual is
    forfeited (reset to 0) so no later batch pays an old debt to a switched-off domain.
    """
    active = p > 0
    r = np.where(active, residuals, 0.0)
    # keep Σ r = 0 over the active domains (forfeited residuals are spread proportionally)
    r = r - p * r.sum()
    target = batch_size * p + r
    counts = np.maximum(np.floor(target), 0.0)
    counts[~active] = 0.0
    short = batch_size - int(counts.sum())
    if short > 0:
        frac = np.where(active, target - counts, -np.inf)
        order = np.lexsort((np.arange(len(p)), -frac))  # largest remainder, ties by domain order
        k = np.count_nonzero(active)
        counts[order[: min(short, k)]] += 1.0
        short -= min(short, k)
        if short > 0:  # only with pathological residuals: hand out the rest by probability
            counts += np.floor(short * p)
            counts[int(np.argmax(p))] += batch_size - counts.sum()
    elif short < 0:  # floors overshoot only when negative targets were clipped to 0
        frac = np.where(counts > 0, target - counts, np.inf)
        order = np.lexsort((np.arange(len(p)), frac))
        counts[order[:-short]] -= 1.0
    return counts.astype(np.int64), target - counts


class MixtureSampler:
    """Global batches of (domain id, item index) from a temperature schedule over domain sizes.

    ``sizes`` are item counts (examples, sequences); domain ids index ``names`` (insertion order).

    - ``composition="exact"`` (default): per-batch counts by largest remainder with carried
      residuals, order shuffled; ``"iid"``: every slot drawn independently from p(t).
    - ``batch(step, rank, world_size)`` returns that rank's contiguous slice; steps are usually
      consumed in order, but any step can be asked for (earlier ones are recomputed from 0).

    >>> s = MixtureSampler({"en": 1000, "sw": 10}, 5.0, total_steps=100, batch_size=8, seed=0)
    >>> d, i = s.batch(0)
    >>> d.shape, int((d == 1).sum())
    ((8,), 2)
    """

    def __init__(
        self,
        sizes: Sizes,
        schedule: Schedule | float | Mapping[str, Any] = 1.0,
        total_steps: int = 1,
        batch_size: int = 1,
        seed: int = 0,
        composition: str = "exact",
    ) -> None:
        names, arr = check_sizes(sizes)
        if not np.all(arr == np.floor(arr)) or arr.max() >= 2**62:
            raise ConfigError("sizes", dict(sizes), "sampler sizes are item counts: integers < 2**62")
        self.names = names
        self.sizes = arr
        self._n = arr.astype(np.int64)
        self.schedule = schedule if isinstance(schedule, Schedule) else schedule_from_dict(schedule)
        self.schedule.validate(names)
        if (
            isinstance(total_steps, bool)
            or not isinstance(total_steps, (int, np.integer))
            or total_steps <= 0
        ):
            raise ConfigError("total_steps", total_steps, "must be an integer > 0")
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or not 0 < batch_size <= MAX_BATCH
        ):
            raise ConfigError("batch_size", batch_size, f"must be an integer in [1, {MAX_BATCH}]")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError("seed", seed, "must be an integer >= 0")
        if composition not in ("exact", "iid"):
            raise ConfigError("composition", composition, "must be 'exact' or 'iid'")
        self.total_steps = int(total_steps)
        self.batch_size = int(batch_size)
        if hasattr(self.schedule, "check_resolved"):
            self.schedule.check_resolved(self.total_steps)
        self.seed = int(seed)
        self.composition = composition
        self._domain_keys = [derive_key(self.seed, "domain", n) for n in names]
        self._domain_keys_arr = np.array(self._domain_keys, dtype=np.uint64)
        self._n_u64 = self._n.astype(np.uint64)
        self._bits = np.array([max(int(n - 1).bit_length(), 2) for n in self._n], dtype=np.uint64)
        self._order_key = derive_key(self.seed, "order")
        self._iid_key = derive_key(self.seed, "iid")
        self._arange_b = np.arange(self.batch_size, dtype=np.uint64)
        self._events: list[Event] = []
        self._reset()

    # -- state ---------------------------------------------------------------------------------

    def _reset(self) -> None:
        self._step = 0
        self._cursors = np.zeros(len(self.names), dtype=np.int64)
        self._residuals = np.zeros(len(self.names), dtype=np.float64)
        self._cached: tuple[int, np.ndarray, np.ndarray] | None = None
        self._ctx = Context(self.names, self.sizes, self.total_steps, self._events, self._cursors)

    @property
    def step(self) -> int:
        """The next step whose batch has not been produced yet."""
        return self._step

    @property
    def cursors(self) -> dict[str, int]:
        """Items drawn so far per domain (the realised exposure in items)."""
        return {n: int(c) for n, c in zip(self.names, self._cursors)}

    @property
    def events(self) -> tuple[Event, ...]:
        return tuple(self._events)

    def state_dict(self) -> dict[str, Any]:
        """A small JSON-able state: counters, residuals, events, and what they are valid for."""
        return {
            _VERSION_KEY: STATE_VERSION,
            STEP_KEY: self._step,
            CURSORS_KEY: self.cursors,
            RESIDUALS_KEY: to_mapping(self.names, self._residuals),
            EVENTS_KEY: [e.to_dict() for e in self._events],
            _MIXTURE_KEY: {n: int(s) for n, s in zip(self.names, self._n)},
            _SEED_KEY: self.seed,
            _COMPOSITION_KEY: self.composition,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state saved by `state_dict` (possibly under another world size)."""
        if not isinstance(state, Mapping):
            raise ConfigError("state_dict", state, "must be a mapping from MixtureSampler.state_dict()")
        if state.get(_VERSION_KEY) != STATE_VERSION:
            raise ConfigError("state_dict.version", state.get(_VERSION_KEY), f"expected {STATE_VERSION}")
        mixture = state.get(_MIXTURE_KEY)
        expected = {n: int(s) for n, s in zip(self.names, self._n)}
        if not isinstance(mixture, Mapping) or dict(mixture) != expected:
            raise ConfigError(
                "state_dict.mixture", mixture, f"from a different mixture; this one is {expected}"
            )
        for key, mine in ((_SEED_KEY, self.seed), (_COMPOSITION_KEY, self.composition)):
            if state.get(key) != mine:
                raise ConfigError(f"state_dict.{key}", state.get(key), f"this sampler has {mine!r}")
        try:
            step = int(state[STEP_KEY])
            cursors = np.array([int(state[CURSORS_KEY][n]) for n in self.names], dtype=np.int64)
            residuals = np.array([float(state[RESIDUALS_KEY][n]) for n in self.names])
            events = [Event.from_dict(e) for e in state[EVENTS_KEY]]
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError("state_dict", type(e).__name__, f"corrupt sampler state: {e}") from None
        if step < 0 or (cursors < 0).any() or not np.isfinite(residuals).all():
            raise ConfigError(
                "state_dict",
                {STEP_KEY: step},
                "corrupt sampler state: negative or non-finite counters",
            )
        self._events[:] = events
        self._reset()
        self._step, self._cursors[:], self._residuals[:] = step, cursors, residuals

    def record_event(self, name: str, step: int | None = None, **info: Any) -> Event:
        """Record an event (e.g. ``"cooldown"``) taking effect at ``step`` (default: the next step).

        Events cannot rewrite produced batches, so ``step`` must be >= `step`.
        """
        step = self._step if step is None else int(step)
        if step < self._step:
            raise ConfigError("event.step", step, f"batches up to {self._step - 1} were already produced")
        event = Event(step, name, info)
        self._events.append(event)
        self._ctx = Context(self.names, self.sizes, self.total_steps, self._events, self._cursors)
        return event

    def set_schedule(self, schedule: Schedule | float | Mapping[str, Any]) -> None:
        """Replace the schedule for the steps not yet produced; cursors carry over (no replay, no skip)."""
        schedule = schedule if isinstance(schedule, Schedule) else schedule_from_dict(schedule)
        schedule.validate(self.names)
        self.schedule = schedule
        self._ctx = Context(self.names, self.sizes, self.total_steps, self._events, self._cursors)

    # -- the stream ----------------------------------------------------------------------------

    def probs_at(self, step: int) -> dict[str, float]:
        """p(step) under the current schedule and events (exposure-driven schedules: as of now)."""
        return to_mapping(self.names, self.probs_array(step))

    def probs_array(self, step: int) -> np.ndarray:
        """p(step) aligned with ``names`` (a read-only view; for per-step hot paths)."""
        return self.schedule.probs(int(step), self._ctx)

    def tau_at(self, step: int) -> float | None:
        return self.schedule.tau(int(step), self._ctx)

    def batch(self, step: int, rank: int = 0, world_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(domain ids, item indices), int64 arrays: this rank's slice of the global batch at ``step``."""
        if isinstance(world_size, bool) or not isinstance(world_size, (int, np.integer)) or world_size <= 0:
            raise ConfigError("world_size", world_size, "must be an integer > 0")
        if not 0 <= rank < world_size:
            raise ConfigError("rank", rank, f"must be in [0, {world_size})")
        if self.batch_size % world_size:
            raise ConfigError("batch_size", self.batch_size, f"not divisible by world_size={world_size}")
        domains, indices = self.global_batch(step)
        per = self.batch_size // world_size
        sl = slice(rank * per, (rank + 1) * per)
        return domains[sl], indices[sl]

    def global_batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole batch at ``step`` (cached, so every in-process rank can slice the same one)."""
        step = int(step)
        if step < 0:
            raise ConfigError("step", step, "must be >= 0")
        if self._cached is not None and self._cached[0] == step:
            return self._cached[1], self._cached[2]
        if step < self._step:
            self._reset()
        while self._step < step:
            self._advance(self._step)
        start = self._cursors.copy()
        counts, slot_domains = self._advance(step)
        domains, indices = self._materialise(step, start, counts, slot_domains)
        self._cached = (step, domains, indices)
        return domains, indices

    def __iter__(self):
        """Global batches from the current step to ``total_steps``."""
        while self._step < self.total_steps:
            yield self.global_batch(self._step)

    def _advance(self, step: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Counts of ``step`` (and iid slot domains); moves cursors/residuals to step + 1."""
        p = self.schedule.probs(step, self._ctx)
        if self.composition == "exact":
            counts, self._residuals = exact_counts(p, self.batch_size, self._residuals)
            slot_domains = None
        else:
            u = self._uniforms(self._iid_key, step)
            slot_domains = np.minimum(np.searchsorted(np.cumsum(p), u, side="right"), len(p) - 1)
            # never land on a zero-probability domain through float round-off
            while (p[slot_domains] == 0).any():
                slot_domains = np.where(p[slot_domains] == 0, int(np.argmax(p)), slot_domains)
            counts = np.bincount(slot_domains, minlength=len(p)).astype(np.int64)
        self._cursors += counts
        self._step = step + 1
        return counts, slot_domains

    def _uniforms(self, key: int, step: int) -> np.ndarray:
        return splitmix64(self._arange_b ^ np.uint64(key ^ _mix(step))) * _INV_2_64

    def _materialise(
        self, step: int, start: np.ndarray, counts: np.ndarray, slot_domains: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if slot_domains is None:
            # exact: domains in blocks, draw numbers consecutive per domain, then one batch shuffle
            domains = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
            indices = self._items(domains, start, counts)
            order = permute(self._arange_b, self.batch_size, self._order_key ^ _mix(step)).astype(np.int64)
            return domains[order], indices[order]
        # iid: slots keep their drawn order; each domain's draws fill its slots in cursor order
        domains = slot_domains.astype(np.int64)
        by_domain = np.argsort(domains, kind="stable")
        indices = np.empty(self.batch_size, dtype=np.int64)
        indices[by_domain] = self._items(domains[by_domain], start, counts)
        return domains, indices

    def _items(self, domains: np.ndarray, start: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Items for sorted ``domains`` taking draws start[d], start[d]+1, ...: keyed pass permutations.

        Draw j of domain d is pass j // n_d at offset j mod n_d, permuted with key(d, pass); all
        domains go through one vectorised Feistel pass.
        """
        first = np.cumsum(counts) - counts
        j = start[domains] + (np.arange(len(domains), dtype=np.int64) - first[domains])
        n = self._n[domains]
        passes = j // n
        offsets = (j - passes * n).astype(np.uint64)
        keys = self._domain_keys_arr[domains] ^ splitmix64(passes.astype(np.uint64))
        return permute_each(offsets, self._n_u64[domains], self._bits[domains], keys).astype(np.int64)

    def _domain_items(self, i: int, start: int, count: int) -> np.ndarray:
        """Items for draws [start, start + count) of domain i alone (for tests and tools)."""
        starts = np.zeros(len(self.names), dtype=np.int64)
        counts = np.zeros(len(self.names), dtype=np.int64)
        starts[i], counts[i] = start, count
        return self._items(np.full(count, i, dtype=np.int64), starts, counts)

    def __repr__(self) -> str:
        return (
            f"MixtureSampler({len(self.names)} domains, schedule={self.schedule.to_dict()}, "
            f"total_steps={self.total_steps}, batch_size={self.batch_size}, seed={self.seed}, "
            f"composition={self.composition!r}, step={self._step})"
        )


def _mix(counter: int) -> int:
    """A 64-bit key offset for a counter (step or pass number)."""
    return int(splitmix64(np.array([counter], dtype=np.uint64))[0])


def planned_counts(sampler: MixtureSampler, steps: int) -> dict[str, float]:
    """Σ_{t<steps} B·p_i(t): the cumulative target the exact composition tracks (within 1 item).

    Uses the sampler's schedule and recorded events; for exposure-driven schedules
    (UniMax-dynamic) the realised counts are replayed, since p(t) depends on them.
    """
    ctx = Context(sampler.names, sampler.sizes, sampler.total_steps, sampler.events)
    if sampler.schedule.needs_counts:
        replay = MixtureSampler(
            dict(zip(sampler.names, sampler._n.tolist())),
            sampler.schedule,
            sampler.total_steps,
            sampler.batch_size,
            sampler.seed,
            sampler.composition,
        )
        for e in sampler.events:
            replay.record_event(e.name, e.step, **e.info)
        total = np.zeros(len(sampler.names))
        for t in range(steps):
            total += sampler.batch_size * replay.schedule.probs(t, replay._ctx)
            replay._advance(t)
        return to_mapping(sampler.names, total)
    total = np.zeros(len(sampler.names))
    for t in range(steps):
        total += sampler.batch_size * sampler.schedule.probs(t, ctx)
    return to_mapping(sampler.names, total)
