"""Schedules are pure functions of the step: Cooldown, stages, annealing, OrderMatters, UniMax, Adaptive."""

import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import coolmix as cm
from coolmix.schedules import Context

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


def test_dense_is_monotone_and_ends_cold():
    s = cm.Dense(hot=5, cold=1, phases=5, end=0.5)
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


def test_unimax_dynamic_moves_off_uniform_as_the_sampler_draws():
    """Driven by the sampler's own counts: c (10 items) is dropped once drawn 2 × 10 times, b at 200."""
    sizes = {"a": 1000, "b": 100, "c": 10}
    sampler = cm.MixtureSampler(sizes, cm.UniMaxDynamic(max_epochs=2), total_steps=100, batch_size=6, seed=0)
    seen_probs = []
    for t in range(100):
        seen_probs.append(tuple(sampler.probs_array(t).tolist()))
        sampler.global_batch(t)
    assert seen_probs[0] == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert (0.5, 0.5, 0.0) in seen_probs and (1.0, 0.0, 0.0) in seen_probs
    first_half, first_one = seen_probs.index((0.5, 0.5, 0.0)), seen_probs.index((1.0, 0.0, 0.0))
    assert 0 < first_half < first_one
    cur = sampler.cursors
    assert cur["c"] == 20 and cur["b"] == 200  # exactly the caps (exact composition, 2 epochs each)
    assert sum(cur.values()) == 600


def test_adaptive_moves_to_cold_probabilities_at_the_recorded_event():
    sizes = {"a": 1000, "b": 100, "c": 10}
    sched = cm.Adaptive(hot=5, cold=cm.Cooldown(hot=2, cold=1, at=0.8), on="overfit")
    sampler = cm.MixtureSampler(sizes, sched, total_steps=100, batch_size=8, seed=0)
    hot, two, one = (cm.temperature_probs(sizes, tau=t) for t in (5, 2, 1))
    assert sampler.probs_at(60) == pytest.approx(hot)  # no event yet: hot everywhere, even after 0.8
    for t in range(30):
        sampler.global_batch(t)
    sampler.record_event("overfit")  # takes effect at step 30
    assert sampler.probs_at(29) == pytest.approx(hot)
    assert sampler.probs_at(30) == pytest.approx(two) and sampler.probs_at(79) == pytest.approx(two)
    assert sampler.probs_at(80) == pytest.approx(one)  # the cold piece sees the global step
    assert sampler.tau_at(30) == 2.0


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
    cm.Dense(),
    cm.Dense(hot=8, cold=2, phases=3, end=0.6),
    cm.Anneal(start=10, end=1, shape="exponential", begin=0.1, finish=0.9),
    cm.OrderMatters(high=("a", "b"), at=0.3),
    cm.UniMaxDynamic(max_epochs=3),
    cm.Adaptive(),
    cm.Adaptive(hot=cm.Anneal(start=3, end=2), cold=cm.UniMaxDynamic(max_epochs=1), on="x"),
    cm.Constant(cm.UniMax(budget=500, max_epochs=2)),
    cm.Constant(cm.UniMax(budget=500, max_epochs=math.inf)),
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
        (lambda: cm.Cooldown(at=0), "at"),  # an integer step 0: no hot phase (was stages.starts[1])
        (lambda: cm.Cooldown(hot="hot"), "hot"),
        (lambda: cm.Stages(starts=(0, 0.6, 0.4), dists=(1, 2, 3)), "starts[2]"),
        (lambda: cm.Stages(starts=(0.1,), dists=(1,)), "starts[0]"),
        (lambda: cm.Stages(starts=(0, 0.5), dists=(1,)), "starts"),
        (lambda: cm.Stages(starts=(0, 0.5), dists=(1, 0)), "dists[1]"),
        (lambda: cm.Stages(starts=(0, 0.5), dists=(1, {"kind": "temperature", "tau": -1})), "dists[1].tau"),
        (lambda: cm.Anneal(shape="zigzag"), "shape"),
        (lambda: cm.Anneal(begin=0.5, finish=0.5), "finish"),
        (lambda: cm.OrderMatters(high=()), "high"),
        (lambda: cm.UniMaxDynamic(max_epochs=0), "max_epochs"),
        (lambda: cm.Dense(phases=1), "phases"),
        (lambda: cm.schedule_from_dict({"kind": "warp"}), "schedule.kind"),
        (lambda: cm.Constant(cm.Explicit({"zz": 1})).probs_at(0, SIZES, 10), "dist.weights"),
        (
            lambda: cm.Adaptive(cold=cm.Constant(cm.Explicit({"zz": 1}))).probs_at(0, SIZES, 10),
            "cold.dist.weights",
        ),
        (lambda: cm.Adaptive(hot={"kind": "cooldown", "at": 2.0}), "hot.at"),
        (lambda: cm.Adaptive(hot=-1), "hot"),
        (lambda: cm.Adaptive(hot={"kind": "cooldown", "hott": 2.0}), "hot.hott"),
        (lambda: cm.schedule_from_dict({"kind": "cooldown", "at": 0}), "at"),
        (lambda: cm.schedule_from_dict({"kind": 3}), "schedule.kind"),
        (lambda: cm.schedule_from_dict({"kind": "constant", "dist": {"kind": "nope"}}), "dist.kind"),
        (lambda: cm.Anneal(start=math.inf), "start"),
        (lambda: cm.Dense(end=1.0), "end"),
        (lambda: cm.Cooldown().probs_at(-1, SIZES, 10), "step"),
        (lambda: cm.Cooldown().probs_at(0, SIZES, 0), "total_steps"),
    ],
)
def test_bad_schedules_raise_config_error(make, field):
    with pytest.raises(cm.ConfigError) as e:
        make()
    assert e.value.field == field, str(e.value)
    assert "\n" not in str(e.value)


