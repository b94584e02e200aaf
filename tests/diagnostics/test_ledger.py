"""Exposure ledger against the sampler's exact counts."""

import json

import numpy as np
import pytest

import coolmix as cm
from coolmix.diagnostics import ExposureLedger

SIZES = {"en": 1000, "it": 60, "sw": 7}


def test_ledger_matches_sampler_counts_and_plan():
    s = cm.MixtureSampler(SIZES, cm.Cooldown(), total_steps=100, batch_size=32, seed=0)
    led = ExposureLedger(SIZES)
    tokens_per_item = {"en": 10, "it": 20, "sw": 30}
    tok = np.array(list(tokens_per_item.values()))
    for t in range(100):
        probs = np.array(list(s.probs_at(t).values()))
        d, _ = s.batch(t)
        led.record(t, d, n_tokens=tok[d], probs=probs)
    summ = led.summary()
    assert {n: summ[n]["examples"] for n in SIZES} == s.cursors
    assert {n: summ[n]["tokens"] for n in SIZES} == {n: s.cursors[n] * tokens_per_item[n] for n in SIZES}
    planned = s.cumulative_target(100)
    for n in SIZES:
        assert abs(summ[n]["examples"] - planned[n]) < 1
        assert summ[n]["target_examples"] == pytest.approx(planned[n])
        assert summ[n]["epochs"] == pytest.approx(s.cursors[n] / SIZES[n])


def test_max_repeats_is_exact_under_without_replacement_passes():
    s = cm.MixtureSampler(SIZES, 100.0, total_steps=50, batch_size=16, seed=1)
    led = ExposureLedger(SIZES)
    counts = {n: np.zeros(v, dtype=int) for n, v in SIZES.items()}
    for t in range(50):
        d, i = s.batch(t)
        led.record(t, d)
        for k, n in enumerate(SIZES):
            np.add.at(counts[n], i[d == k], 1)
    summ = led.summary()
    for n in SIZES:
        assert summ[n]["max_repeats"] == counts[n].max()
        assert summ[n]["distinct_items"] == np.count_nonzero(counts[n])


def test_state_round_trip_and_foreign_state():
    led = ExposureLedger(SIZES)
    led.record(0, np.array([0, 1, 2, 2]), n_tokens=np.array([5, 5, 5, 5]), probs=[0.5, 0.25, 0.25])
    other = ExposureLedger(SIZES)
    other.load_state_dict(json.loads(json.dumps(led.state_dict())))
    assert other.summary() == led.summary()
    with pytest.raises(cm.ConfigError):
        ExposureLedger({"x": 1}).load_state_dict(led.state_dict())
