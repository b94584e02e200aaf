"""Weight producers of the reproduction: each method's [balance] table drives the real sampler."""

import pytest

import coolmix as cm
from coolmix.reproduce.methods import METHODS, balance_for, high_resource

SIZES = {"en": 1000, "it": 100, "sw": 10}


def sampler_for(method, steps=100, batch=10):
    bal = balance_for(method, SIZES, steps, batch, high_resource(SIZES))
    return cm.MixtureSampler(SIZES, bal["sample"], total_steps=steps, batch_size=batch, seed=0)


@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("doremi", "adaptive")])
def test_every_method_builds_a_schedule(method):
    s = sampler_for(method)
    for t in range(100):
        s.batch(t)
    assert sum(s.cursors.values()) == 1000


def test_order_matters_switch():
    s = sampler_for("order_matters")
    assert s.probs_at(49) == {"en": 1.0, "it": 0.0, "sw": 0.0}
    assert s.probs_at(50) == pytest.approx(cm.temperature_probs(SIZES, tau=5))
    for t in range(50):
        s.batch(t)
    assert s.cursors == {"en": 500, "it": 0, "sw": 0}


def test_unimax_static_allocation_and_dynamic_drop():
    bal = balance_for("unimax_static", SIZES, 100, 10, ("en",), unimax_epochs=4)
    probs = cm.schedule_from_dict(bal["sample"]).probs_at(0, SIZES, 100)
    # budget 1000: sw capped at 40, it gets min(480, 400) = 400, en the remaining 560
    assert probs == pytest.approx({"en": 0.56, "it": 0.4, "sw": 0.04})
    s = sampler_for("unimax")
    for t in range(100):
        s.batch(t)
    assert s.cursors["sw"] <= 4 * 10 + 10  # dropped within a batch of reaching 4 epochs


def test_scalarization_and_cooldown_tables():
    assert balance_for("scal5", SIZES, 10, 2, ("en",)) == {"sample": 1.0, "target": 5.0}
    cd = cm.schedule_from_dict(balance_for("cooldown", SIZES, 10, 2, ("en",))["sample"])
    assert (cd.tau_at(4, 10), cd.tau_at(5, 10)) == (5.0, 1.0)
    inc = cm.schedule_from_dict(balance_for("increasing", SIZES, 10, 2, ("en",))["sample"])
    assert (inc.tau_at(4, 10), inc.tau_at(5, 10)) == (1.0, 5.0)
    dense = cm.schedule_from_dict(balance_for("dense2", SIZES, 100, 2, ("en",))["sample"])
    taus = [dense.tau_at(t, 100) for t in range(100)]
    assert len(set(taus)) == 10 and taus[0] == 5.0 and taus[-1] == pytest.approx(1.0)


def test_high_resource_split():
    assert high_resource({"es": 30000, "it": 29000, "gl": 17000, "ga": 1800}) == ("es", "it", "gl")