# -- schedules own themselves: registry, fields, check, conflicting keys ---------------------------


@pytest.mark.parametrize("kind", sorted(cm.SCHEDULES))
def test_every_kind_is_registered_and_serialises_its_own_fields(kind):
    cls = cm.SCHEDULES[kind]
    assert cls.kind == kind
    d = cls().to_dict() if kind != "order_matters" else cls(high=("a",)).to_dict()
    assert d["kind"] == kind and set(d) - {"kind"} == set(cls.fields())
    again = cm.schedule_from_dict(d)
    assert type(again) is cls and again.to_dict() == d


def test_swapping_kind_with_the_old_kinds_keys_is_one_line_naming_them():
    # what `--set schedule.kind=unimax_dynamic` makes of a Cooldown table
    d = {"kind": "unimax_dynamic", "hot": 5, "cold": 1, "at": 0.5, "max_epochs": 2}
    with pytest.raises(cm.ConfigError) as e:
        cm.schedule_from_dict(d, "schedule")
    msg = str(e.value)
    assert e.value.field == "schedule.hot" and "\n" not in msg
    assert "hot, cold, at" in msg and "'cooldown'" in msg and "max_epochs, after" in msg
    # the public field list lets a config layer drop the old kind's keys instead
    kept = {k: v for k, v in d.items() if k == "kind" or k in cm.UniMaxDynamic.fields()}
    assert cm.schedule_from_dict(kept) == cm.UniMaxDynamic(max_epochs=2)


def test_a_plain_unknown_key_is_named_too():
    msg = r"^schedule\.hott=5: 1 key\(s\) hott not taken by kind='cooldown'"
    with pytest.raises(cm.ConfigError, match=msg):
        cm.schedule_from_dict({"kind": "cooldown", "hott": 5})


