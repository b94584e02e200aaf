"""Checks you can run on your own schedules and samplers (shipped like seqio's ``test_utils``).

Each ``assert_*`` raises ``AssertionError`` with a message naming the step, rank or domain that
broke (plain raises, so they also work under ``python -O``); `check_schedule` does the same.

>>> import coolmix as cm
>>> sizes = tiny_mixture()
>>> check_schedule(cm.Cooldown(hot=5, cold=1, at=0.5), sizes, total_steps=20)
>>> make = lambda: cm.MixtureSampler(sizes, cm.Cooldown(), total_steps=12, batch_size=8, seed=3)
>>> assert_resumes_from_every_step(make, steps=12)
>>> assert_rank_slices_partition(make(), steps=12, world_sizes=(1, 2, 4, 8))
>>> assert_exact_counts(make(), steps=12)["c"]
67
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.distributions import Temperature, Uniform
from coolmix.errors import ConfigError
from coolmix.sampler import MixtureSampler
from coolmix.schedules import (
    Anneal,
    Constant,
    Context,
    Cooldown,
    Event,
    OrderMatters,
    Schedule,
    Stages,
    UniMaxDynamic,
    cuts,
    schedule_from_dict,
)
from coolmix.types import Sizes

__all__ = [
    "assert_exact_counts",
    "assert_rank_slices_partition",
    "assert_resumes_from_every_step",
    "check_schedule",
    "mc4_mixture",
    "mc4_schedules",
    "tiny_mixture",
    "tiny_schedules",
]


def tiny_mixture() -> dict[str, int]:
    """``{"a": 1, "b": 10, "c": 100}``: each size reveals its domain, and ``a`` (one item)
    is exhausted on its first draw, so every test crosses a pass boundary."""
    return {"a": 1, "b": 10, "c": 100}


def tiny_schedules() -> dict[str, Schedule]:
    """One schedule of each kind, for parametrising tests over ``tiny_mixture()``."""
    return {
        "proportional": Constant(Temperature(1.0)),
        "uniform": Constant(Uniform()),
        "cooldown": Cooldown(hot=5.0, cold=1.0, at=0.5),
        "increasing": Stages(starts=(0, 0.5), dists=(Temperature(1.0), Temperature(5.0))),
        "anneal": Anneal(start=10.0, end=1.0, shape="cosine"),
        "order_matters": OrderMatters(high=("c",), at=0.5, then=Temperature(5.0)),
        "unimax_dynamic": UniMaxDynamic(max_epochs=2.0),
    }


def mc4_mixture() -> dict[str, int]:
    """The paper's mC4 four (en, it, zh, sw in millions of documents, Li et al. 2025 Table 4)."""
    return {"en": 2733, "it": 162, "zh": 39, "sw": 1}


def mc4_schedules() -> dict[str, Schedule]:
    """Schedules over `mc4_mixture()` for seek tests: constant, switch, stages, anneal, Order Matters."""
    return {
        "constant": Constant(Temperature(5)),
        "cooldown": Cooldown(hot=5, cold=1, at=0.5),
        "stages": Stages(starts=(0, 0.3, 0.7), dists=(Temperature(1), Uniform(), Temperature(3))),
        "anneal": Anneal(start=10, end=1, shape="linear"),
        "order_matters": OrderMatters(high=("en", "it"), at=0.4),
    }


def _batch(sampler: MixtureSampler, step: int) -> tuple[list[int], list[int]]:
    d, i = sampler.global_batch(step)
    return d.tolist(), i.tolist()


def assert_resumes_from_every_step(make_sampler: Callable[[], MixtureSampler], steps: int) -> None:
    """Stopping after any k < ``steps`` batches, saving ``state_dict`` through JSON, and loading it
    into a fresh sampler reproduces the uninterrupted stream exactly (O(steps²) batches)."""
    reference = make_sampler()
    expected = [_batch(reference, t) for t in range(steps)]
    for k in range(steps + 1):
        first = make_sampler()
        for t in range(k):
            first.global_batch(t)
        state = json.loads(json.dumps(first.state_dict()))  # must survive a JSON checkpoint
        resumed = make_sampler()
        resumed.load_state_dict(state)
        if resumed.step != k:
            raise AssertionError(f"resumed at step {k}: the sampler reports step {resumed.step}")
        for t in range(k, steps):
            got = _batch(resumed, t)
            if got != expected[t]:
                raise AssertionError(f"resumed at step {k}: batch {t} differs: {got} != {expected[t]}")


