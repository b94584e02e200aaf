"""The keyed Feistel permutation: a bijection of [0, n) for every n, and one bijection whether
it is called per domain (`permute`) or elementwise over many domains (`permute_each`)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from coolmix.permutation import permute, permute_each, width

keys = st.integers(0, 2**64 - 1)


@given(st.integers(1, 3000), keys)
def test_permute_is_a_bijection_of_range_n(n, key):
    out = permute(np.arange(n, dtype=np.uint64), n, key)
    assert sorted(out.tolist()) == list(range(n))


@given(st.integers(1, 3000), keys)
def test_permute_and_permute_each_are_the_same_bijection(n, key):
    x = np.arange(n, dtype=np.uint64)
    each = permute_each(
        x,
        np.full(n, n, dtype=np.uint64),
        np.full(n, width(n), dtype=np.uint64),
        np.full(n, key, dtype=np.uint64),
    )
    assert each.tolist() == permute(x, n, key).tolist()


@given(st.lists(st.tuples(st.integers(1, 200), keys), min_size=1, max_size=6))
def test_permute_each_over_mixed_domains_matches_each_domain_alone(domains):
    """One vectorised call over several (n, key) blocks equals one `permute` per block."""
    x = np.concatenate([np.arange(n, dtype=np.uint64) for n, _ in domains])
    n = np.concatenate([np.full(n, n, dtype=np.uint64) for n, _ in domains])
    bits = np.array([width(int(v)) for v in n], dtype=np.uint64)
    k = np.concatenate([np.full(m, key, dtype=np.uint64) for m, key in domains])
    expected = np.concatenate([permute(np.arange(m, dtype=np.uint64), m, key) for m, key in domains])
    assert permute_each(x, n, bits, k).tolist() == expected.tolist()


@given(st.integers(2**40, 2**62), keys)
def test_huge_domains_stay_in_range_and_injective_on_a_sample(n, key):
    x = np.unique(np.random.default_rng(key % 1000).integers(0, n, size=512, dtype=np.uint64))
    out = permute(x, n, key)
    assert (out < np.uint64(n)).all() and len(set(out.tolist())) == len(x)


def test_different_keys_give_different_orders():
    x = np.arange(100, dtype=np.uint64)
    assert permute(x, 100, 1).tolist() != permute(x, 100, 2).tolist()
