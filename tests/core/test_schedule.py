"""Schedules are pure functions of the step: Cooldown, stages, annealing, OrderMatters, UniMax, Adaptive."""

import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import coolmix as cm
from coolmix.schedule import Context

SIZES = {"a": 1000, "b": 100, "c": 10}  # sizes reveal the domain


def test_cooldown_switches_at_the_fraction():
    sched = cm.Cooldown(hot=5, cold=1, at=0.5)
    assert [sched.tau_at(s, 100) for s in (0, 49, 50, 99)] == [5.0, 5.0, 1.0, 1.0]
    assert sched.probs_at(10, SIZES, 100) == pytest.approx(cm.temperature_probs(SIZES, tau=5))
    assert sched.probs_at(60, SIZES, 100) == pytest.approx(cm.proportional_probs(SIZES))


def test_cooldown_at_absolute_step():
    assert cm.Cooldown(at=30).tau_at(29, 1000) == 5.0 and cm.Cooldown(at=30).tau_at(30, 1000) == 1.0


def test_increasing_ablation_is_stages():
    s = cm.Stages(starts=(0, 0.5), dists=(cm.Temperature(1), cm.Temperature(5)))
    assert s.tau_at(0, 10) == 1.0 and s.tau_at(5, 10) == 5.0


def test_dense_decreasing_is_monotone_and_ends_cold():
    s = cm.dense_decreasing(hot=5, cold=1, phases=5, end=0.5)
    taus = [s.tau_at(t, 1000) for t in range(1000)]
    assert taus[0] == 5.0 and taus[-1] == 1.0 and taus[500] == 1.0
    assert all(b <= a for a, b in pairwise(taus))
    assert len(set(taus)) == 5


@pytest.mark.parametrize("shape", ["linear", "cosine", "exponential"])
def test_anneal_endpoints_and_monotone(shape):
    s = cm.Anneal(start=5, end=1, shape=shape)
    taus = [s.tau_at(t, 100) for t in range(101)]
    assert taus[0] == pytest.approx(5) and taus[100] == pytest.approx(1)
    assert all(b <= a + 1e-12 for a, b in pairwise(taus))
    assert s.tau_at(50, 100) == pytest.approx(
        {"linear": 3.0, "cosine": 3.0, "exponential": math.sqrt(5)}[shape]
    )


def test_order_matters_excludes_low_resource_then_mixes():
    s = cm.OrderMatters(high=("a",), at=0.5, then=cm.Temperature(5))
    assert s.probs_at(0, SIZES, 10) == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert s.probs_at(5, SIZES, 10) == pytest.approx(cm.temperature_probs(SIZES, tau=5))
    with pytest.raises(cm.ConfigError) as e:
        s.probs_at(0, {"x": 1}, 10)
    assert e.value.field == "high"


def test_unimax_dynamic_drops_exhausted_domains():
    s = cm.UniMaxDynamic(max_epochs=2)
    names, n = ("a", "b", "c"), np.array([1000.0, 100.0, 10.0])
    ctx = Context(names, n, 100, seen=np.array([0, 0, 19]))
    assert s.probs(0, ctx).tolist() == pytest.approx([1 / 3] * 3)
    ctx = Context(names, n, 100, seen=np.array([0, 200, 20]))
    assert s.probs(0, ctx).tolist() == [1.0, 0.0, 0.0]
    ctx = Context(names, n, 100, seen=np.array([2000, 200, 20]))
    assert s.probs(0, ctx).tolist() == pytest.approx([0.9009, 0.0901, 0.0090], abs=1e-4)  # falls back to τ=1


def test_adaptive_switches_on_the_recorded_event_only():
    s = cm.Adaptive(hot=cm.Constant(cm.Temperature(5)), cold=cm.Constant(cm.Temperature(1)), on="cooldown")
    assert s.tau_at(80, 100) == 5.0
    ev = [cm.Event(30, "cooldown")]
    assert s.tau_at(29, 100, ev) == 5.0 and s.tau_at(30, 100, ev) == 1.0
    assert s.tau_at(50, 100, [cm.Event(10, "other")]) == 5.0


ALL = [
    cm.Constant(cm.Temperature(3)),
    cm.Cooldown(),
    cm.Cooldown(hot=math.inf, cold=2, at=100),
    cm.Stages(starts=(0, 0.25, 0.75), dists=(cm.Temperature(1), cm.Uniform(), cm.Explicit({"a": 1, "c": 1}))),
    cm.dense_decreasing(),
    cm.Anneal(start=10, end=1, shape="exponential", begin=0.1, finish=0.9),
    cm.OrderMatters(high=("a", "b"), at=0.3),
    cm.UniMaxDynamic(max_epochs=3),
    cm.Adaptive(),
    cm.Constant(cm.UniMax(budget=500, max_epochs=2)),
]


@pytest.mark.parametrize("sched", ALL, ids=lambda s: s.kind)
def test_schedules_round_trip_through_config(sched):
    again = cm.schedule_from_dict(sched.to_dict())
    assert again.to_dict() == sched.to_dict()
    for t in (0, 10, 50, 99):
        assert again.probs_at(t, SIZES, 100) == sched.probs_at(t, SIZES, 100)


@pytest.mark.parametrize("sched", ALL, ids=lambda s: s.kind)
@given(step=st.integers(0, 10_000))
def test_schedules_give_distributions_at_every_step(sched, step):
    p = np.array(list(sched.probs_at(step, SIZES, 10_000).values()))
    assert np.all(p >= 0) and np.isfinite(p).all() and math.isclose(p.sum(), 1.0)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: cm.Cooldown(hot=0), "hot"),
        (lambda: cm.Cooldown(cold=-1), "cold"),
        (lambda: cm.Cooldown(at=1.0), "at"),
        (lambda: cm.Cooldown(at=0.0), "at"),
        (lambda: cm.Cooldown(at=-3), "at"),
        (lambda: cm.Stages(starts=(0, 0.6, 0.4), dists=(1, 2, 3)), "stages.starts[2]"),
        (lambda: cm.Stages(starts=(0.1,), dists=(1,)), "stages.starts[0]"),
        (lambda: cm.Stages(starts=(0, 0.5), dists=(1,)), "stages"),
        (lambda: cm.Anneal(shape="zigzag"), "shape"),
        (lambda: cm.Anneal(begin=0.5, finish=0.5), "finish"),
        (lambda: cm.OrderMatters(high=()), "high"),
        (lambda: cm.UniMaxDynamic(max_epochs=0), "max_epochs"),
        (lambda: cm.dense_decreasing(phases=1), "phases"),
        (lambda: cm.schedule_from_dict({"kind": "warp"}), "schedule.kind"),
        (lambda: cm.Constant(cm.Explicit({"zz": 1})).probs_at(0, SIZES, 10), "weights"),
        (lambda: cm.Cooldown().probs_at(0, SIZES, 0), "total_steps"),
    ],
)
def test_bad_schedules_raise_config_error(make, field):
    with pytest.raises(cm.ConfigError) as e:
        make()
    assert e.value.field == field