def assert_rank_slices_partition(
    sampler: MixtureSampler, steps: int, world_sizes: Iterable[int] = (1, 2, 4)
) -> None:
    """For every step and world size w, the w rank slices concatenate to the global batch.

    A world size that does not divide the batch must be refused with `ConfigError`.
    """
    B = sampler.batch_size
    for t in range(steps):
        whole = _batch(sampler, t)
        for w in world_sizes:
            if B % w:
                try:
                    sampler.batch(t, 0, w)
                except ConfigError:
                    continue
                raise AssertionError(f"world_size={w} does not divide batch_size={B} but was accepted")
            parts = [sampler.batch(t, r, w) for r in range(w)]
            if any(len(d) != B // w for d, _ in parts):
                raise AssertionError(f"step {t}, world_size={w}: slices of unequal length")
            joined = (
                [int(x) for d, _ in parts for x in d],
                [int(x) for _, i in parts for x in i],
            )
            if joined != whole:
                raise AssertionError(f"step {t}, world_size={w}: rank slices do not partition the batch")


def assert_exact_counts(sampler: MixtureSampler, steps: int) -> dict[str, int]:
    """With ``composition="exact"``, every domain's cumulative count stays within 1 of
    Σ_t B·p_i(t) after every batch, and ends within 1 of ``sampler.cumulative_target``.

    ``sampler`` must be fresh (step 0); returns the realised counts per domain.
    """
    if sampler.composition != "exact":
        raise ConfigError("composition", sampler.composition, "exact counts hold only for 'exact'")
    if sampler.step != 0:
        raise ConfigError("sampler.step", sampler.step, "pass a fresh sampler (step 0)")
    names = sampler.names
    realised = np.zeros(len(names))
    target = np.zeros(len(names))
    for t in range(steps):
        p = sampler.probs_at(t)  # as of now: exposure-driven schedules see the realised counts
        target += sampler.batch_size * np.array([p[n] for n in names])
        d, _ = sampler.global_batch(t)
        realised += np.bincount(d, minlength=len(names))
        gap = np.abs(realised - target)
        if np.any(gap > 1 + 1e-6):
            i = int(np.argmax(gap))
            raise AssertionError(
                f"step {t}: {names[i]} drawn {int(realised[i])} times, target {target[i]:.3f} (off by > 1)"
            )
    planned = sampler.cumulative_target(steps)
    for i, n in enumerate(names):
        if abs(realised[i] - planned[n]) > 1 + 1e-6:
            raise AssertionError(f"{n}: drawn {int(realised[i])} times, cumulative_target {planned[n]:.3f}")
    return {n: int(c) for n, c in zip(names, realised, strict=True)}


def check_schedule(
    schedule: Schedule | float | Mapping[str, Any],
    sizes: Sizes,
    total_steps: int,
    events: Sequence[Event] = (),
) -> None:
    """At every step: probabilities finite, >= 0, summing to 1, one per domain; τ None or > 0;
    constant between the schedule's declared breakpoints; and the same after a
    ``to_dict``/``schedule_from_dict`` round trip (checked at the start, middle and end).

    Exposure-driven schedules are fed a fluid exposure of one expected item per step.
    """
    sched = schedule if isinstance(schedule, Schedule) else schedule_from_dict(schedule)
    ctx = Context.of(sizes, total_steps, events)
    sched.validate(ctx.names)
    again = schedule_from_dict(sched.to_dict())
    ctx2 = Context.of(sizes, total_steps, events)
    bp = cuts(sched, ctx)
    changes = set() if bp is None else set(bp)
    seen = np.zeros(len(ctx.names))
    previous = None
    for t in range(ctx.total_steps):
        if sched.needs_counts:
            ctx.seen = ctx2.seen = seen
        p = np.asarray(sched.probs(t, ctx), dtype=np.float64)
        if p.shape != (len(ctx.names),):
            raise AssertionError(f"step {t}: probabilities of shape {p.shape} for {len(ctx.names)} domains")
        if not np.all(np.isfinite(p)) or np.any(p < 0):
            bad = ctx.names[int(np.argmax(~np.isfinite(p) | (p < 0)))]
            raise AssertionError(f"step {t}: p[{bad}] is negative or not finite: {p.tolist()}")
        if not math.isclose(float(p.sum()), 1.0, rel_tol=0, abs_tol=1e-9):
            raise AssertionError(f"step {t}: probabilities sum to {p.sum()!r}")
        tau = sched.tau(t, ctx)
        if tau is not None and (math.isnan(tau) or tau <= 0):
            raise AssertionError(f"step {t}: tau = {tau!r}")
        steady = bp is not None and t not in changes
        if steady and previous is not None and not np.allclose(p, previous, rtol=0, atol=1e-12):
            raise AssertionError(f"step {t}: p changed between breakpoints {sorted(changes)}")
        if t in (0, ctx.total_steps // 2, ctx.total_steps - 1):
            q = np.asarray(again.probs(t, ctx2))
            if not np.allclose(p, q, rtol=0, atol=1e-12):
                raise AssertionError(f"step {t}: schedule differs after to_dict/schedule_from_dict")
        previous = p
        seen = seen + p
