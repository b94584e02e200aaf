"""`MixtureSampler`: the global stream of (domain, index) pairs, one batch per optimizer step.

The stream is a pure function of (seed, sizes, schedule, recorded events, step). The state that
resume needs is O(#domains): the next step, per-domain cursors (items drawn so far), the
rounding residuals of the exact composition, and the events. Ranks take contiguous slices of
the global batch, so the global stream does not depend on the world size (elastic resume).

Within a domain, draw number j (its cursor) maps to item ``permute(j mod n, n, key(pass=j div n))``:
passes over fresh keyed permutations, so after k passes' worth of draws every item has been
used ⌊k⌋ or ⌈k⌉ times. All randomness is counter-based (SplitMix64 of keyed counters), so no
RNG state is saved and a resumed run recomputes exactly what an uninterrupted one would.

Seeking. Items and the batch order are closed-form given the cursors C(t) at the start of step
t; the cursors come from the count recursion (`coolmix.counts.exact_counts`), which is
sequential. A closed form C(t) = g(X(t)) of the target X_i(t) = Σ_{s<t} B·p_i(s) that stays within
1, non-decreasing and summing to t·B along every schedule is ruled out in general (it would be a
population-monotone quota method, which Balinski–Young's impossibility theorem excludes for four
or more domains), and the natural candidates (largest remainder of X(t), earliest-deadline
first) already fail on a single constant-p run with K >= 3 when some B·p_i < 1. So the sampler
checkpoints (cursors, residuals, target) every `CHECKPOINT_EVERY` steps as it walks, lazily and
in memory: ``batch(t)`` replays at most that many count steps from the nearest checkpoint (or
from its current state), for every schedule, exposure-driven ones and recorded events included.
The first visit of a region costs one replay of the count step (10–20 µs a step, no items);
after `load_state_dict` seeks at or after the loaded step start from it. `cumulative_target`
is closed form, O(#phases), for piecewise-constant schedules (Constant, Stages, Cooldown, Dense,
OrderMatters, Adaptive over those), and comes from the checkpoints for continuous ones.
``composition="seekable"`` is a different stream with a closed form (`coolmix.seekable`: the
Sainte-Laguë divisor method on X(t), within (1 + (k−2)·p_i)/2 of it): no walk, O(1) seek.

Size: > 400 code lines: stream, checkpointed seek and state validation share one set of counters.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from coolmix.counts import SMALL_K, exact_counts, exact_counts_small
from coolmix.errors import ConfigError
from coolmix.items import PassItems
from coolmix.mixture import Mixture, check_items, check_sizes, to_mapping
from coolmix.permutation import derive_key, permute, splitmix64
from coolmix.schedules import Context, Event, Schedule, as_schedule, cuts
from coolmix.seekable import Target, batch_cursors, build_target, cursors_at, piecewise_target
from coolmix.types import UNITS, Composition, Sizes
from coolmix.validate import MAX_INT, canonical_json, check_float, check_int

__all__ = ["MAX_BATCH", "STATE_VERSION", "MixtureSampler", "exact_counts"]

STATE_VERSION = 1
"""Version of `MixtureSampler.state_dict`; bumped whenever the stream for a given state changes."""

STATE_FORMAT = 2
"""Layout of the state (``"format"``): 2 added ``total_steps``, ``batch_size`` and ``schedule`` (the
run the state belongs to, checked on load); a state without ``"format"`` is format 1 (not checked)."""

MAX_BATCH = 2**26
"""Largest global batch (the one limit of the package): batches are materialised as arrays."""

CHECKPOINT_EVERY = 64
"""Steps between the sampler's in-memory count checkpoints (doubled when they grow too many)."""

MAX_CHECKPOINT_BYTES = 2**25
"""Memory the count checkpoints may take per sampler (beyond it their spacing doubles)."""

STEP_KEY, CURSORS_KEY, RESIDUALS_KEY, EVENTS_KEY = "step", "cursors", "residuals", "events"
_MIXTURE_KEY, _SEED_KEY, _COMPOSITION_KEY, _VERSION_KEY, _UNIT_KEY = (
    "mixture",
    "seed",
    "composition",
    "version",
    "unit",
)
_FORMAT_KEY, _TOTAL_KEY, _BATCH_KEY, _SCHEDULE_KEY = "format", "total_steps", "batch_size", "schedule"
_INV_2_64 = 1.0 / 18446744073709551616.0


