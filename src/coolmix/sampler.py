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

Which domain is decided by a `coolmix.compositions.Composition` (exact, iid, seekable, or any
registered or passed class): the sampler walks a sequential one's ``step`` with checkpoints, or
asks a closed-form one for C(t); which item by `coolmix.items.PassItems`. The state is
`coolmix.state_format` format 3.

Size: > 400 code lines: stream, checkpointed seek and state validation share one set of counters.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from coolmix.compositions import Composition, composition_class, counter_key
from coolmix.counts import exact_counts
from coolmix.errors import ConfigError
from coolmix.items import PassItems
from coolmix.mixture import Mixture, check_items, check_sizes, to_mapping
from coolmix.permutation import derive_key, permute
from coolmix.schedules import Context, Event, Schedule, as_schedule, cuts
from coolmix.seekable import Target, build_target, piecewise_target
from coolmix.state_format import DomainChange, domain_change, envelope, open_state
from coolmix.state_reader import StateReader
from coolmix.types import UNITS, Sizes
from coolmix.types import Composition as CompositionName
from coolmix.validate import MAX_INT, canonical_json, check_int

__all__ = ["MAX_BATCH", "STATE_VERSION", "MixtureSampler", "exact_counts"]

STATE_VERSION = 1
"""Version of the stream for a given state (the golden streams pin it); bumped whenever it changes.
The state's layout is `coolmix.state_format` (format 3; formats 2 and 1 are migrated on load)."""

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
_TOTAL_KEY, _BATCH_KEY, _SCHEDULE_KEY, _REBASED_KEY = "total_steps", "batch_size", "schedule", "rebased"
STATE_FIELDS = (
    *(STEP_KEY, CURSORS_KEY, RESIDUALS_KEY, EVENTS_KEY, _MIXTURE_KEY, _SEED_KEY, _COMPOSITION_KEY),
    *(_UNIT_KEY, _TOTAL_KEY, _BATCH_KEY, _SCHEDULE_KEY, _REBASED_KEY),
)
"""The fields of a sampler state beside the `coolmix.state_format` envelope."""


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
      ``"seekable"``: counts in closed form of X(t) (`coolmix.seekable`), same items and shuffle;
      any name in `coolmix.compositions.COMPOSITIONS`, or a `Composition` subclass.
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
        composition: CompositionName | type[Composition] = "exact",
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
        rule = composition_class(composition)
        self.composition: str = rule.name
        self._comp = rule(names, self.batch_size, self.seed)
        self._comp.build = _TargetBuilder(self)
        self._floor = 0  # the first step this sampler serves (> 0 after a domain change: see load)
        first = self._checked(schedule)
        self._schedules: list[tuple[int, Schedule]] = [(0, first)]
        self._passes = PassItems(names, counts, self.seed)
        self._order_key = derive_key(self.seed, "order")
        self._arange_b = np.arange(self.batch_size, dtype=np.uint64)
        self._events: list[Event] = []
        k = len(names)
        self._every = CHECKPOINT_EVERY
        self._max_checkpoints = max(64, MAX_CHECKPOINT_BYTES // (24 * k + 200))
        self._reset(0, np.zeros(k, dtype=np.int64), np.zeros(k), np.zeros(k))
        self._seek_next: tuple[int, np.ndarray] | None = None

    @property
    def rule(self) -> type[Composition]:
        """The composition's class (what it can do: ``seekable``, ``per_slot``, its ``unit``)."""
        return type(self._comp)

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        """Unpickled (e.g. in a spawned DataLoader worker): re-attach the composition's weak link."""
        self.__dict__.update(state)
        self._comp.build = _TargetBuilder(self)

    def _checked(self, schedule: Schedule | float | Mapping[str, Any]) -> Schedule:
        sched = as_schedule(schedule)
        sched.validate(self.names)
        sched.check(self.total_steps)
        self._comp.check(sched)
        if sched.needs_counts and self._floor:
            why = f"reads the realised counts since step 0, but the domains changed at step {self._floor}"
            raise ConfigError("schedule", sched.kind, why)
        return sched

    def _build_target(self) -> Target:
        """X(t) of the schedules and events in force now (what a closed-form composition reads)."""
        ctx = Context(self.names, self.sizes, self.total_steps, tuple(self._events))
        return build_target(self._schedules, ctx, self.batch_size)

    # -- state ---------------------------------------------------------------------------------

    def _reset(
        self,
        step: int,
        cursors: np.ndarray,
        residuals: np.ndarray,
        target: np.ndarray | None,
        base: tuple[int, np.ndarray] | None = None,
    ) -> None:
        """Produced state at ``step``; checkpoints: the first step served (0, or a domain change's
        ``base`` = (t0, C(t0)), residuals 0 there) and this one."""
        k = len(self.names)
        self._floor = 0 if base is None else base[0]
        self._step = step
        self._cursors = cursors.copy()
        self._residuals = residuals.copy()
        self._cached: tuple[int, np.ndarray, np.ndarray] | None = None
        self._ctx = Context(self.names, self.sizes, self.total_steps, self._events, self._cursors)
        first = (np.zeros(k, dtype=np.int64), np.zeros(k), np.zeros(k))
        if base is not None:  # X(t0) from the schedule (a domain change refuses exposure-driven ones)
            first = (base[1].copy(), np.zeros(k), self._build_target().window(base[0], base[0])[0][0])
        if step == self._floor:  # X(0) = 0 (X(t0) as computed) whatever the state says
            target = first[2]
        self._checkpoints: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {
            self._floor: first,
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
        """A small JSON-able state (`coolmix.state_format`, kind "sampler"): counters, residuals,
        events, and the run they are valid for."""
        rebased = None
        if self._floor:
            base = self._checkpoints[self._floor][0]
            at = {n: int(c) for n, c in zip(self.names, base, strict=True)}
            rebased = {STEP_KEY: self._floor, CURSORS_KEY: at}
        return envelope(
            "sampler",
            self.names,
            {
                STEP_KEY: self._step,
                CURSORS_KEY: self.cursors,
                RESIDUALS_KEY: to_mapping(self.names, self._residuals),
                EVENTS_KEY: [e.to_dict() for e in self._events],
                _MIXTURE_KEY: self._mixture(),
                _SEED_KEY: self.seed,
                _COMPOSITION_KEY: self.composition,
                _UNIT_KEY: self.unit,
                _TOTAL_KEY: self.total_steps,
                _BATCH_KEY: self.batch_size,
                _SCHEDULE_KEY: self._schedule_at(self._step).to_dict(),
                _REBASED_KEY: rebased,
            },
        )

    def _mixture(self) -> dict[str, int]:
        return {n: int(s) for n, s in zip(self.names, self._n, strict=True)}

    def load_state_dict(self, state: Mapping[str, Any], *, allow_domain_change: bool = False) -> None:
        """Restore a state saved by `state_dict` (possibly under another world size; formats 2 and 1
        are migrated, `coolmix.state_format`).

        Every counter is checked before anything changes (one-line `ConfigError`, the sampler
        untouched): step and cursors are integers in [0, 2**62] with Σ cursors = step·B;
        residuals are finite, |r_i| <= K + 2 and Σ r ≈ 0 (what the recursion keeps).

        **Domains added or removed by name** (``allow_domain_change=True``; refused otherwise, naming
        them): the common domains keep their cursors, so each continues its own item order exactly
        where it stopped (the order is keyed by the domain's name); an added domain starts at cursor
        0; a removed one is dropped. From the resume step t0 on, the counts follow the new mixture as
        if the run started at t0: with "exact", C_i(t) − C_i(t0) stays within 1 of X_i(t) − X_i(t0)
        (residuals restart at 0); with "seekable", arrivals restart at X(t0), so it stays within
        1/2 + the seekable bound (`coolmix.seekable`) of it. The realised share over the whole run
        is not that of either mixture, steps before t0 are no longer served, and exposure-driven
        schedules are refused (their p read the old domains' counts). A state saved afterwards
        records t0 (``rebased``) and resumes exactly.
        """
        r, saved = open_state(state, "sampler", "state_dict", STATE_FIELDS)
        change = domain_change(saved, self.names, allow_domain_change, "state_dict.domains")
        mine = self._mixture()
        mixture = r.get(_MIXTURE_KEY)
        if (
            not isinstance(mixture, Mapping)
            or set(mixture) != set(saved)
            or any(mixture[n] != mine[n] for n in saved if n in mine)
        ):
            raise ConfigError("state_dict.mixture", mixture, f"from a different mixture; this one is {mine}")
        own = ((_SEED_KEY, self.seed), (_COMPOSITION_KEY, self.composition), (_UNIT_KEY, self.unit))
        for key, want in own:
            if r.get(key) != want:
                raise ConfigError(f"state_dict.{key}", r.get(key), f"this sampler has {want!r}")
        self._check_run(r)
        step, cursors, residuals, events, base = self._parse_state(r, saved, change)
        self._events[:] = events
        self._reset(step, cursors, residuals, None, base)
        if self._comp.seekable:  # re-anchoring at the stream's own cursors is the identity
            self._comp.restart(step, cursors, base)

    def _check_run(self, r: StateReader) -> None:
        """A state belongs to one run: same total_steps, batch_size and schedule in force at its
        step (a deliberate change: `set_schedule` before loading, or after it). None: a format-1
        state, which did not record them (nothing to compare)."""
        for key, mine in ((_TOTAL_KEY, self.total_steps), (_BATCH_KEY, self.batch_size)):
            got = r.get(key)
            if got is not None and (got != mine or isinstance(got, bool) or not isinstance(got, int)):
                why = f"saved by a run with another {key}; this sampler has {mine}"
                raise ConfigError(f"state_dict.{key}", got, why)
        got_s = r.get(_SCHEDULE_KEY)
        if got_s is None:
            return
        step = r.integer(STEP_KEY, hi=self.total_steps)
        mine_s = self._schedule_at(step).to_dict()
        if canonical_json(got_s) != canonical_json(mine_s):
            why = (
                f"saved under another schedule; this sampler has {mine_s} at step {step} (build it with "
                "the saved one, or set_schedule(saved) before loading; change it after loading)"
            )
            raise ConfigError(f"state_dict.{_SCHEDULE_KEY}", got_s, why)

    def _parse_state(
        self, r: StateReader, saved: tuple[str, ...], change: DomainChange
    ) -> tuple[int, np.ndarray, np.ndarray, list[Event], tuple[int, np.ndarray] | None]:
        """(step, cursors, residuals, events, base) in this sampler's domain order; base = (t0, C(t0))
        of the last domain change (this one's, if the domains changed now), or None."""
        step = r.integer(STEP_KEY)
        c = r.per_domain(CURSORS_KEY, saved, r.integer)
        k = len(saved)
        res = r.per_domain(RESIDUALS_KEY, saved, r.real, lo=-k - 2.0, hi=k + 2.0)
        if abs(sum(res)) > 1e-6 * (1 + self.batch_size + k):
            raise r.fail(RESIDUALS_KEY, r.get(RESIDUALS_KEY), "residuals must sum to 0")
        t0, c0 = 0, [0] * k
        if r.get(_REBASED_KEY) is not None:
            rb = r.mapping(_REBASED_KEY)
            t0 = rb.integer(STEP_KEY, hi=step)
            c0 = rb.per_domain(CURSORS_KEY, saved, rb.integer)
        drawn = sum(c0) + (step - t0) * self.batch_size
        if sum(c) != drawn:
            why = f"must sum to step × batch_size = {drawn}"
            if t0:
                why = f"must sum to {drawn} (the cursors at {t0}, then step × batch_size more)"
            raise r.fail(CURSORS_KEY, r.get(CURSORS_KEY), why)
        events = []
        for i, e in enumerate(r.sequence(EVENTS_KEY)):
            if not isinstance(e, Mapping):
                raise r.fail(f"{EVENTS_KEY}[{i}]", e, "must be an event mapping")
            key = f"{EVENTS_KEY}[{i}].step"
            r.integer(key, value=e.get("step"), field=r.field(key))
            events.append(Event.from_dict(e))
        cursors = dict(zip(saved, c, strict=True))
        if change.changed:
            needy = [x.kind for _, x in self._schedules if x.needs_counts]
            if needy:
                why = f"schedule {needy[0]!r} reads the realised counts of the saved domains"
                raise ConfigError("allow_domain_change", True, why)
            now = np.array(change.pick(cursors, 0), dtype=np.int64)
            return step, now, np.zeros(len(self.names)), events, (step, now)
        base = None
        if t0:
            base = (t0, np.array(change.pick(dict(zip(saved, c0, strict=True)), 0), dtype=np.int64))
        now = np.array(change.pick(cursors, 0), dtype=np.int64)
        return step, now, np.array(change.pick(dict(zip(saved, res, strict=True)), 0.0)), events, base

    def record_event(self, name: str, step: int | None = None, **info: Any) -> Event:
        """Record an event (e.g. ``"cooldown"``) taking effect at ``step`` (default: the next step).

        Events cannot rewrite produced batches, so ``step`` must be >= `step`.
        """
        step = self._step if step is None else check_int("event.step", step, lo=0, hi=MAX_INT)
        if step < self._step:
            raise ConfigError("event.step", step, f"batches up to {self._step - 1} were already produced")
        event = Event(step, name, info)
        anchor = self._comp.cursors(self._step) if self._comp.seekable else None
        self._events.append(event)
        self._ctx = Context(self.names, self.sizes, self.total_steps, self._events, self._cursors)
        self._wctx = Context(self.names, self.sizes, self.total_steps, self._events, self._walker.cursors)
        self._forget_after(step)
        if anchor is not None:
            self._anchor(self._step, anchor)
        return event

    def set_schedule(self, schedule: Schedule | float | Mapping[str, Any]) -> None:
        """Replace the schedule for the steps not yet produced; cursors carry over (no replay, no skip).

        Earlier steps keep the schedule they were produced with (in this process). The state
        names the schedule in force at its step, and `load_state_dict` refuses another one: a
        resumed sampler is built with it (or calls `set_schedule` with it before loading).
        """
        sched = self._checked(schedule)
        anchor = self._comp.cursors(self._step) if self._comp.seekable else None
        self._schedules = [(s, x) for s, x in self._schedules if s < self._step] + [(self._step, sched)]
        self._forget_after(self._step)
        if anchor is not None:
            self._anchor(self._step, anchor)

    def _forget_after(self, step: int) -> None:
        """Drop checkpoints (and the walker, cached batch) that depend on p(t) for t >= ``step``."""
        for s in [s for s in self._checkpoints if s > step]:
            del self._checkpoints[s]
        self._keys = sorted(self._checkpoints)
        if self._walker.step > step:
            self._restore(self._keys[-1])
        if self._cached is not None and self._cached[0] >= step:
            self._cached = None

    def _anchor(self, step: int, cursors: np.ndarray) -> None:
        """A closed-form composition's new epoch from ``step`` (after a change of p); drops the cache."""
        self._comp.anchor(step, cursors)
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
        """Whether `_walk_small` applies: a composition that walks on lists (exact, K < 8), no
        exposure-driven schedule."""
        return self._comp.walks_lists and not any(s.needs_counts for _, s in self._schedules)

    def _walk_small(self, step: int, rows: list[list[int]] | None = None) -> None:
        """`_advance` up to ``step`` on plain Python lists (the cold part of a seek, about twice
        as fast): the same float operations in the same order, so the same bits as `_advance`.
        ``rows`` (if given) receives the cursors after each step."""
        w = self._walker
        Bf = float(self.batch_size)
        step_lists = self._comp.step_lists
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
            counts, residuals = step_lists(pl, p, residuals)
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
        counts, w.residuals, slot_domains = self._comp.step(t, p, w.residuals)
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
        (or a domain change's first step) and states that were loaded stay)."""
        old, self._every = self._every, self._every * 2
        for s in [s for s in self._keys if s > self._floor and s % old == 0 and s % self._every]:
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
        would make a seek walk (or search) forever, so it is a ConfigError naming ``step``. After a
        domain change the first step served is the resume step."""
        return check_int("step", step, lo=self._floor, hi=self.total_steps - (0 if end else 1))

    def cumulative_counts_array(self, step: int) -> np.ndarray:
        """C(step): items drawn per domain before ``step`` (aligned with ``names``, int64)."""
        step = self._check_step(step, end=True)
        if self._comp.seekable:
            return self._comp.cursors(step)
        return self._walk_to(step).cursors.copy()

    def cumulative_counts_rows(self, lo: int, hi: int) -> np.ndarray:
        """C(lo), C(lo + 1), ..., C(hi) as a (hi − lo + 1, K) int64 array, so row differences are the
        per-batch counts (for bulk index builds): one walk for "exact"/"iid", a seek per step for
        "seekable". Does not move `step`."""
        lo = check_int("lo", lo, lo=self._floor, hi=MAX_INT)
        hi = check_int("hi", hi, lo=lo, hi=MAX_INT)
        if self._comp.seekable:
            return np.stack([self._comp.cursors(t) for t in range(lo, hi + 1)])
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
        if self._comp.seekable:
            return self._comp.target(step)
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
        if self._comp.seekable:
            assert self._seek_next is not None and self._seek_next[0] == step
            self._step, self._cursors[:] = step + 1, self._seek_next[1]
            return domains, indices
        w = self._walker
        self._step, self._cursors[:], self._residuals = w.step, w.cursors, w.residuals.copy()
        return domains, indices

    def _batch_at(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch at ``step`` without touching the produced state (leaves the walker at step + 1)."""
        if self._comp.seekable:
            if self._cached is None or self._cached[0] != step:
                c0, c1 = self._comp.batch_cursors(step)
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
        end, first = self.total_steps * self.batch_size, self._floor * self.batch_size
        if g.dtype.kind not in "iu" or (g < first).any() or (g >= end).any():
            why = f"must be integers in [{first}, total_steps · batch_size = {end}) (step · B + slot)"
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
            key = self._order_key ^ counter_key(step)
            order = permute(self._arange_b, self.batch_size, key).astype(np.int64)
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


class _TargetBuilder:
    """The sampler's `_build_target` through a weak reference: a bound method held by the composition
    would make sampler ↔ composition a reference cycle, leaving every dropped sampler (with its
    checkpoints and cached batch) to the cyclic GC; measured 1.3× slower streams when many are built.
    A weak reference does not pickle: it pickles empty and the unpickled sampler re-attaches itself
    (`MixtureSampler.__setstate__`), so samplers still travel to spawned DataLoader workers."""

    def __init__(self, sampler: MixtureSampler | None = None) -> None:
        self._ref = None if sampler is None else weakref.ref(sampler)

    def __call__(self) -> Target:
        sampler = None if self._ref is None else self._ref()
        assert sampler is not None, "the composition outlived its sampler"
        return sampler._build_target()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._ref = None


def _unit(sizes: Sizes | Mixture, unit: str | None) -> str:
    """The unit of the sizes: the Mixture's, or ``unit`` (default examples); both must agree."""
    own = sizes.unit if isinstance(sizes, Mixture) else None
    if unit is not None and unit not in UNITS:
        raise ConfigError("unit", unit, f"must be one of {', '.join(UNITS)}")
    if own is not None and unit is not None and unit != own:
        raise ConfigError("unit", unit, f"the Mixture's sizes are in {own}")
    return own or unit or "examples"

