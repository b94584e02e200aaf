"""The pure steps of `coolmix.plan.make_plan`: units → phase bounds → integration → warnings.

Each step is a function of plain values (numpy arrays, a `Schedule` and its `Context`), so the
planner reads top to bottom and each step can be tested alone. ``E_i = Σ_t B·p_i(t)`` is
integrated block by block on a grid (`integrate`), exact for piecewise-constant schedules.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Mapping, Sequence
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np

from coolmix.distributions import UniMax
from coolmix.errors import ConfigError
from coolmix.rare_domains import rare_domain_warning
from coolmix.schedules import Constant, Context, Schedule, Stages, cuts
from coolmix.validate import MAX_INT, check_float

__all__ = [
    "EXAMPLE_UNITS",
    "Expected",
    "Units",
    "expected",
    "guardrail_warnings",
    "integrate",
    "per_example",
    "phase_bounds",
    "tok",
    "units",
]

EXAMPLE_UNITS = ("examples", "documents")
"""Units that count examples (the sampler draws one per slot); the others are token-like."""


class Units(NamedTuple):
    """Sizes converted to what the sampler draws: example counts, size units per draw, labels."""

    items: np.ndarray
    per_draw: np.ndarray
    tokens_unit: str | None
    warnings: list[str]
    notes: list[str]


class Expected(NamedTuple):
    """The integrated schedule: expected samples per phase and what each phase starts and ends with."""

    samples: np.ndarray
    min_per_batch: np.ndarray
    p_start: list[np.ndarray]
    p_end: list[np.ndarray]
    tau_start: list[float | None]
    tau_end: list[float | None]
    crossed: np.ndarray
    prefix_target: np.ndarray


def units(names: tuple[str, ...], arr: np.ndarray, unit: str, tpe: np.ndarray | None) -> Units:
    """Sizes -> example counts the sampler draws from (see the module docstring's table)."""
    warnings: list[str] = []
    notes: list[str] = []
    token_like = unit not in EXAMPLE_UNITS
    if token_like and tpe is not None:
        items = np.floor(arr / tpe)
        for n, s, k, c in zip(names, arr, items, tpe, strict=True):
            if k < 1:
                raise ConfigError(f"sizes.{n}", float(s), f"smaller than one example of {c:g} {unit}")
        per_draw, tokens_unit = tpe, unit
    else:
        for n, s in zip(names, arr, strict=True):
            if s != math.floor(s):
                what = "a count of examples" if not token_like else f"a count of {unit}"
                raise ConfigError(f"sizes.{n}", float(s), f"{what} must be an integer")
        items, per_draw = arr.copy(), np.ones(len(names))
        tokens_unit = "tokens" if tpe is not None else (unit if token_like else None)
        if token_like:
            warnings.append(
                f"sizes are in {unit} but tokens_per_example is missing: planning as if every "
                f"example were one {unit[:-1]}, so samples and epochs are per {unit[:-1]}"
            )
    for n, s, k in zip(names, arr, items, strict=True):
        if k >= MAX_INT:
            raise ConfigError(f"sizes.{n}", float(s), "too large: the sampler holds at most 2**62 examples")
    if tpe is not None and len(set(tpe.tolist())) > 1:
        notes.append(
            "tokens_per_example differs across domains: probabilities are per example draw "
            "(computed on example counts), so token shares differ from example shares"
        )
    return Units(items, per_draw, tokens_unit, warnings, notes)


def phase_bounds(sched: Schedule, ctx: Context, T: int, segments: int) -> tuple[list[int], bool, list[str]]:
    """Reported phase boundaries [0, ..., T]: the schedule's breakpoints, or ``segments`` equal
    stretches for continuous and exposure-driven schedules; plus a warning for boundaries at or
    beyond the end (the sampler already refused phases out of order)."""
    bp = cuts(sched, ctx)
    if bp is None:
        k = min(segments, T)
        return sorted({round(T * i / k) for i in range(k + 1)}), False, []
    warnings = []
    beyond = sorted({b for b in bp if b >= T})
    if beyond:
        warnings.append(
            f"schedule boundary at step {beyond[0]:,} is at or beyond total_steps={T:,}: "
            "that phase never starts"
        )
    return [0, *sorted({b for b in bp if 0 < b < T}), T], True, warnings


def expected(
    sched: Schedule,
    ctx: Context,
    B: int,
    bounds: list[int],
    piecewise: bool,
    stride: int,
    S: int,
    cap: np.ndarray | None,
) -> Expected:
    """Integrate E_i = Σ_t B·p_i(t) per phase on a grid (exact for piecewise-constant schedules),
    with p and τ at each phase's ends, min p·B, the step each domain crosses ``cap`` examples,
    and the expected counts before step ``S``."""
    grid = set(bounds) | {b - 1 for b in bounds[1:]} | {S}
    if not piecewise:
        grid |= set(range(0, bounds[-1], stride))
    P, K = len(bounds) - 1, len(ctx.names)
    out = Expected(
        samples=np.zeros((P, K)),
        min_per_batch=np.full((P, K), np.inf),
        p_start=[np.zeros(K)] * P,
        p_end=[np.zeros(K)] * P,
        tau_start=[None] * P,
        tau_end=[None] * P,
        crossed=np.full(K, -1, dtype=np.int64),
        prefix_target=np.zeros(K),
    )
    prefix = out.prefix_target
    for a, b, p, before in integrate(sched, ctx, B, sorted(grid)):
        k = bisect.bisect_right(bounds, a) - 1
        if a == bounds[k]:
            out.p_start[k], out.tau_start[k] = p, sched.tau(a, ctx)
        if b == bounds[k + 1]:
            out.p_end[k], out.tau_end[k] = p, sched.tau(a, ctx)
        if a == S:
            prefix = before
        drawn = (b - a) * B * p
        out.samples[k] += drawn
        out.min_per_batch[k] = np.minimum(out.min_per_batch[k], B * p)
        if cap is not None:
            for i in np.flatnonzero((out.crossed < 0) & (before + drawn > cap)):
                x = (cap[i] - before[i]) / (B * p[i])
                out.crossed[i] = a + math.floor(x + 1e-9 * max(1.0, x))  # first t with draws > cap
    if bounds[-1] == S:
        prefix = out.samples.sum(axis=0)
    return out._replace(prefix_target=prefix)


def integrate(
    schedule: Schedule, ctx: Context, batch_size: int, grid: Sequence[int]
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Blocks ``[a, b)`` of ``grid`` with p = p(a) held over the block and the expected counts
    drawn before ``a``; exposure-driven schedules see those expected counts as ``ctx.seen``."""
    cum = np.zeros(len(ctx.names))
    for a, b in pairwise(grid):
        if schedule.needs_counts:
            ctx.seen = cum
        p = schedule.probs(a, ctx)
        yield a, b, p, cum
        cum = cum + (b - a) * batch_size * p


def guardrail_warnings(
    names: tuple[str, ...],
    phases: Sequence[Any],
    B: int,
    composition: str,
    epochs: np.ndarray,
    max_epochs: float | None,
    crossed: np.ndarray,
    total: np.ndarray,
    schedule: Schedule,
    run_examples: int,
) -> list[str]:
    out = []
    for i, n in enumerate(names):
        if total[i] == 0:
            out.append(f"{n}: probability 0 for the whole run: never sampled")
            continue
        low = [ph for ph in phases if 0 < ph.min_per_batch[n] < 1]
        if low:
            pb = min(ph.min_per_batch[n] for ph in low)
            where = (
                "every phase"
                if len(low) == len(phases)
                else ", ".join(
                    f"phase {ph.index} (steps {ph.start:,}–{ph.end - 1:,}, {ph.label})" for ph in low
                )
            )
            out.append(rare_domain_warning(n, pb, B, composition, where))
        if max_epochs is not None and epochs[i] > max_epochs * (1 + 1e-9):
            out.append(
                f"{n}: {epochs[i]:.3g} epochs over the run exceed max_epochs={max_epochs:g} "
                f"(crossed at step ≈{int(crossed[i]):,})"
            )
    for d in _dists(schedule):
        if isinstance(d, UniMax) and not math.isclose(d.budget, run_examples, rel_tol=0.01):
            out.append(
                f"unimax budget={d.budget:,.0f} examples but the run draws {run_examples:,} "
                "(total_steps × batch_size): its epoch caps hold for the budget, not the run"
            )
    return out


def _dists(schedule: Schedule) -> list[Any]:
    if isinstance(schedule, Constant):
        return [schedule.dist]
    if isinstance(schedule, Stages):
        return list(schedule.dists)
    return []


def per_example(tpe: Any, names: tuple[str, ...]) -> np.ndarray | None:
    """tokens_per_example: None, one number for all domains, or a mapping with every domain."""
    field = "tokens_per_example"
    if tpe is None:
        return None
    if isinstance(tpe, Mapping):
        unknown = [k for k in tpe if k not in names]
        if unknown:
            raise ConfigError(
                f"{field}.{unknown[0]}", tpe[unknown[0]], f"unknown domain; known: {', '.join(names)}"
            )
        missing = [n for n in names if n not in tpe]
        if missing:
            raise ConfigError(field, dict(tpe), f"no value for domain {missing[0]!r}; give one per domain")
        values = [(f"{field}.{n}", tpe[n]) for n in names]
    else:
        values = [(field, tpe)] * len(names)
    return np.array([check_float(f, v, lo=0.0, lo_open=True) for f, v in values])


def tok(tpe: np.ndarray | None, k: int) -> np.ndarray:
    return np.ones(k) if tpe is None else tpe
