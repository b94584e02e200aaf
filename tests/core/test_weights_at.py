"""`weights_at`: the per-step loss weights w_i(t) = p_target,i / p_i(t) for loops outside the trainer."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import coolmix as cm

SIZES = {"en": 2733, "it": 162, "zh": 39, "sw": 1}


@settings(max_examples=60, deadline=None, derandomize=True)
@given(step=st.integers(0, 999), target=st.sampled_from([1.0, 3.0, 5.0, float("inf")]))
def test_cooldown_weights_are_the_phase_scalarization_weights(step, target):
    """In the τ=5 half w(t) = p_target / p_5; in the τ=1 half p_target / p_1."""
    sched = cm.Cooldown(hot=5.0, cold=1.0, at=0.5)
    got = cm.weights_at(step, SIZES, sched, 1000, target=target)
    want = cm.loss_weights(SIZES, target=target, sample=5.0 if step < 500 else 1.0)
    assert got.keys() == want.keys()
    np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-12)


def test_weighted_batches_are_unbiased_for_the_target_over_an_anneal():
    """Σ_i p_i(t) w_i(t) x_i = Σ_i p_target,i x_i at every step of a continuous schedule."""
    sched = cm.Anneal(start=10, end=1, shape="cosine")
    target = cm.temperature_probs(SIZES, tau=3)
    x = np.array([0.3, 1.7, 2.2, 5.0])  # per-domain losses
    for t in (0, 137, 500, 999):
        p = np.array(list(sched.probs_at(t, SIZES, 1000).values()))
        w = np.array(list(cm.weights_at(t, SIZES, sched, 1000, target=3).values()))
        assert float((p * w * x).sum()) == pytest.approx(float(np.dot(list(target.values()), x)), rel=1e-12)


def test_a_domain_absent_at_a_step_gets_zero():
    sched = cm.Stages(starts=(0, 0.5), dists=(cm.Explicit({"en": 1.0, "sw": 0.0}), cm.Temperature(1)))
    w = cm.weights_at(0, {"en": 9, "sw": 1}, sched, 10, target=1.0)
    assert w["sw"] == 0.0 and w["en"] == pytest.approx(0.9)


def test_bad_input_names_the_field():
    with pytest.raises(cm.ConfigError, match=r"^schedule='UniMaxDynamic': reads realised counts"):
        cm.weights_at(0, SIZES, cm.UniMaxDynamic(max_epochs=2), 10, target=1.0)
    with pytest.raises(cm.ConfigError, match=r"^step="):
        cm.weights_at(-1, SIZES, cm.Cooldown(), 10, target=1.0)
    with pytest.raises(cm.ConfigError, match=r"^total_steps="):
        cm.weights_at(0, SIZES, cm.Cooldown(), 0, target=1.0)
    with pytest.raises(cm.ConfigError, match=r"^target="):
        cm.weights_at(0, SIZES, cm.Cooldown(), 10, target=-1)
