"""The paired-interval maths and the one verdict rule (reproduce/stats.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coolmix.reproduce.stats import Interval, combine, decide, paired, paired_interval, t_cdf, t_quantile

# Student t 0.975 quantiles from standard tables
T975 = {
    1: 12.7062,
    2: 4.3027,
    3: 3.1824,
    4: 2.7764,
    5: 2.5706,
    9: 2.2622,
    19: 2.0930,
    29: 2.0452,
    120: 1.9799,
}


@pytest.mark.parametrize(("df", "q"), sorted(T975.items()))
def test_t_quantile_matches_the_tables(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, abs=5e-5)


def test_t_quantile_tends_to_the_normal_and_is_symmetric():
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-5)
    assert t_quantile(0.025, 4) == pytest.approx(-t_quantile(0.975, 4), abs=1e-12)
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)


@given(st.floats(0.001, 0.999), st.integers(1, 200))
def test_t_quantile_inverts_the_cdf(p, df):
    assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-9)


@given(st.floats(-50, 50), st.floats(-50, 50), st.integers(1, 60))
def test_t_cdf_is_monotone(a, b, df):
    lo, hi = min(a, b), max(a, b)
    assert t_cdf(lo, df) <= t_cdf(hi, df) + 1e-15


def test_paired_interval_formula():
    d = [0.1, 0.25, 0.3, 0.05]
    iv = paired_interval(d)
    half = T975[3] * np.std(d, ddof=1) / 2.0
    assert (iv.mean, iv.n) == (pytest.approx(0.175), 4)
    assert iv.lo == pytest.approx(0.175 - half, abs=1e-4) and iv.hi == pytest.approx(0.175 + half, abs=1e-4)
    one = paired_interval([0.4])
    assert (one.lo, one.hi, one.n) == (0.4, 0.4, 1) and math.isnan(one.sd)


def test_paired_uses_common_seeds_only():
    assert paired({0: 1.0, 1: 2.0, 2: 5.0}, {1: 1.5, 2: 1.0, 3: 9.0}) == ([1, 2], [0.5, 4.0])


def test_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    hits = sum(
        (iv := paired_interval(rng.normal(0.3, 1.0, size=4).tolist())).lo <= 0.3 <= iv.hi for _ in range(4000)
    )
    assert 0.94 <= hits / 4000 <= 0.96


def iv(lo: float, hi: float, n: int = 3) -> Interval:
    return Interval((lo + hi) / 2, lo, hi, n, 0.1)


@pytest.mark.parametrize(
    ("lo", "hi", "kind", "margin", "expected"),
    [
        (0.1, 0.3, "better", 0.0, "PASS"),
        (-0.3, -0.1, "better", 0.0, "FAIL"),
        (-0.1, 0.3, "better", 0.0, "INCONCLUSIVE"),
        (-2.0, -1.0, "no_worse", 3.0, "PASS"),  # worse, but within the margin
        (-4.0, -3.5, "no_worse", 3.0, "FAIL"),
        (-4.0, -2.0, "no_worse", 3.0, "INCONCLUSIVE"),
        (-1.0, 1.0, "same", 3.0, "PASS"),
        (3.5, 5.0, "same", 3.0, "FAIL"),
        (-5.0, -3.5, "same", 3.0, "FAIL"),
        (1.0, 4.0, "same", 3.0, "INCONCLUSIVE"),
    ],
)
def test_decide(lo, hi, kind, margin, expected):
    assert decide(iv(lo, hi), kind, margin) == expected


@pytest.mark.parametrize("kind", ["better", "no_worse", "same"])
def test_one_seed_is_always_inconclusive(kind):
    assert decide(Interval(5.0, 5.0, 5.0, 1, math.nan), kind, 1.0) == "INCONCLUSIVE"


def test_combine_is_a_conjunction():
    assert combine(["PASS", "PASS"]) == "PASS"
    assert combine(["PASS", "INCONCLUSIVE"]) == "INCONCLUSIVE"
    assert combine(["PASS", "INCONCLUSIVE", "FAIL"]) == "FAIL"
    assert combine([]) == "INCONCLUSIVE"
