"""Distributions: the paper's reference numbers, invariants, UniMax, conventions, bad input."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import coolmix as cm
from coolmix.distributions import as_distribution

MC4 = {"en": 2733, "it": 162, "zh": 39, "sw": 1}  # billions of tokens (paper Table 2)
OPUS = {
    "es": 1e6,
    "fa": 1e6,
    "ga": 294e3,
    "gl": 519e3,
    "ha": 102e3,
    "hi": 538e3,
    "it": 1e6,
    "kk": 83e3,
    "ug": 76e3,
}

sizes_st = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=3),
    st.floats(1e-3, 1e12, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=12,
)
tau_st = st.floats(0.05, 1e3) | st.just(math.inf)


def rounded(d, k=3):
    return [round(v, k) for v in d.values()]


def test_mc4_reference_probabilities():
    # paper.md §1.5: τ = 1, 3.33, 5, 100
    assert rounded(cm.temperature_probs(MC4, tau=1)) == [0.931, 0.055, 0.013, 0.0]
    assert rounded(cm.temperature_probs(MC4, tau=3.33)) == [0.556, 0.238, 0.155, 0.052]
    assert rounded(cm.temperature_probs(MC4, tau=5)) == [0.454, 0.258, 0.194, 0.093]
    assert rounded(cm.temperature_probs(MC4, tau=100)) == [0.259, 0.252, 0.249, 0.24]


def test_opus_reference_probabilities():
    # paper.md §1.5 quotes these to 3 decimals (es .136 is .1355 rounded half up)
    p = cm.temperature_probs(OPUS, tau=5)
    ref = {"es": 0.136, "gl": 0.119, "hi": 0.120, "ga": 0.106, "ha": 0.086, "kk": 0.082, "ug": 0.081}
    assert {k: p[k] for k in ref} == pytest.approx(ref, abs=6e-4)
    assert round(cm.variance_inflation(OPUS, 5), 2) == 1.79


def test_alpha_is_inverse_tau():
    assert cm.temperature_probs(MC4, alpha=0.3) == cm.temperature_probs(MC4, tau=1 / 0.3)
    assert cm.temperature_probs(MC4, alpha=0) == cm.uniform_probs(MC4)


def test_tau_extremes():
    assert cm.temperature_probs(MC4, tau=1) == pytest.approx(cm.proportional_probs(MC4))
    assert cm.temperature_probs(MC4, tau=math.inf) == cm.uniform_probs(MC4)


@given(sizes_st, tau_st)
def test_probs_are_a_distribution_and_order_preserving(sizes, tau):
    p = cm.temperature_probs(sizes, tau=tau)
    assert list(p) == list(sizes)
    v = np.array(list(p.values()))
    assert np.all(v >= 0) and math.isclose(v.sum(), 1.0, rel_tol=1e-12)
    n = np.array(list(sizes.values()))
    # larger domains never get smaller probability (τ > 0)
    order = np.argsort(n, kind="stable")
    assert np.all(np.diff(v[order]) >= -1e-12)


def test_neox_convention_has_extra_factor():
    q = cm.proportional_probs({"a": 3, "b": 1})
    p = cm.temperature_probs({"a": 3, "b": 1}, alpha=1.0, convention="neox")
    raw = {k: q[k] * (1 - q[k]) for k in q}
    z = sum(raw.values())
    assert p == pytest.approx({k: v / z for k, v in raw.items()})


def test_explicit_normalises_and_allows_zero():
    assert cm.explicit_probs({"a": 1, "b": 3, "c": 0}) == {"a": 0.25, "b": 0.75, "c": 0.0}


def test_unimax_allocation_matches_algorithm():
    # budget 60 over sizes 5, 10, 100 with cap 2 epochs: smallest capped at 10, then 10 -> cap 20
    # would exceed 25 share? share = (60-10)/2 = 25 > 20 -> 20; largest gets the remaining 30.
    a = cm.unimax({"big": 100, "mid": 10, "small": 5}, budget=60, max_epochs=2)
    assert a.budgets == {"big": 30.0, "mid": 20.0, "small": 10.0}
    assert a.epochs == {"big": 0.3, "mid": 2.0, "small": 2.0}
    assert a.probs == pytest.approx({"big": 0.5, "mid": 1 / 3, "small": 1 / 6})


def test_unimax_uniform_when_caps_do_not_bind():
    a = cm.unimax({"a": 100, "b": 100, "c": 100}, budget=30, max_epochs=1)
    assert a.probs == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_unimax_all_capped_allocates_less_than_budget():
    a = cm.unimax({"a": 1, "b": 2}, budget=100, max_epochs=3)
    assert sum(a.budgets.values()) == 9 and a.epochs == {"a": 3.0, "b": 3.0}


@given(sizes_st, st.floats(1, 1e9), st.floats(0.1, 100))
def test_unimax_never_exceeds_cap_or_budget(sizes, budget, cap):
    a = cm.unimax(sizes, budget=budget, max_epochs=cap)
    assert all(e <= cap * (1 + 1e-9) for e in a.epochs.values())
    assert sum(a.budgets.values()) <= budget * (1 + 1e-9)
    assert math.isclose(sum(a.probs.values()), 1.0)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: cm.temperature_probs({}, tau=1), "sizes"),
        (lambda: cm.temperature_probs({"a": 0}, tau=1), "sizes.a"),
        (lambda: cm.temperature_probs({"a": -1}, tau=1), "sizes.a"),
        (lambda: cm.temperature_probs({"a": float("nan")}, tau=1), "sizes.a"),
        (lambda: cm.temperature_probs({"a": float("inf")}, tau=1), "sizes.a"),
        (lambda: cm.temperature_probs({"a": 1}, tau=0), "tau"),
        (lambda: cm.temperature_probs({"a": 1}, tau=-2), "tau"),
        (lambda: cm.temperature_probs({"a": 1}), "tau"),
        (lambda: cm.temperature_probs({"a": 1}, tau=1, alpha=1), "tau"),
        (lambda: cm.explicit_probs({"a": 0, "b": 0}), "weights"),
        (lambda: cm.explicit_probs({"a": -1}), "weights.a"),
        (lambda: cm.unimax({"a": 1}, budget=0, max_epochs=1), "budget"),
        (lambda: cm.unimax({"a": 1}, budget=1, max_epochs=0), "max_epochs"),
        (lambda: as_distribution({"kind": "nope"}), "distribution.kind"),
        (lambda: as_distribution({"kind": "temperature", "tau": 1, "x": 2}), "distribution.x"),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(cm.ConfigError) as e:
        call()
    assert e.value.field == field
    assert "\n" not in str(e.value)


def test_distribution_round_trips_through_dict():
    for d in [
        cm.Temperature(5),
        cm.Proportional(),
        cm.Uniform(),
        cm.Explicit({"a": 1, "b": 3}),
        cm.UniMax(budget=10, max_epochs=2),
        cm.Temperature(2, "neox"),
    ]:
        assert as_distribution(d.to_dict()) == d


# -- one coercer -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (5, cm.Temperature(5)),
        (np.float64(2.5), cm.Temperature(2.5)),
        (math.inf, cm.Temperature(math.inf)),
        ("inf", cm.Uniform()),
        ("uniform", cm.Uniform()),
        ("proportional", cm.Proportional()),
        ({"tau": "inf"}, cm.Temperature(math.inf)),
        ({"kind": "temperature", "alpha": 0.2}, cm.Temperature(5.0)),
        ({"kind": "unimax", "budget": 10, "max_epochs": "inf"}, cm.UniMax(10, math.inf)),
        ({"kind": "explicit", "weights": {"a": 1}}, cm.Explicit({"a": 1})),
        (cm.Explicit({"b": 2}), cm.Explicit({"b": 2})),
    ],
)
def test_as_distribution_reads_every_form(value, want):
    assert cm.as_distribution(value) == want


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (-1, "target"),
        (True, "target"),
        ("hot", "target"),
        ([5], "target"),
        ({"kind": "temperature", "tau": 0}, "target.tau"),
        ({"kind": "temperature"}, "target.tau"),
        ({"kind": "unimax", "budget": -3, "max_epochs": 1}, "target.budget"),
        ({"kind": "explicit", "weights": {"a": -1}}, "target.weights.a"),
        ({"kind": "uniform", "tau": 3}, "target.tau"),
        ({"kind": 7}, "target.kind"),
    ],
)
def test_as_distribution_errors_name_the_field_written(value, field):
    with pytest.raises(cm.ConfigError) as e:
        cm.as_distribution(value, "target")
    assert e.value.field == field, str(e.value)


def test_infinity_is_written_as_the_shared_inf_token():
    assert cm.Temperature(math.inf).to_dict() == {"kind": "temperature", "tau": "inf"}
    assert cm.UniMax(5, math.inf).to_dict() == {"kind": "unimax", "budget": 5.0, "max_epochs": "inf"}
    for d in (cm.Temperature(math.inf), cm.UniMax(5, math.inf)):
        assert cm.as_distribution(d.to_dict()) == d


@pytest.mark.parametrize("kind", sorted(cm.DISTRIBUTIONS))
def test_fields_are_the_config_keys_of_each_kind(kind):
    cls = cm.DISTRIBUTIONS[kind]
    assert cls.kind == kind
    d = {"kind": "explicit", "weights": {"a": 1.0}} if kind == "explicit" else cls().to_dict()
    assert set(d) - {"kind"} <= set(cls.fields())
    assert cm.as_distribution(d).to_dict() == d
