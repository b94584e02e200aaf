"""Exposure planning: what a schedule will draw from each domain, per phase, before training.

`make_plan` integrates a schedule over the run, ``E_i = Σ_t B · p_i(t)`` expected examples per
domain (peers.md §6.2), splits it into the schedule's phases, converts it to tokens and epochs,
runs the real `MixtureSampler` counts to show the realised composition next to the target, and
lists the guardrail warnings (peers.md §6.13): a domain with p_i·B < 1 is absent from most
batches; a domain repeated beyond ``max_epochs``; a domain that is never drawn; sizes in tokens
with no ``tokens_per_example``.

Units. The sampler always draws *examples* (sequences, sentence pairs). Sizes may be declared
in another unit; ``tokens_per_example`` (tpe, a number or one per domain) converts:

=========================  ===========================  ===================  =====================
unit of ``sizes``          examples the sampler sees n  "tokens" column      epochs
=========================  ===========================  ===================  =====================
examples, documents        size                         samples · tpe        samples / size
tokens, characters, bytes  ⌊size / tpe⌋                 samples · tpe        samples · tpe / size
  … with tpe missing       size (one draw = one unit)   samples              samples / size
=========================  ===========================  ===================  =====================

For character or byte sizes, tpe is "characters (bytes) per example" and the "tokens" column
counts that unit (`Plan.tokens_unit` says which). The schedule runs on the example counts n,
exactly as the sampler will; with one tpe for every domain this equals the temperature on the
declared sizes (p ∝ (s/c)^(1/τ) ∝ s^(1/τ)), with per-domain tpe it does not (the plan notes it).
A UniMax ``budget`` is therefore in examples: ``total_steps · batch_size`` is the whole run.

Phases come from ``schedule.breakpoints``; a continuous schedule (breakpoints None, or one that
reads realised counts) is reported in ``segments`` equal stretches. Expected counts are exact
sums over steps for piecewise-constant schedules; for continuous ones they are summed exactly up
to 20,000 schedule evaluations and on a stride beyond (the plan notes the stride). The realised
counts come from the sampler's public counts API (its count step, O(K) per step, no items) for at most
``max_simulated_steps`` steps (noted when that cuts the run short).

This module imports numpy only; the CSV and PNG writers sit next to the ``plan`` command
(`coolmix.cli._plan_files`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np

from coolmix import plan_steps
from coolmix.errors import ConfigError
from coolmix.mixture import check_sizes, to_mapping
from coolmix.sampler import MixtureSampler
from coolmix.schedules import Context, Event, Schedule, as_schedule
from coolmix.types import UNITS, Composition, Sizes
from coolmix.validate import check_float, check_int, encode_inf

__all__ = [
    "MAX_EVALUATIONS",
    "MAX_SIMULATED_STEPS",
    "SEGMENTS",
    "Curve",
    "Phase",
    "Plan",
    "make_plan",
]

SEGMENTS = 4
"""Continuous schedules are reported in this many equal stretches of the run."""

MAX_EVALUATIONS = 20_000
"""Schedule evaluations per integration of a continuous schedule; beyond, integrate on a stride."""

MAX_SIMULATED_STEPS = 100_000
"""Steps of the real sampler replayed for the realised counts (about 10 µs per step)."""


@dataclass(frozen=True)
class Phase:
    """One reported stretch of the run, steps ``[start, end)``; all mappings are keyed by domain.

    ``samples`` are expected examples, ``tokens`` the same in `Plan.tokens_unit` (None without
    tokens_per_example), ``epochs`` the repetitions of each domain within the phase and
    ``cumulative_epochs`` those since step 0 at the phase's end. ``min_per_batch`` is the
    smallest p_i·B in the phase. ``realised`` holds the sampler's counts when the simulation
    covered the phase.
    """

    index: int
    start: int
    end: int
    tau_start: float | None
    tau_end: float | None
    probs_start: dict[str, float]
    probs_end: dict[str, float]
    min_per_batch: dict[str, float]
    samples: dict[str, float]
    tokens: dict[str, float] | None
    epochs: dict[str, float]
    cumulative_epochs: dict[str, float]
    realised: dict[str, int] | None

    @property
    def steps(self) -> int:
        return self.end - self.start

    @property
    def target_share(self) -> dict[str, float]:
        """Expected share of the phase's examples per domain."""
        return _share(self.samples)

    @property
    def realised_share(self) -> dict[str, float] | None:
        return None if self.realised is None else _share(self.realised)

    @property
    def label(self) -> str:
        """The temperature in force, e.g. ``τ=5`` or ``τ=5→1.2`` (``—`` when not a temperature)."""
        a, b = _tau_text(self.tau_start), _tau_text(self.tau_end)
        if a is None and b is None:
            return "—"
        return f"τ={a}" if a == b else f"τ={a or '—'}→{b or '—'}"


