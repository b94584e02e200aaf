"""The benchmark's prefix-error measure (benchmarks/bench_engines.py) against brute force."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

_SPEC = importlib.util.spec_from_file_location(
    "bench_engines", Path(__file__).resolve().parents[2] / "benchmarks" / "bench_engines.py"
)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


@given(st.integers(1, 5), st.integers(0, 120), st.integers(1, 9), st.integers(1, 40), st.integers(0, 2**32))
def test_worst_prefix_error_is_the_brute_force_maximum(k: int, n: int, every: int, chunk: int, seed: int):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k))
    dom = rng.integers(0, k, n).astype(np.int16)
    got = bench.worst_prefix_error(dom, p, every, chunk)
    counts = np.vstack([np.zeros(k), np.cumsum(np.eye(k)[dom], axis=0)]) if n else np.zeros((1, k))
    bounds = np.arange(0, n - n % every + 1, every)
    want = max(float(np.abs(counts[b] - b * p).max()) for b in bounds)
    assert abs(got - want) < 1e-9
