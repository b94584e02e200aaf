"""DoReMi's exponentiated-gradient update against closed forms."""

import math

import numpy as np
import pytest

from coolmix.methods.doremi import DoReMiWeights, doremi_step


def test_single_step_closed_form():
    a = doremi_step(np.array([0.5, 0.5]), np.array([1.0, 0.0]), eta=1.0, smoothing=1e-3)
    e = math.e
    expected = (1 - 1e-3) * np.array([e / (e + 1), 1 / (e + 1)]) + 1e-3 / 2
    assert a == pytest.approx(expected, rel=1e-12)


def test_negative_excess_is_clipped():
    a = doremi_step(np.array([0.2, 0.8]), np.array([-5.0, 0.0]), smoothing=0.0)
    assert a == pytest.approx([0.2, 0.8])


def test_constant_excess_converges_to_the_worst_domain_with_smoothing_floor():
    w = DoReMiWeights(["a", "b", "c"], eta=1.0, smoothing=1e-3)
    for _ in range(200):
        w.update({"a": 2.0, "b": 1.0, "c": 1.0}, {"a": 1.0, "b": 1.0, "c": 1.0})
    cur = w.current()
    # fixed point: b = (1-ε)·b/(a·e + 2b) + ε/3 with a = 1 - 2b, i.e. b ≈ (ε/3)·e/(e-1)
    b = 1e-3 / 3 * math.e / (math.e - 1)
    assert cur["b"] == cur["c"] == pytest.approx(b, rel=1e-2)
    assert cur["a"] == pytest.approx(1 - 2 * b, rel=1e-4)


def test_average_is_the_time_average():
    w = DoReMiWeights(["a", "b"])
    seq = []
    for excess in ([1.0, 0.0], [0.0, 2.0], [0.5, 0.5]):
        seq.append(list(w.update({"a": excess[0], "b": excess[1]}, {"a": 0.0, "b": 0.0}).values()))
    assert list(w.average().values()) == pytest.approx(np.mean(seq, axis=0))
    assert w.as_distribution().weights == pytest.approx(w.average())