@pytest.mark.parametrize(
    ("sched", "total", "field"),
    [
        (cm.Cooldown(at=0.001), 100, "at"),  # resolves to step 0: no hot phase at 100 steps
        (cm.Stages(starts=(0, 80, 0.5), dists=(1, 2, 3)), 100, "starts[2]"),
        (cm.Dense(phases=10, end=0.5), 12, "phases"),
        (cm.Adaptive(hot=cm.Cooldown(at=0.01), cold=1), 50, "hot.at"),
    ],
)
def test_check_names_the_knob_that_collides_at_this_run_length(sched, total, field):
    sched.check(10_000)  # fine on a long run
    with pytest.raises(cm.ConfigError) as e:
        sched.check(total)
    assert e.value.field == field
    with pytest.raises(cm.ConfigError) as e:
        cm.MixtureSampler(SIZES, sched, total_steps=total, batch_size=2)
    assert e.value.field == field


@pytest.mark.parametrize("sched", ALL, ids=lambda s: s.kind)
def test_every_schedule_has_check(sched):
    sched.check(1000)  # defined on every kind (the base checks nothing), never raises for a fine run


def test_context_memo_computes_once_per_key_and_is_bounded(monkeypatch):
    ctx = Context(("a",), np.ones(1), 10)
    calls = []
    for _ in range(3):
        ctx.memo("k", lambda: calls.append(1) or np.ones(1))
    assert len(calls) == 1
    monkeypatch.setattr(Context, "MEMO_LIMIT", 2)
    small = Context(("a",), np.ones(1), 10)
    for i in range(5):
        small.memo(i, lambda: np.ones(1))
    calls.clear()
    small.memo(4, lambda: calls.append(1) or np.ones(1))  # beyond the bound: recomputed, not stored
    assert calls == [1]


def test_order_matters_uses_the_public_memo():
    ctx = Context(("a", "b"), np.array([3.0, 1.0]), 10)
    sched = cm.OrderMatters(high=("b",), at=0.5)
    assert sched.probs(0, ctx).tolist() == [0.0, 1.0]
    key = ("order_matters", ("b",))
    assert ctx.memo(key, lambda: np.zeros(2)).tolist() == [0.0, 1.0]  # the same memo entry


@pytest.mark.parametrize(
    "sched",
    [
        cm.Cooldown(hot=1e-320, cold=5e-324, at=0.5),
        cm.Cooldown(hot=1e308, cold=1e-308),
        cm.Anneal(start=1e-320, end=1e308, shape="exponential"),
        cm.Anneal(start=1e308, end=5e-324, shape="cosine"),
        cm.Anneal(start=5e-324, end=1e308, shape="linear"),
        cm.Dense(hot=1e300, cold=1e-300, phases=4),
        cm.Constant(cm.Temperature(1e-310)),
    ],
    ids=repr,
)
@given(step=st.integers(0, 999))
def test_extreme_temperatures_give_finite_distributions(sched, step):
    p = np.array(list(sched.probs_at(step, {"a": 1e308, "b": 1e-300, "c": 5e-324, "d": 1.0}, 1000).values()))
    assert np.isfinite(p).all() and (p >= 0).all() and math.isclose(p.sum(), 1.0)
    tau = sched.tau_at(step, 1000)
    assert tau is None or tau > 0


def test_vanishing_temperature_is_one_hot_on_the_largest_domains():
    sizes = {"a": 7, "b": 7, "c": 1}
    assert cm.Cooldown(hot=1e-320).probs_at(0, sizes, 10) == {"a": 0.5, "b": 0.5, "c": 0.0}


def test_constant_takes_a_bare_tau_or_alpha():
    assert cm.schedule_from_dict({"kind": "constant", "tau": 5}) == cm.Constant(cm.Temperature(5))
    assert cm.schedule_from_dict({"kind": "constant", "alpha": 0.5}) == cm.Constant(cm.Temperature(2))
    assert cm.schedule_from_dict({"kind": "constant", "tau": "inf"}).tau_at(0, 10) == math.inf
