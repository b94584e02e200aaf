"""Adaptive switch and ledger wiring (unit level; the loop-level tests are in test_train_adaptive.py)."""

from types import SimpleNamespace

import numpy as np

import coolmix as cm
from coolmix.train.config import AdaptiveConfig
from coolmix.train.extensions import AdaptiveSwitch, Ledger, low_resource

SIZES = {"en": 1000, "it": 100, "sw": 10}


def _record(step, sw_loss, en_loss=3.0, epochs=None):
    return {
        "step": step,
        "dev": {"loss": {"en": en_loss, "it": 3.0, "sw": sw_loss}},
        "epochs": epochs or {"en": 0.1, "it": 1.0, "sw": step / 10},
    }


def test_low_resource_watch_list():
    assert low_resource(SIZES) == ("it", "sw")


def test_switch_fires_once_on_overfitting_and_is_in_the_sampler_state():
    sched = cm.Adaptive(hot=cm.Constant(cm.Temperature(5)), cold=cm.Constant(cm.Temperature(1)))
    sampler = cm.MixtureSampler(SIZES, sched, total_steps=1000, batch_size=8, seed=0)
    sw = AdaptiveSwitch(AdaptiveConfig(domains=("sw",), patience=2, min_evals=3, smoothing=0.0), sampler)
    curve = [3.0, 2.5, 2.0, 2.2, 2.4, 2.6]
    fired = []
    for i, v in enumerate(curve):
        step = (i + 1) * 100
        for t in range(sampler.step, step):
            sampler.batch(t)
        ev = sw.after_eval(step, _record(step, v))
        if ev:
            fired.append(ev)
    assert len(fired) == 1 and fired[0]["step"] == 500 and fired[0]["info"]["best_step"] == 300
    assert sampler.tau_at(499) == 5.0 and sampler.tau_at(500) == 1.0
    assert sampler.state_dict()["events"][0]["name"] == "cooldown"


def test_epoch_budget_trigger():
    sched = cm.Adaptive()
    sampler = cm.MixtureSampler(SIZES, sched, total_steps=1000, batch_size=8, seed=0)
    sw = AdaptiveSwitch(AdaptiveConfig(max_epochs=4.0), sampler)
    assert sw.after_eval(10, _record(10, 3.0, epochs={"en": 0.0, "it": 0.5, "sw": 3.9})) is None
    ev = sw.after_eval(20, _record(20, 2.9, epochs={"en": 0.0, "it": 0.5, "sw": 4.0}))
    assert ev["info"]["reason"].startswith("epochs") and ev["step"] == 20


def test_ledger_counts_global_batches():
    sampler = cm.MixtureSampler(SIZES, 5.0, total_steps=20, batch_size=8, seed=0)
    split = SimpleNamespace(offsets=np.array([0, 1000, 1100, 1110]), tgt_len=np.arange(1110) % 7 + 1)
    led = Ledger(sampler, split)
    for t in range(20):
        led.record(t)
    s = led.summary()
    assert {k: v["examples"] for k, v in s.items()} == sampler.cursors
    assert sum(v["tokens"] for v in s.values()) > 0