class Curve(NamedTuple):
    """`Plan.curve` output: ``probs[d][j]`` = p_d at ``steps[j]``, ``epochs[d][j]`` cumulative
    epochs of d through ``steps[j]`` (inclusive), ``tau[j]`` the temperature (NaN if none)."""

    steps: np.ndarray
    probs: dict[str, np.ndarray]
    epochs: dict[str, np.ndarray]
    tau: np.ndarray


@dataclass(frozen=True)
class Plan:
    """The exposure plan of a mixture schedule over one run (see the module docstring for units).

    Whole-run fields: ``samples`` (expected examples), ``tokens``, ``epochs``, ``target_share``;
    ``realised`` are the sampler's counts over the first ``simulated_steps`` steps, whose target
    is ``realised_target``. ``warnings`` are things to fix or accept; ``notes`` explain how the
    numbers were computed.

    >>> p = make_plan({"a": 990, "b": 10}, 1.0, total_steps=100, batch_size=10)
    >>> p.samples, p.epochs["b"], p.realised
    ({'a': 990.0, 'b': 10.0}, 1.0, {'a': 990, 'b': 10})
    >>> p.warnings[0]
    'b: p·B = 0.1 < 1 in every phase: absent from about 90% of those batches'
    """

    names: tuple[str, ...]
    sizes: dict[str, float]
    unit: str
    examples: dict[str, int]
    tokens_per_example: dict[str, float] | None
    tokens_unit: str | None
    schedule: Schedule
    events: tuple[Event, ...]
    total_steps: int
    batch_size: int
    seed: int
    composition: str
    max_epochs: float | None
    phases: tuple[Phase, ...]
    piecewise: bool
    stride: int
    samples: dict[str, float]
    tokens: dict[str, float] | None
    epochs: dict[str, float]
    target_share: dict[str, float]
    simulated_steps: int
    realised: dict[str, int] | None
    realised_target: dict[str, float] | None
    warnings: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def realised_share(self) -> dict[str, float] | None:
        return None if self.realised is None else _share(self.realised)

    @property
    def max_deviation(self) -> float | None:
        """max_i |realised_i − target_i| in examples over the simulated steps (≤ 1 when exact)."""
        if self.realised is None or self.realised_target is None:
            return None
        return max(abs(self.realised[n] - self.realised_target[n]) for n in self.names)

    def curve(self, points: int = 200) -> Curve:
        """p_i(t) and cumulative epochs at ``points`` steps spread evenly over the run."""
        points = check_int("points", points, lo=2)
        T, B = self.total_steps, self.batch_size
        steps = np.unique(np.linspace(0, T - 1, points).round().astype(np.int64))
        grid = {p.start for p in self.phases} | {T} | set(steps.tolist()) | set((steps + 1).tolist())
        if not self.piecewise:
            grid |= set(range(0, T, self.stride))
        ctx = self._context()
        per_draw = self._per_draw()
        sizes = np.array([self.sizes[n] for n in self.names])
        want = {int(s): j for j, s in enumerate(steps)}
        probs = np.zeros((len(steps), len(self.names)))
        cum = np.zeros_like(probs)
        tau = np.full(len(steps), np.nan)
        for a, b, p, before in plan_steps.integrate(self.schedule, ctx, B, sorted(grid)):
            j = want.get(a)
            if j is not None:
                probs[j] = p
                cum[j] = (before + (b - a) * B * p) * per_draw / sizes
                t = self.schedule.tau(a, ctx)
                tau[j] = np.nan if t is None else t
        return Curve(
            steps=steps,
            probs={n: probs[:, i] for i, n in enumerate(self.names)},
            epochs={n: cum[:, i] for i, n in enumerate(self.names)},
            tau=tau,
        )

    @property
    def whole_run(self) -> Phase:
        """The whole run as one `Phase` (index -1); ``realised`` only if the simulation covered it."""
        first, last = self.phases[0], self.phases[-1]
        return Phase(
            index=-1,
            start=0,
            end=self.total_steps,
            tau_start=first.tau_start,
            tau_end=last.tau_end,
            probs_start=first.probs_start,
            probs_end=last.probs_end,
            min_per_batch={n: min(ph.min_per_batch[n] for ph in self.phases) for n in self.names},
            samples=self.samples,
            tokens=self.tokens,
            epochs=self.epochs,
            cumulative_epochs=self.epochs,
            realised=self.realised if self.simulated_steps == self.total_steps else None,
        )

    def rows(self) -> list[dict[str, Any]]:
        """One row per (phase, domain), then ``phase = "all"`` rows for the whole run (for CSV)."""
        out = []
        for ph in (*self.phases, self.whole_run):
            target, realised = ph.target_share, ph.realised_share
            for n in self.names:
                out.append(
                    {
                        "phase": "all" if ph.index < 0 else ph.index,
                        "start_step": ph.start,
                        "end_step": ph.end,
                        "tau_start": _csv_num(ph.tau_start),
                        "tau_end": _csv_num(ph.tau_end),
                        "domain": n,
                        "size": self.sizes[n],
                        "unit": self.unit,
                        "examples": self.examples[n],
                        "p_start": ph.probs_start[n],
                        "p_end": ph.probs_end[n],
                        "min_p_times_batch": ph.min_per_batch[n],
                        "expected_samples": ph.samples[n],
                        "expected_tokens": "" if ph.tokens is None else ph.tokens[n],
                        "epochs": ph.epochs[n],
                        "cumulative_epochs": ph.cumulative_epochs[n],
                        "target_share": target[n],
                        "realised_samples": "" if ph.realised is None else ph.realised[n],
                        "realised_share": "" if realised is None else realised[n],
                    }
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary of every field (τ = ∞ is written as ``"inf"``)."""
        skip = ("names", "schedule", "events", "phases")
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        out.update(
            schedule=self.schedule.to_dict(),
            events=[e.to_dict() for e in self.events],
            realised_share=self.realised_share,
            max_deviation=self.max_deviation,
            phases=[{f.name: getattr(ph, f.name) for f in fields(ph)} for ph in self.phases],
        )
        return _jsonable(out)

    def _context(self) -> Context:
        items = np.array([float(self.examples[n]) for n in self.names])
        return Context(self.names, items, self.total_steps, self.events)

    def _per_draw(self) -> np.ndarray:
        """Size units consumed by one example draw (tpe for token-like units, else 1)."""
        if self.unit in plan_steps.EXAMPLE_UNITS or self.tokens_per_example is None:
            return np.ones(len(self.names))
        return np.array([self.tokens_per_example[n] for n in self.names])


def make_plan(
    sizes: Sizes,
    schedule: Schedule | float | Mapping[str, Any],
    total_steps: int,
    batch_size: int,
    tokens_per_example: float | Mapping[str, float] | None = None,
    unit: str = "examples",
    max_epochs: float | None = None,
    seed: int = 0,
    simulate: bool = True,
    *,
    composition: Composition = "exact",
    events: Sequence[Event] = (),
    segments: int = SEGMENTS,
    max_simulated_steps: int = MAX_SIMULATED_STEPS,
) -> Plan:
    """Plan the exposure of each domain under ``schedule`` for ``total_steps`` × ``batch_size``.

    E_i = Σ_t B · p_i(t) expected examples (peers.md §6.2), per phase and in total; epochs =
    E_i · tpe_i / size_i for token-like units, E_i / size_i for example counts. Invalid
    arguments raise `ConfigError`. Four pure steps: units → sampler (validation, realised
    counts through its public counts API) → phases → integration.

    >>> p = make_plan({"en": 2733e9, "sw": 1e9}, {"kind": "cooldown", "hot": 5, "cold": 1},
    ...               total_steps=100, batch_size=512, tokens_per_example=1024, unit="tokens")
    >>> [ph.label for ph in p.phases], round(p.phases[0].epochs["sw"], 6)
    (['τ=5', 'τ=1'], 0.004468)
    """
    names, arr = check_sizes(sizes)
    if unit not in UNITS:
        raise ConfigError("unit", unit, f"must be one of {', '.join(UNITS)}")
    tpe = plan_steps.per_example(tokens_per_example, names)
    if max_epochs is not None:
        max_epochs = check_float("max_epochs", max_epochs, lo=0.0, lo_open=True)
    segments = check_int("segments", segments, lo=1)
    max_simulated_steps = max(0, check_int("max_simulated_steps", max_simulated_steps))
    units = plan_steps.units(names, arr, unit, tpe)
    sched = as_schedule(schedule)
    sampler = MixtureSampler(
        dict(zip(names, units.items.astype(np.int64).tolist(), strict=True)),
        sched,
        total_steps,
        batch_size,
        seed,
        composition,
    )
    for e in events:
        sampler.record_event(e.name, e.step, **e.info)
    T, B = sampler.total_steps, sampler.batch_size
    ctx = Context(names, units.items, T, sampler.events)
    bounds, piecewise, phase_warnings = plan_steps.phase_bounds(sched, ctx, T, segments)
    stride = 1 if piecewise or T <= MAX_EVALUATIONS else math.ceil(T / MAX_EVALUATIONS)
    S = min(T, max_simulated_steps) if simulate else 0
    cap = None if max_epochs is None else max_epochs * arr / units.per_draw  # in examples
    exp = plan_steps.expected(sched, ctx, B, bounds, piecewise, stride, S, cap)
    snapshots = {b: sampler.cumulative_counts_array(b) for b in sorted({*bounds, S}) if b <= S} if S else {}
    realised_target = sampler.cumulative_target_array(S) if S and sched.needs_counts else exp.prefix_target
    notes = units.notes
    if stride > 1:
        notes.append(f"continuous schedule integrated on a stride of {stride} steps (approximate)")
    if 0 < S < T:
        notes.append(f"realised counts simulated for the first {S:,} of {T:,} steps")
    phases = _phases(names, arr, units, tpe, bounds, exp, snapshots)
    total = exp.samples.sum(axis=0)
    epochs = total * units.per_draw / arr
    warnings = units.warnings + phase_warnings
    warnings += plan_steps.guardrail_warnings(
        names, phases, B, composition, epochs, max_epochs, exp.crossed, total, sched, T * B
    )
    return Plan(
        names=names,
        sizes=to_mapping(names, arr),
        unit=unit,
        examples=_ints(names, units.items),
        tokens_per_example=None if tpe is None else to_mapping(names, tpe),
        tokens_unit=units.tokens_unit,
        schedule=sched,
        events=sampler.events,
        total_steps=T,
        batch_size=B,
        seed=sampler.seed,
        composition=composition,
        max_epochs=max_epochs,
        phases=tuple(phases),
        piecewise=piecewise,
        stride=stride,
        samples=to_mapping(names, total),
        tokens=None
        if units.tokens_unit is None
        else to_mapping(names, total * plan_steps.tok(tpe, len(names))),
        epochs=to_mapping(names, epochs),
        target_share=to_mapping(names, total / total.sum()),
        simulated_steps=S,
        realised=_ints(names, snapshots[S]) if S else None,
        realised_target=to_mapping(names, realised_target) if S else None,
        warnings=tuple(warnings),
        notes=tuple(notes),
    )


def _phases(
    names: tuple[str, ...],
    arr: np.ndarray,
    units: plan_steps.Units,
    tpe: np.ndarray | None,
    bounds: list[int],
    exp: plan_steps.Expected,
    snapshots: Mapping[int, np.ndarray],
) -> list[Phase]:
    """One `Phase` per [bounds[k], bounds[k+1]); ``realised`` where both ends were simulated."""

    def m(values: np.ndarray) -> dict[str, float]:
        return to_mapping(names, values)

    cum = np.cumsum(exp.samples, axis=0)
    out = []
    for k, (a, b) in enumerate(pairwise(bounds)):
        samples = exp.samples[k]
        out.append(
            Phase(
                index=k,
                start=a,
                end=b,
                tau_start=exp.tau_start[k],
                tau_end=exp.tau_end[k],
                probs_start=m(exp.p_start[k]),
                probs_end=m(exp.p_end[k]),
                min_per_batch=m(exp.min_per_batch[k]),
                samples=m(samples),
                tokens=None if units.tokens_unit is None else m(samples * plan_steps.tok(tpe, len(names))),
                epochs=m(samples * units.per_draw / arr),
                cumulative_epochs=m(cum[k] * units.per_draw / arr),
                realised=_ints(names, snapshots[b] - snapshots[a])
                if a in snapshots and b in snapshots
                else None,
            )
        )
    return out


def _ints(names: tuple[str, ...], values: np.ndarray) -> dict[str, int]:
    return {n: int(v) for n, v in zip(names, values, strict=True)}


def _share(counts: Mapping[str, float]) -> dict[str, float]:
    total = float(sum(counts.values()))
    return {n: (float(v) / total if total else 0.0) for n, v in counts.items()}


def _tau_text(tau: float | None) -> str | None:
    if tau is None:
        return None
    return "∞" if math.isinf(tau) else f"{tau:.3g}"


def _csv_num(x: float | None) -> float | str | None:
    return "" if x is None else encode_inf(float(x))


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return encode_inf(float(x))
    if isinstance(x, np.integer):
        return int(x)
    return x
