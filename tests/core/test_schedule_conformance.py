"""Every registered schedule kind must be honest about its shape: the day a kind is registered, it is
checked here (an example config per kind is required).

- its breakpoints: p(t) constant between the steps it declares (`testing.check_schedule`);
- seek equals sequential: a fresh sampler's cold seek to step t gives the counts of one that
  walked 0..t−1, in the exact and seekable compositions;
- the planner equals the sampler: `make_plan`'s whole-run expected examples are the sampler's
  counts at the end, within the exact composition's one-item bound (per phase);
- serialisation round-trips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import coolmix as cm
from coolmix.errors import ConfigError
from coolmix.plan import make_plan
from coolmix.schedules import SCHEDULES, Context, Schedule, schedule_from_dict
from coolmix.schedules._base import register
from coolmix.testing import check_schedule

SIZES = {"en": 4000, "it": 900, "sw": 60}
T, B = 48, 16

EXAMPLES: dict[str, dict] = {
    "constant": {"kind": "constant", "tau": 5},
    "stages": {"kind": "stages", "starts": [0, 0.3, 0.7], "dists": [1.0, 100.0, 3.0]},
    "cooldown": {"kind": "cooldown", "hot": 5, "cold": 1, "at": 0.5},
    "dense": {"kind": "dense", "hot": 5, "cold": 1, "phases": 4},
    "anneal": {"kind": "anneal", "start": 10, "end": 1, "shape": "linear"},
    "order_matters": {"kind": "order_matters", "high": ["en", "it"], "at": 0.4},
    "unimax_dynamic": {"kind": "unimax_dynamic", "max_epochs": 2, "after": 1.0},
    "adaptive": {"kind": "adaptive", "hot": 5, "cold": 1, "on": "cooldown"},
}


def conformance(schedule: Schedule) -> None:
    """The checks of the module docstring; AssertionError names the one that fails."""
    check_schedule(schedule, SIZES, T)
    again = schedule_from_dict(json.loads(json.dumps(schedule.to_dict())))
    assert again.to_dict() == schedule.to_dict(), "serialisation does not round-trip"
    for composition in ("exact", "seekable"):
        try:
            walked = cm.MixtureSampler(SIZES, schedule, T, B, seed=3, composition=composition)
        except ConfigError:
            continue  # a composition this kind does not support says so when built
        for t in range(T):
            walked.global_batch(t)
        for t in (1, T // 3, T // 2 + 1, T - 1, T):
            cold = cm.MixtureSampler(SIZES, schedule, T, B, seed=3, composition=composition)
            got, want = cold.cumulative_counts(t), walked.cumulative_counts(t)
            assert got == want, f"{composition}: cold seek to step {t} gives {got}, stepping gives {want}"
    if not schedule.needs_counts:  # an exposure-driven plan assumes a fluid exposure, the sampler draws
        plan = make_plan(SIZES, schedule, T, B, simulate=False)
        counts = cm.MixtureSampler(SIZES, schedule, T, B, seed=3).cumulative_counts(T)
        phases = max(len(plan.phases), 1)
        for name in SIZES:
            assert abs(plan.samples[name] - counts[name]) <= phases + 1, (
                f"plan expects {plan.samples[name]:.1f} {name} examples, the sampler draws {counts[name]}"
            )


def test_every_registered_kind_has_an_example():
    assert set(EXAMPLES) == set(SCHEDULES), "add an example for each new schedule kind"


@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_registered_kind_conforms(kind):
    conformance(schedule_from_dict(EXAMPLES[kind]))


# -- the conformance test catches a kind that lies about its shape --------------------------------


@dataclass(frozen=True)
class _Ramp(Schedule):
    """A continuous kind written without a `breakpoints` override (the trial kind of issue 20)."""

    kind: ClassVar[str] = "_test_ramp"

    def probs(self, step: int, ctx: Context) -> np.ndarray:
        tau = 1.0 + 9.0 * step / max(ctx.total_steps - 1, 1)
        return ctx.dist(cm.Temperature(tau))


@dataclass(frozen=True)
class _LyingRamp(_Ramp):
    """The same ramp claiming to be constant."""

    kind: ClassVar[str] = "_test_lying_ramp"

    def breakpoints(self, ctx: Context) -> tuple[int, ...] | None:
        return ()


@pytest.fixture
def registered():
    before = dict(SCHEDULES)
    register(_Ramp)
    register(_LyingRamp)
    yield
    SCHEDULES.clear()
    SCHEDULES.update(before)


def test_a_kind_without_a_breakpoints_override_is_treated_as_continuous(registered):
    """The default says "unknown", so the engine never assumes constant: seeks and plans stay right."""
    assert _Ramp().breakpoints(Context.of(SIZES, T)) is None
    conformance(_Ramp())


def test_a_kind_that_claims_constant_but_changes_fails_conformance(registered):
    with pytest.raises(AssertionError):
        conformance(_LyingRamp())