class _Walker:
    """The count recursion's state at the start of ``step``: cursors, residuals, target X(step).

    ``target`` is None when the state came from `load_state_dict` (the state does not carry it).
    ``ctx.seen`` is bound to ``cursors`` for exposure-driven schedules.
    """

    def __init__(self, step: int, cursors: np.ndarray, residuals: np.ndarray, target: np.ndarray | None):
        self.step, self.cursors, self.residuals, self.target = step, cursors, residuals, target

    def copy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        t = None if self.target is None else self.target.copy()
        return self.cursors.copy(), self.residuals.copy(), t


class MixtureSampler:
    """Global batches of (domain id, item index) from a temperature schedule over domain sizes.

    ``sizes`` are item counts (examples, sequences), or a `coolmix.Mixture` whose unit is kept
    (``unit``; e.g. sizes in tokens set the probabilities, ``items`` then give the item counts
    the keyed permutations need, by default the sizes themselves). Domain ids index ``names``.

    - ``composition="exact"`` (default): per-batch counts by largest remainder with carried
      residuals, order shuffled; ``"iid"``: every slot drawn independently from p(t);
      ``"seekable"``: counts in closed form of X(t) (`coolmix.seekable`), same items and shuffle.
    - ``batch(step, rank, world_size)`` returns that rank's contiguous slice; any step can be
      asked for (seek: see the module docstring); `sample_at` maps a global sample index
      ``step·B + slot`` to its (domain, item).
    - `cumulative_counts` / `cumulative_target`: C(t) and X(t) = Σ_{s<t} B·p(s) per domain.

    >>> s = MixtureSampler({"en": 1000, "sw": 10}, 5.0, total_steps=100, batch_size=8, seed=0)
    >>> d, i = s.batch(0)
    >>> d.shape, int((d == 1).sum())
    ((8,), 2)
    >>> s.cumulative_counts(50)["sw"], round(s.cumulative_target(50)["sw"], 2)
    (114, 113.9)
    """

    def __init__(
        self,
        sizes: Sizes | Mixture,
        schedule: Schedule | float | Mapping[str, Any] = 1.0,
        total_steps: int = 1,
        batch_size: int = 1,
        seed: int = 0,
        composition: Composition = "exact",
        *,
        unit: str | None = None,
        items: Mapping[str, int] | None = None,
    ) -> None:
        names, arr = check_sizes(sizes)
        self.unit = _unit(sizes, unit)
        if items is None:
            _, counts = check_items(sizes)
        else:
            if not isinstance(items, Mapping) or set(items) != set(names):
                raise ConfigError("items", items, f"need one item count per domain: {', '.join(names)}")
            _, counts = check_items({n: items[n] for n in names}, "items")
        self.names = names
        self.sizes = arr  # float64, for the probabilities
        self._n = np.array(counts, dtype=np.int64)  # exact item counts, for the permutations
        self.total_steps = check_int("total_steps", total_steps, lo=1)
        self.batch_size = check_int("batch_size", batch_size, lo=1, hi=MAX_BATCH)
        self.seed = check_int("seed", seed, lo=0)
        if composition not in ("exact", "iid", "seekable"):
            raise ConfigError("composition", composition, "must be 'exact', 'iid' or 'seekable'")
        self.composition = composition
        first = self._checked(schedule)
        self._schedules: list[tuple[int, Schedule]] = [(0, first)]
        self._passes = PassItems(names, counts, self.seed)
        self._order_key = derive_key(self.seed, "order")
        self._iid_key = derive_key(self.seed, "iid")
        self._arange_b = np.arange(self.batch_size, dtype=np.uint64)
        self._events: list[Event] = []
        k = len(names)
        self._every = CHECKPOINT_EVERY
        self._max_checkpoints = max(64, MAX_CHECKPOINT_BYTES // (24 * k + 200))
        self._reset(0, np.zeros(k, dtype=np.int64), np.zeros(k), np.zeros(k))
        # seekable: epochs (start step, cursors there, target X); a new one at each change of p
        self._epochs: list[tuple[int, np.ndarray, Target | None]] = [(0, np.zeros(k, dtype=np.int64), None)]
        self._seek_next: tuple[int, np.ndarray] | None = None

    def _checked(self, schedule: Schedule | float | Mapping[str, Any]) -> Schedule:
        sched = as_schedule(schedule)
        sched.validate(self.names)
        sched.check(self.total_steps)
        if self.composition == "seekable" and sched.needs_counts:
            why = f"schedule {sched.kind!r} needs exposure (realised counts), so it cannot seek; use 'exact'"
            raise ConfigError("composition", "seekable", why)
        return sched

    # -- state ---------------------------------------------------------------------------------

    def _reset(
        self, step: int, cursors: np.ndarray, residuals: np.ndarray, target: np.ndarray | None
    ) -> None:
        """Produced state at ``step``; checkpoints: step 0 and this one."""
        k = len(self.names)
        self._step = step
        self._cursors = cursors.copy()
        self._residuals = residuals.copy()
        self._cached: tuple[int, np.ndarray, np.ndarray] | None = None
        self._ctx = Context(self.names, self.sizes, self.total_steps, self._events, self._cursors)
        if step == 0:  # X(0) = 0 whatever the state says
            target = np.zeros(k)
        self._checkpoints: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {
            0: (np.zeros(k, dtype=np.int64), np.zeros(k), np.zeros(k)),
            step: (cursors.copy(), residuals.copy(), None if target is None else target.copy()),
        }
        self._keys = sorted(self._checkpoints)
        self._walker = _Walker(
            step, cursors.copy(), residuals.copy(), None if target is None else target.copy()
        )
        self._wctx = Context(self.names, self.sizes, self.total_steps, self._events, self._walker.cursors)

    @property
    def schedule(self) -> Schedule:
        """The schedule in force from the latest `set_schedule` on (the constructor's one before)."""
        return self._schedules[-1][1]

    @property
    def step(self) -> int:
        """The next step whose batch has not been produced yet."""
        return self._step

    @property
    def cursors(self) -> dict[str, int]:
        """Items drawn so far per domain (the realised exposure in items)."""
        return {n: int(c) for n, c in zip(self.names, self._cursors, strict=True)}

    @property
    def items(self) -> dict[str, int]:
        """Item counts per domain: what item indices range over (the datasets' lengths)."""
        return self._mixture()

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
            _MIXTURE_KEY: self._mixture(),
            _SEED_KEY: self.seed,
            _COMPOSITION_KEY: self.composition,
            _UNIT_KEY: self.unit,
            _FORMAT_KEY: STATE_FORMAT,
            _TOTAL_KEY: self.total_steps,
            _BATCH_KEY: self.batch_size,
            _SCHEDULE_KEY: self._schedule_at(self._step).to_dict(),
        }

    def _mixture(self) -> dict[str, int]:
        return {n: int(s) for n, s in zip(self.names, self._n, strict=True)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state saved by `state_dict` (possibly under another world size).

        Every counter is checked before anything changes (one-line `ConfigError`, the sampler
        untouched): step and cursors are integers in [0, 2**62] with Σ cursors = step·B;
        residuals are finite, |r_i| <= K + 2 and Σ r ≈ 0 (what the recursion keeps).
        """
        if not isinstance(state, Mapping):
            raise ConfigError("state_dict", state, "must be a mapping from MixtureSampler.state_dict()")
        if state.get(_VERSION_KEY) != STATE_VERSION:
            raise ConfigError("state_dict.version", state.get(_VERSION_KEY), f"expected {STATE_VERSION}")
        mixture = state.get(_MIXTURE_KEY)
        if not isinstance(mixture, Mapping) or dict(mixture) != self._mixture():
            raise ConfigError(
                "state_dict.mixture", mixture, f"from a different mixture; this one is {self._mixture()}"
            )
        for key, mine in ((_SEED_KEY, self.seed), (_COMPOSITION_KEY, self.composition)):
            if state.get(key) != mine:
                raise ConfigError(f"state_dict.{key}", state.get(key), f"this sampler has {mine!r}")
        if state.get(_UNIT_KEY, self.unit) != self.unit:
            raise ConfigError("state_dict.unit", state.get(_UNIT_KEY), f"this sampler has {self.unit!r}")
        self._check_run(state)
        step, cursors, residuals, events = self._parse_state(state)
        self._events[:] = events
        self._reset(step, cursors, residuals, None)
        if self.composition == "seekable":  # re-anchoring at the stream's own cursors is the identity
            self._epochs = [(0, np.zeros(len(self.names), dtype=np.int64), None)]
            self._seek_anchor(step, cursors)

    def _check_run(self, state: Mapping[str, Any]) -> None:
        """A format-2 state belongs to one run: same total_steps, batch_size and schedule in force
        at its step (a deliberate change: `set_schedule` before loading, or after it)."""
        fmt = state.get(_FORMAT_KEY, 1)
        if fmt == 1 and not isinstance(fmt, bool):
            return  # saved before the run's shape was part of the state: nothing to compare
        if fmt != STATE_FORMAT or isinstance(fmt, bool):
            why = f"expected {STATE_FORMAT} (or none: format 1)"
            raise ConfigError(f"state_dict.{_FORMAT_KEY}", fmt, why)
        for key, mine in ((_TOTAL_KEY, self.total_steps), (_BATCH_KEY, self.batch_size)):
            got = state.get(key)
            if got != mine or isinstance(got, bool) or not isinstance(got, int):
                why = f"saved by a run with another {key}; this sampler has {mine}"
                raise ConfigError(f"state_dict.{key}", got, why)
        step = check_int(f"state_dict.{STEP_KEY}", state.get(STEP_KEY), lo=0, hi=self.total_steps)
        mine_s = self._schedule_at(step).to_dict()
        got_s = state.get(_SCHEDULE_KEY)
        if canonical_json(got_s) != canonical_json(mine_s):
            why = (
                f"saved under another schedule; this sampler has {mine_s} at step {step} (build it with "
                "the saved one, or set_schedule(saved) before loading; change it after loading)"
            )
            raise ConfigError(f"state_dict.{_SCHEDULE_KEY}", got_s, why)

    def _parse_state(self, state: Mapping[str, Any]) -> tuple[int, np.ndarray, np.ndarray, list[Event]]:
        step = check_int(f"state_dict.{STEP_KEY}", state.get(STEP_KEY), lo=0, hi=MAX_INT)
        raw_c, raw_r, raw_e = state.get(CURSORS_KEY), state.get(RESIDUALS_KEY), state.get(EVENTS_KEY)
        for key, raw in ((CURSORS_KEY, raw_c), (RESIDUALS_KEY, raw_r)):
            if not isinstance(raw, Mapping) or set(raw) != set(self.names):
                raise ConfigError(
                    f"state_dict.{key}", raw, f"need one value per domain: {', '.join(self.names)}"
                )
        assert isinstance(raw_c, Mapping) and isinstance(raw_r, Mapping)
        c = [check_int(f"state_dict.cursors.{n}", raw_c[n], lo=0, hi=MAX_INT) for n in self.names]
        if sum(c) != step * self.batch_size:
            raise ConfigError(
                f"state_dict.{CURSORS_KEY}",
                dict(raw_c),
                f"must sum to step × batch_size = {step * self.batch_size}",
            )
        k = len(self.names)
        r = [check_float(f"state_dict.residuals.{n}", raw_r[n], lo=-k - 2.0, hi=k + 2.0) for n in self.names]
        if abs(sum(r)) > 1e-6 * (1 + self.batch_size + k):
            raise ConfigError(f"state_dict.{RESIDUALS_KEY}", dict(raw_r), "residuals must sum to 0")
        if not isinstance(raw_e, list):
            raise ConfigError(f"state_dict.{EVENTS_KEY}", raw_e, "must be a list of events")
        events = []
        for i, e in enumerate(raw_e):
            if not isinstance(e, Mapping):
                raise ConfigError(f"state_dict.events[{i}]", e, "must be an event mapping")
            check_int(f"state_dict.events[{i}].step", e.get("step"), lo=0, hi=MAX_INT)
            events.append(Event.from_dict(e))
        return step, np.array(c, dtype=np.int64), np.array(r, dtype=np.float64), events

    def record_event(self, name: str, step: int | None = None, **info: Any) -> Event:
        """Record an event (e.g. ``"cooldown"``) taking effect at ``step`` (default: the next step).

        Events cannot rewrite produced batches, so ``step`` must be >= `step`.
        """
        step = self._step if step is None else check_int("event.step", step, lo=0, hi=MAX_INT)
        if step < self._step:
            raise ConfigError("event.step", step, f"batches up to {self._step - 1} were already produced")
        event = Event(step, name, info)
        anchor = self._seek_cursors(self._step) if self.composition == "seekable" else None
        self._events.append(event)
        self._ctx = Context(self.names, self.sizes, self.total_steps, self._events, self._cursors)
        self._wctx = Context(self.names, self.sizes, self.total_steps, self._events, self._walker.cursors)
        self._forget_after(step)
        if anchor is not None:
            self._seek_anchor(self._step, anchor)
        return event

    def set_schedule(self, schedule: Schedule | float | Mapping[str, Any]) -> None:
        """Replace the schedule for the steps not yet produced; cursors carry over (no replay, no skip).

        Earlier steps keep the schedule they were produced with (in this process). The state
        names the schedule in force at its step, and `load_state_dict` refuses another one: a
        resumed sampler is built with it (or calls `set_schedule` with it before loading).
        """
        sched = self._checked(schedule)
        anchor = self._seek_cursors(self._step) if self.composition == "seekable" else None
        self._schedules = [(s, x) for s, x in self._schedules if s < self._step] + [(self._step, sched)]
        self._forget_after(self._step)
        if anchor is not None:
            self._seek_anchor(self._step, anchor)

    def _forget_after(self, step: int) -> None:
        """Drop checkpoints (and the walker, cached batch) that depend on p(t) for t >= ``step``."""
        for s in [s for s in self._checkpoints if s > step]:
            del self._checkpoints[s]
        self._keys = sorted(self._checkpoints)
        if self._walker.step > step:
            self._restore(self._keys[-1])
        if self._cached is not None and self._cached[0] >= step:
            self._cached = None

    # -- seekable composition: pure functions of the step (coolmix.seekable) ---------------------

    def _epoch(self, step: int) -> tuple[int, np.ndarray, Target]:
        """The epoch in force at ``step``; only the last one may still need its target built."""
        i = max(j for j, e in enumerate(self._epochs) if e[0] <= step)
        start, anchor, target = self._epochs[i]
        if target is None:
            ctx = Context(self.names, self.sizes, self.total_steps, tuple(self._events))
            target = build_target(self._schedules, ctx, self.batch_size)
            self._epochs[i] = (start, anchor, target)
        return start, anchor, target

    def _seek_cursors(self, step: int) -> np.ndarray:
        start, anchor, target = self._epoch(step)
        return cursors_at(target, step, start, anchor)

    def _seek_anchor(self, step: int, cursors: np.ndarray) -> None:
        """A new epoch from ``step`` at ``cursors`` (its target built lazily from the current
        schedules and events); earlier epochs keep the targets their batches were made with."""
        self._epoch(step)
        self._epochs = [e for e in self._epochs if e[0] < step] + [(step, cursors.copy(), None)]
        if self._cached is not None and self._cached[0] >= step:
            self._cached = None

    # -- counts ----------------------------------------------------------------------------------

    def _schedule_at(self, step: int) -> Schedule:
        if len(self._schedules) == 1:
            return self._schedules[0][1]
        return next(s for start, s in reversed(self._schedules) if start <= step)

    def _restore(self, step: int) -> None:
        c, r, x = self._checkpoints[step]
        w = self._walker
        w.step, w.cursors[:], w.residuals, w.target = step, c, r.copy(), None if x is None else x.copy()

    def _walk_to(self, step: int, need_target: bool = False) -> _Walker:
        """Move the walker to the start of ``step`` from the nearest checkpoint (or where it is)."""
        i = bisect.bisect_right(self._keys, step) - 1
        while need_target and self._checkpoints[self._keys[i]][2] is None:
            i -= 1  # step 0 always has its target
        best, w = self._keys[i], self._walker
        if not (best <= w.step <= step and (w.target is not None or not need_target)):
            self._restore(best)
        if step - w.step > 8 and self._plain_python_walk():
            self._walk_small(step)
        while w.step < step:
            self._advance()
        return w

    def _plain_python_walk(self) -> bool:
        """Whether `_walk_small` applies: exact composition, K < 8, no exposure-driven schedule."""
        return (
            self.composition == "exact"
            and len(self.names) < SMALL_K
            and not any(s.needs_counts for _, s in self._schedules)
        )

    def _walk_small(self, step: int, rows: list[list[int]] | None = None) -> None:
        """`_advance` up to ``step`` on plain Python lists (the cold part of a seek, about twice
        as fast): the same float operations in the same order, so the same bits as `_advance`.
        ``rows`` (if given) receives the cursors after each step."""
        w = self._walker
        B, Bf = self.batch_size, float(self.batch_size)
        cursors, residuals = w.cursors.tolist(), w.residuals.tolist()
        target = None if w.target is None else w.target.tolist()
        cuts = self._cuts()
        p, pl, until = np.zeros(0), [], -1  # p holds on [t, until) (until = -1: ask each step)
        while w.step < step:
            t = w.step
            if t >= until:
                p = self._schedule_at(t).probs(t, self._wctx)
                pl = p.tolist()
                until = -1 if cuts is None else cuts[bisect.bisect_right(cuts, t)]
            fast = exact_counts_small(pl, B, residuals)
            if fast is None:  # clipped or pathological targets: the numpy reference
                c, r = exact_counts(p, B, np.array(residuals))
                counts, residuals = c.tolist(), r.tolist()
            else:
                counts, residuals = fast
            cursors = [a + b for a, b in zip(cursors, counts, strict=True)]
            if rows is not None:
                rows.append(cursors)
            if target is not None:
                target = [x + Bf * q for x, q in zip(target, pl, strict=True)]
            w.step = t + 1
            if w.step % self._every == 0 or w.step == step:
                w.cursors[:] = cursors
                w.residuals = np.array(residuals)
                w.target = None if target is None else np.array(target)
                self._checkpoint()

    def _advance(self) -> tuple[np.ndarray, np.ndarray | None]:
        """One count step of the walker (counts and, for iid, slot domains); checkpoints on the way."""
        w = self._walker
        t = w.step
        p = self._schedule_at(t).probs(t, self._wctx)
        if self.composition == "exact":
            fast = (
                exact_counts_small(p.tolist(), self.batch_size, w.residuals.tolist())
                if len(p) < SMALL_K
                else None
            )
            if fast is None:
                counts, w.residuals = exact_counts(p, self.batch_size, w.residuals)
            else:
                counts, w.residuals = np.array(fast[0], dtype=np.int64), np.array(fast[1])
            slot_domains = None
        else:
            u = splitmix64(self._arange_b ^ np.uint64(self._iid_key ^ _mix(t))) * _INV_2_64
            slot_domains = np.minimum(np.searchsorted(np.cumsum(p), u, side="right"), len(p) - 1)
            # never land on a zero-probability domain through float round-off
            while (p[slot_domains] == 0).any():
                slot_domains = np.where(p[slot_domains] == 0, int(np.argmax(p)), slot_domains)
            counts = np.bincount(slot_domains, minlength=len(p)).astype(np.int64)
        w.cursors += counts
        if w.target is not None:
            w.target += self.batch_size * p
        w.step = t + 1
        self._checkpoint()
        return counts, slot_domains

    def _checkpoint(self) -> None:
        """Keep the walker's state if its step is a checkpoint step (and thin when too many)."""
        w = self._walker
        if w.step % self._every:
            return
        known = self._checkpoints.get(w.step)
        if known is None:
            self._checkpoints[w.step] = w.copy()
            bisect.insort(self._keys, w.step)
        elif known[2] is None and w.target is not None:  # same state, now with its target
            self._checkpoints[w.step] = w.copy()
        if len(self._keys) > self._max_checkpoints:
            self._thin()

    def _thin(self) -> None:
        """Double the checkpoint spacing, dropping the regular checkpoints in between (step 0
        and states that were loaded stay)."""
        old, self._every = self._every, self._every * 2
        for s in [s for s in self._keys if s and s % old == 0 and s % self._every]:
            del self._checkpoints[s]
        self._keys = sorted(self._checkpoints)

    def _cuts(self) -> list[int] | None:
        """Steps where p(t) may change (breakpoints, schedule changes, then "never"), or None
        when some schedule in force is continuous."""
        steps = {start for start, _ in self._schedules}
        for _, sched in self._schedules:
            bp = cuts(sched, self._wctx)
            if bp is None:
                return None
            steps |= set(bp)
        return [*sorted(steps), MAX_INT + 1]

    def _check_step(self, step: Any, end: bool = False) -> int:
        """``step`` as an int in [0, total_steps) (``end``: [0, total_steps]); a step past the run
        would make a seek walk (or search) forever, so it is a ConfigError naming ``step``."""
        return check_int("step", step, lo=0, hi=self.total_steps - (0 if end else 1))

    def cumulative_counts_array(self, step: int) -> np.ndarray:
        """C(step): items drawn per domain before ``step`` (aligned with ``names``, int64)."""
        step = self._check_step(step, end=True)
        if self.composition == "seekable":
            return self._seek_cursors(step)
        return self._walk_to(step).cursors.copy()

    def cumulative_counts_rows(self, lo: int, hi: int) -> np.ndarray:
        """C(lo), C(lo + 1), ..., C(hi) as a (hi − lo + 1, K) int64 array, so row differences are the
        per-batch counts (for bulk index builds): one walk for "exact"/"iid", a seek per step for
        "seekable". Does not move `step`."""
        lo = check_int("lo", lo, lo=0, hi=MAX_INT)
        hi = check_int("hi", hi, lo=lo, hi=MAX_INT)
        if self.composition == "seekable":
            return np.stack([self._seek_cursors(t) for t in range(lo, hi + 1)])
        w = self._walk_to(lo)
        if self._plain_python_walk():
            rows = [w.cursors.tolist()]
            self._walk_small(hi, rows)
            return np.array(rows, dtype=np.int64).reshape(hi - lo + 1, len(self.names))
        out = np.empty((hi - lo + 1, len(self.names)), dtype=np.int64)
        out[0] = w.cursors
        for r in range(1, hi - lo + 1):
            self._advance()
            out[r] = w.cursors
        return out

    def cumulative_counts(self, step: int) -> dict[str, int]:
        """C_i(step) = items of domain i in batches 0..step−1; within 1 of `cumulative_target`
        for ``composition="exact"``.
        """
        return {n: int(c) for n, c in zip(self.names, self.cumulative_counts_array(step), strict=True)}

    def cumulative_target_array(self, step: int) -> np.ndarray:
        """X(step) = Σ_{s<step} B·p(s) aligned with ``names`` (see `cumulative_target`)."""
        step = self._check_step(step, end=True)
        closed = self._closed_target(step)
        if closed is not None:
            return closed
        if self.composition == "seekable":
            return self._epoch(step)[2].window(step, step)[0][0]
        x = self._walk_to(step, need_target=True).target
        assert x is not None
        return x.copy()

    def cumulative_target(self, step: int) -> dict[str, float]:
        """X_i(step) = Σ_{s<step} B·p_i(s), the target the exact composition tracks within 1.

        Closed form over the phases for piecewise-constant schedules (O(#phases)); summed by the
        count walk (checkpointed) for continuous ones; along the realised counts for
        exposure-driven ones (UniMax-dynamic), whose p(s) depends on them.
        """
        return to_mapping(self.names, self.cumulative_target_array(step))

    def _closed_target(self, step: int) -> np.ndarray | None:
        """X(step) in closed form (`seekable.piecewise_target`), or None if a piece in force
        before ``step`` is not piecewise-constant."""
        ctx = Context(self.names, self.sizes, self.total_steps, self._events)
        target = piecewise_target(self._schedules, ctx, self.batch_size, upto=step)
        return None if target is None else target.window(step, step)[0][0]

    # -- the stream ----------------------------------------------------------------------------

    def probs_at(self, step: int) -> dict[str, float]:
        """p(step) under the current schedule and events (exposure-driven schedules: as of now)."""
        return to_mapping(self.names, self.probs_array(check_int("step", step, lo=0, hi=MAX_INT)))

    def probs_array(self, step: int) -> np.ndarray:
        """p(step) aligned with ``names`` (a read-only view; for per-step hot paths)."""
        return self._schedule_at(int(step)).probs(int(step), self._ctx)

    def tau_at(self, step: int) -> float | None:
        step = check_int("step", step, lo=0, hi=MAX_INT)
        return self._schedule_at(step).tau(step, self._ctx)

    def batch(self, step: int, rank: int = 0, world_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(domain ids, item indices), int64 arrays: this rank's slice of the global batch at ``step``."""
        world_size = check_int("world_size", world_size, lo=1, hi=MAX_BATCH)
        rank = check_int("rank", rank, lo=0, hi=world_size - 1)
        if self.batch_size % world_size:
            raise ConfigError("batch_size", self.batch_size, f"not divisible by world_size={world_size}")
        domains, indices = self.global_batch(step)
        per = self.batch_size // world_size
        sl = slice(rank * per, (rank + 1) * per)
        return domains[sl], indices[sl]

    def global_batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole batch at ``step`` (cached, so every in-process rank can slice the same one).

        Moves the sampler's state (`step`, `cursors`, `state_dict`) to just after ``step``.
        """
        step = self._check_step(step)
        domains, indices = self._batch_at(step)
        if self.composition == "seekable":
            assert self._seek_next is not None and self._seek_next[0] == step
            self._step, self._cursors[:] = step + 1, self._seek_next[1]
            return domains, indices
        w = self._walker
        self._step, self._cursors[:], self._residuals = w.step, w.cursors, w.residuals.copy()
        return domains, indices

    def _batch_at(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch at ``step`` without touching the produced state (leaves the walker at step + 1)."""
        if self.composition == "seekable":
            if self._cached is None or self._cached[0] != step:
                start, anchor, target = self._epoch(step)
                c0, c1 = batch_cursors(target, step, start, anchor)
                self._cached = (step, *self._materialise(step, c0, c1 - c0, None))
                self._seek_next = (step, c1)
            return self._cached[1], self._cached[2]
        if self._cached is not None and self._cached[0] == step:
            self._walk_to(step + 1)
            return self._cached[1], self._cached[2]
        start = self._walk_to(step).cursors.copy()
        counts, slot_domains = self._advance()
        domains, indices = self._materialise(step, start, counts, slot_domains)
        self._cached = (step, domains, indices)
        return domains, indices

    def sample_at(self, index: int | np.ndarray) -> tuple[Any, Any]:
        """The stateless index map: global sample index g = step·B + slot -> (domain id, item).

        Equals ``global_batch(g // B)`` at slot ``g % B`` (what Megatron/Grain-style consumers
        index by); ints give ints, arrays give int64 arrays. Does not move `step`.

        >>> s = MixtureSampler({"en": 1000, "sw": 10}, 5.0, total_steps=100, batch_size=8)
        >>> d, i = s.global_batch(3)
        >>> s.sample_at(3 * 8 + 5) == (int(d[5]), int(i[5]))
        True
        """
        if isinstance(index, (bool, np.bool_)):
            raise ConfigError("index", index, "must be integers >= 0 (step · batch_size + slot)")
        g = np.asarray(index)
        end = self.total_steps * self.batch_size
        if g.dtype.kind not in "iu" or (g < 0).any() or (g >= end).any():
            why = f"must be integers in [0, total_steps · batch_size = {end}) (step · batch_size + slot)"
            raise ConfigError("index", index if g.size < 8 else f"array of shape {g.shape}", why)
        flat = g.astype(np.int64).ravel()
        steps, slots = np.divmod(flat, self.batch_size)
        domains, items = np.empty_like(flat), np.empty_like(flat)
        order = np.argsort(steps, kind="stable")
        bounds = np.flatnonzero(np.diff(steps[order])) + 1
        for part in np.split(order, bounds) if flat.size else []:
            d, i = self._batch_at(int(steps[part[0]]))
            domains[part], items[part] = d[slots[part]], i[slots[part]]
        if g.ndim == 0:
            return int(domains[0]), int(items[0])
        return domains.reshape(g.shape), items.reshape(g.shape)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Global batches from the current step to ``total_steps``."""
        while self._step < self.total_steps:
            yield self.global_batch(self._step)

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
        """Items for sorted ``domains`` taking draws start[d], start[d]+1, ... (`coolmix.items`)."""
        return self._passes.take(domains, start, counts)

    def _domain_items(self, i: int, start: int, count: int) -> np.ndarray:
        """Items for draws [start, start + count) of domain i alone (for tests and tools)."""
        return self._passes.run(i, start, count)

    def __repr__(self) -> str:
        return (
            f"MixtureSampler({len(self.names)} domains, schedule={self.schedule.to_dict()}, "
            f"total_steps={self.total_steps}, batch_size={self.batch_size}, seed={self.seed}, "
            f"composition={self.composition!r}, unit={self.unit!r}, step={self._step})"
        )


def _unit(sizes: Sizes | Mixture, unit: str | None) -> str:
    """The unit of the sizes: the Mixture's, or ``unit`` (default examples); both must agree."""
    own = sizes.unit if isinstance(sizes, Mixture) else None
    if unit is not None and unit not in UNITS:
        raise ConfigError("unit", unit, f"must be one of {', '.join(UNITS)}")
    if own is not None and unit is not None and unit != own:
        raise ConfigError("unit", unit, f"the Mixture's sizes are in {own}")
    return own or unit or "examples"


def _mix(counter: int) -> int:
    """A 64-bit key offset for a counter (step or pass number)."""
    return int(splitmix64(np.array([counter], dtype=np.uint64))[0])

