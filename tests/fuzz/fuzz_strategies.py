"""Hostile values for the fuzz suite: the numbers, strings and shapes a careless or malicious user writes."""

from __future__ import annotations

import math

from hypothesis import strategies as st

DOMAINS = ("en", "it", "zh", "sw")

edge_floats = st.sampled_from(
    [
        0.0, -0.0, 1.0, -1.0, 0.5, 5.0, 100.0, 1e-300, 1e-308, 5e-324, 2.2e-308, 1e-320, 1e-30,
        1e30, 1e300, 1e308, 1.7e308, -1e308, math.inf, -math.inf, math.nan, 2.0**53 + 1, 2.0**63,
        2.0**64, 1e-7, 0.999999999, 1.000000001,
    ]
)  # fmt: skip
edge_ints = st.sampled_from(
    [0, 1, 2, 3, -1, -3, 10, 2**31, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64, 10**30]
)
junk = st.sampled_from(
    [None, True, False, "", "abc", "inf", "nan", "-inf", "1e400", [], {}, [1, 2], {"a": 1}]
)

numbers = st.one_of(
    edge_floats,
    edge_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.floats(1e-3, 1e3),
    st.integers(1, 10_000),
)
hostile = st.one_of(numbers, junk)
"""Any value a config field might receive."""

positive = st.one_of(st.integers(1, 10**6), st.floats(0.01, 1e6), edge_floats, edge_ints)
"""Mostly plausible sizes and parameters, with the edge cases mixed in."""

sizes = st.one_of(
    st.dictionaries(st.sampled_from(DOMAINS), positive, min_size=1, max_size=4),
    st.dictionaries(st.sampled_from(DOMAINS), hostile, min_size=0, max_size=4),
    junk,
)
"""A sizes mapping: usually plausible, sometimes empty, non-numeric or not a mapping."""

good_sizes = st.dictionaries(st.sampled_from(DOMAINS), st.integers(1, 10**5), min_size=1, max_size=4)

taus = st.one_of(edge_floats, st.floats(0.01, 100.0), st.integers(-2, 100), junk)

# text that parses as an override value: numbers, junk, broken TOML, huge literals
override_values = st.one_of(
    st.sampled_from(
        [
            "abc", "nan", "inf", "-inf", "+inf", "1e400", "-1e400", "-3", "0", "0.0", "1e-320", "1e308",
            "2**64", "18446744073709551616", "99999999999999999999999999", "true", "[1,", "{a=1}", "[]",
            "{}", '"x"', "''", "", "none", "null", "0x10", "1_000", "[1, 2]", '{ kind = "uniform" }',
            "\u00e9", "\x00", "9" * 400,
        ]
    ),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=8),
)  # fmt: skip
