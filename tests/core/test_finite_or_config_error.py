"""Every public numeric function returns finite, normalised values or raises one ConfigError.

Inputs span the whole float64 range: subnormals (5e-324), 1e-320 … 1e308, and temperatures
at both ends (τ → 0 is the one-hot limit, τ = ∞ uniform). Before the log-space rewrite τ < 1e-308
gave NaN from temperature_probs, scalarization_weights, variance_inflation and Cooldown, and
sizes near 1e308 gave all-zero proportional probabilities.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import coolmix as cm

EXTREME = st.sampled_from(
    [5e-324, 1e-320, 2.2e-308, 1e-300, 1e-12, 0.5, 1.0, 3.0, 1e12, 1e300, 1e308, 1.7e308]
)
positive = EXTREME | st.floats(min_value=5e-324, max_value=1.7e308, allow_nan=False, allow_infinity=False)
sizes_st = st.lists(positive, min_size=1, max_size=5).map(lambda v: {f"d{i}": x for i, x in enumerate(v)})
tau_st = positive | st.just(math.inf)
anything = positive | st.sampled_from([0.0, -1.0, -1e308, math.nan, math.inf, -math.inf])


def assert_probs(p, sizes):
    v = np.array(list(p.values()))
    assert list(p) == list(sizes)
    assert np.isfinite(v).all() and (v >= 0).all()
    assert math.isclose(v.sum(), 1.0, rel_tol=1e-12)


def finite_or_config_error(f):
    """f() or None when it raised a one-line ConfigError; anything else fails the test."""
    try:
        return f()
    except cm.ConfigError as e:
        assert "\n" not in str(e) and e.field
        return None


@given(sizes_st, tau_st)
def test_temperature_probs_normalised_for_any_tau(sizes, tau):
    assert_probs(cm.temperature_probs(sizes, tau=tau), sizes)
    assert_probs(cm.temperature_probs(sizes, tau=tau, convention="neox"), sizes)
    if math.isfinite(tau):
        assert_probs(cm.temperature_probs(sizes, alpha=1 / tau if tau > 1e-300 else 1e300), sizes)


@given(sizes_st)
def test_proportional_and_explicit_normalised_for_any_sizes(sizes):
    assert_probs(cm.proportional_probs(sizes), sizes)
    assert_probs(cm.explicit_probs(sizes), sizes)
    assert_probs(cm.uniform_probs(sizes), sizes)


def test_huge_sizes_are_not_all_zero():
    assert cm.proportional_probs({"a": 1.7e308, "b": 1.7e308}) == {"a": 0.5, "b": 0.5}
    assert cm.explicit_probs({"a": 1e308, "b": 1e308, "c": 0}) == {"a": 0.5, "b": 0.5, "c": 0.0}


def test_tiny_tau_is_the_one_hot_limit_not_nan():
    mc4 = {"en": 2733, "it": 162, "zh": 39, "sw": 1}
    assert cm.temperature_probs(mc4, tau=1e-320) == {"en": 1.0, "it": 0.0, "zh": 0.0, "sw": 0.0}
    assert cm.temperature_probs(mc4, alpha=1e308) == {"en": 1.0, "it": 0.0, "zh": 0.0, "sw": 0.0}
    assert cm.Cooldown(hot=1e-320, cold=1).probs_at(0, mc4, 10)["en"] == 1.0
    # p_τ = p_1 = one-hot, so F = 1 / p_1(en) and the weights on the drawn domain are 1
    assert cm.variance_inflation(mc4, 1e-320) == pytest.approx(sum(mc4.values()) / 2733)
    assert cm.scalarization_weights(mc4, 1e-320, 1e-320) == {"en": 1.0, "it": 0.0, "zh": 0.0, "sw": 0.0}


@given(sizes_st, tau_st, tau_st)
def test_weights_and_inflation_finite_or_config_error(sizes, tau, sample_tau):
    w = finite_or_config_error(lambda: cm.scalarization_weights(sizes, tau, sample_tau))
    if w is not None:
        v = np.array(list(w.values()))
        assert np.isfinite(v).all() and (v >= 0).all()
    lw = finite_or_config_error(lambda: cm.loss_weights(sizes, target=cm.Temperature(tau), sample=sample_tau))
    if lw is not None:
        assert np.isfinite(list(lw.values())).all()
    f = finite_or_config_error(lambda: cm.variance_inflation(sizes, tau))
    if f is not None:
        assert math.isfinite(f) and f >= 1 - 1e-9


@given(sizes_st, tau_st, st.lists(anything, min_size=5, max_size=5))
def test_theorem2_gap_finite_or_config_error(sizes, tau, moments):
    s = dict(zip(sizes, moments, strict=False))  # moments is 5 long: take the first len(sizes)
    gap = finite_or_config_error(lambda: cm.theorem2_gap(sizes, tau, s))
    if gap is not None:
        assert math.isfinite(gap)
        assert all(math.isfinite(v) and v >= 0 for v in s.values())  # bad moments never give a number


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, "1"])
def test_theorem2_gap_rejects_meaningless_moments(bad):
    with pytest.raises(cm.ConfigError) as e:
        cm.theorem2_gap({"H": 9, "L": 1}, math.inf, {"H": bad, "L": 1.0})
    assert e.value.field == "second_moments.H"


@given(sizes_st, anything, anything)
def test_unimax_finite_or_config_error(sizes, budget, cap):
    a = finite_or_config_error(lambda: cm.unimax(sizes, budget=budget, max_epochs=cap))
    if a is not None:
        assert_probs(a.probs, sizes)
        assert np.isfinite(list(a.budgets.values())).all() and np.isfinite(list(a.epochs.values())).all()
        assert all(e <= cap * (1 + 1e-9) for e in a.epochs.values())


@settings(max_examples=30)
@given(sizes_st, anything, anything, st.integers(0, 99))
def test_schedules_with_extreme_knobs_finite_or_config_error(sizes, hot, cold, step):
    for make in (
        lambda: cm.Cooldown(hot=hot, cold=cold, at=0.5),
        lambda: cm.Anneal(start=hot, end=cold, shape="exponential"),
        lambda: cm.Anneal(start=hot, end=cold, shape="cosine"),
        lambda: cm.Constant(cm.UniMax(budget=hot, max_epochs=cold)),
    ):
        p = finite_or_config_error(lambda make=make: make().probs_at(step, sizes, 100))
        if p is not None:
            assert_probs(p, sizes)
