"""The packer's small-K fast path (Python floats) gives bit-identical batches and state to the array path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coolmix import ConfigError, Cooldown, Temperature, packing
from coolmix.packing import TokenPacker


def source(k: int, seed: int, empty_every: int = 0):
    """next_doc(d): documents of random lengths (every ``empty_every``-th one empty)."""
    rng = np.random.default_rng(seed)
    count = [0] * k

    def next_doc(d: int) -> np.ndarray:
        count[d] += 1
        if empty_every and count[d] % empty_every == 0:
            return np.zeros(0, dtype=np.int64)
        return rng.integers(1, 1000, int(rng.integers(1, 90)))

    return next_doc


def packed(k, rows, seq_len, long_docs, seed, steps, fast: bool, monkeypatch):
    monkeypatch.setattr(packing, "FAST_DOMAINS", 10**6 if fast else 0)
    sizes = {f"d{i}": float(10 ** (6 - i)) for i in range(k)}
    pk = TokenPacker(sizes, Cooldown(hot=5, cold=1, at=0.5), steps, rows, seq_len, long_docs=long_docs)
    doc = source(k, seed, empty_every=3)
    return [pk.pack(doc) for _ in range(steps)], pk.state_dict()


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    k=st.integers(1, 6),
    rows=st.integers(1, 4),
    seq_len=st.integers(1, 40),
    long_docs=st.sampled_from(["split", "truncate"]),
    seed=st.integers(0, 2**16),
)
def test_fast_path_is_bit_identical_to_the_array_path(k, rows, seq_len, long_docs, seed):
    with pytest.MonkeyPatch.context() as mp:
        fast, fast_state = packed(k, rows, seq_len, long_docs, seed, 12, True, mp)
        slow, slow_state = packed(k, rows, seq_len, long_docs, seed, 12, False, mp)
    assert fast_state == slow_state  # targets compared as floats: exactly equal
    for a, b in zip(fast, slow, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_a_source_failing_mid_batch_keeps_the_counts_of_what_was_placed(monkeypatch):
    """As on the array path, tokens placed before the error stay counted (nothing silently lost)."""
    results = []
    for fast in (True, False):
        monkeypatch.setattr(packing, "FAST_DOMAINS", 10**6 if fast else 0)
        pk = TokenPacker({"a": 100.0, "b": 100.0}, Temperature(1), 10, 4, 16)
        calls = [0]

        def doc(d: int, calls: list[int] = calls) -> np.ndarray:
            calls[0] += 1
            if calls[0] > 3:
                return np.zeros(0, dtype=np.int64)  # then only empty documents: the source is broken
            return np.arange(1, 6)

        with pytest.raises(ConfigError, match="only empty documents"):
            pk.pack(doc)
        results.append((pk.realised(), pk.target()))
    assert results[0] == results[1] and results[0][0]["a"]["tokens"] + results[0][0]["b"]["tokens"] == 15
