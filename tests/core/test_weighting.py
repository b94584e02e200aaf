"""Loss weights (Theorem 1), variance inflation F(τ) (Lemma 2.1, Theorem 3), weighted reductions."""

import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import coolmix as cm
from coolmix.weighting import weights_array

MC4 = {"en": 2733, "it": 162, "zh": 39, "sw": 1}
sizes_st = st.dictionaries(
    st.text("abcdef", min_size=1, max_size=2), st.integers(1, 10**9), min_size=1, max_size=10
)


def test_mc4_reference_weights_and_inflation():
    w = cm.scalarization_weights(MC4, tau=5)
    assert [round(v, 2) for v in w.values()] == [0.49, 4.68, 14.61, 273.92]  # paper.md §1.5: .49/4.7/14.6/274
    assert round(cm.variance_inflation(MC4, 5), 1) == 29.8
    assert round(cm.variance_inflation(MC4, 3.33), 1) == 11.0
    assert round(cm.variance_inflation(MC4, 100), 1) == 174.5


def test_bilingual_reference_inflation():
    cs_ro = {"cs": 56e6, "ro": 0.6e6}
    assert [round(cm.variance_inflation(cs_ro, t), 2) for t in (2, 3, 5)] == [1.66, 3.76, 8.31]
    fr_ro = {"fr": 40e6, "ro": 0.6e6}
    assert [round(cm.variance_inflation(fr_ro, t), 2) for t in (2, 3, 5)] == [1.61, 3.3, 6.65]


@given(sizes_st, st.floats(0.1, 200))
def test_theorem1_weighted_proportional_equals_temperature_objective(sizes, tau):
    """Σ_i p(i;1) w_i L_i == Σ_i p(i;τ) L_i for any per-domain mean losses L."""
    w = cm.scalarization_weights(sizes, tau)
    p1, pt = cm.proportional_probs(sizes), cm.temperature_probs(sizes, tau=tau)
    rng = np.random.default_rng(len(sizes))
    losses = dict(zip(sizes, rng.uniform(0, 5, len(sizes)), strict=True))
    lhs = sum(p1[k] * w[k] * losses[k] for k in sizes)
    rhs = sum(pt[k] * losses[k] for k in sizes)
    assert lhs == pytest.approx(rhs, rel=1e-9)
    assert sum(p1[k] * w[k] for k in sizes) == pytest.approx(1.0)  # E[w] = 1


@given(sizes_st, st.floats(1.0, 300))
def test_lemma21_inflation_is_one_plus_chi_square(sizes, tau):
    pt, p1 = cm.temperature_probs(sizes, tau=tau), cm.proportional_probs(sizes)
    chi2 = sum((pt[k] - p1[k]) ** 2 / p1[k] for k in sizes)
    f = cm.variance_inflation(sizes, tau)
    assert f >= 1 - 1e-9
    assert f == pytest.approx(1 + chi2, rel=1e-6, abs=1e-9)


@given(sizes_st)
def test_theorem3_inflation_non_decreasing_in_tau(sizes):
    taus = [1, 1.5, 2, 3, 5, 10, 100]
    f = [cm.variance_inflation(sizes, t) for t in taus]
    assert all(b >= a * (1 - 1e-9) for a, b in pairwise(f))


def test_theorem3_limit_is_arithmetic_over_harmonic_mean():
    n = np.array(list(MC4.values()), dtype=float)
    assert cm.variance_inflation(MC4, math.inf) == pytest.approx(n.mean() * np.mean(1 / n))
    assert round(cm.variance_inflation(MC4, math.inf), 1) == 189.3


def test_theorem2_gap_equal_moments_is_inflation_minus_one():
    s = {k: 2.0 for k in MC4}
    assert cm.theorem2_gap(MC4, 5, s) == pytest.approx(2.0 * (cm.variance_inflation(MC4, 5) - 1))


def test_theorem2_gap_can_be_negative_with_unequal_moments():
    # paper.md §2 counterexample: n=(9,1), uniform p_τ, s_H = 10 s_L  ->  -0.22 s_L
    assert cm.theorem2_gap({"H": 9, "L": 1}, math.inf, {"H": 10.0, "L": 1.0}) == pytest.approx(-2 / 9)


def test_loss_weights_for_hybrids():
    w = cm.loss_weights(MC4, target=cm.Temperature(5), sample=cm.Temperature(3))
    pt, ps = cm.temperature_probs(MC4, tau=5), cm.temperature_probs(MC4, tau=3)
    assert w == pytest.approx({k: pt[k] / ps[k] for k in MC4})
    assert cm.loss_weights(MC4, target=5, sample=5) == pytest.approx(dict.fromkeys(MC4, 1.0))


def test_loss_weights_unreachable_target():
    with pytest.raises(cm.ConfigError) as e:
        cm.loss_weights({"a": 1, "b": 1}, target=1, sample=cm.Explicit({"a": 1}))
    assert e.value.field == "sample"


def test_weighted_loss_reductions_numpy():
    loss = np.array([1.0, 2.0, 3.0, 4.0])
    dom = np.array([0, 1, 1, 0])
    w = np.array([0.5, 2.0])
    wl = w[dom] * loss  # 0.5, 4, 6, 2
    assert cm.weighted_loss(loss, dom, w, "mean") == pytest.approx(wl.sum() / 4)
    assert cm.weighted_loss(loss, dom, w, "self_normalized") == pytest.approx(wl.sum() / w[dom].sum())
    assert cm.weighted_loss(loss, dom, w, "sum") == pytest.approx(wl.sum())
    n = np.array([1.0, 3.0, 1.0, 5.0])
    per_tok = (w[dom] * n * loss).sum()
    assert cm.weighted_loss(loss, dom, w, "mean", n_tokens=n) == pytest.approx(per_tok / n.sum())
    assert cm.weighted_loss(loss, dom, w, "self_normalized", n_tokens=n) == pytest.approx(
        per_tok / (w[dom] * n).sum()
    )


def test_weighted_loss_unit_weights_is_plain_mean():
    loss = np.array([1.0, 2.0, 6.0])
    assert cm.weighted_loss(loss, np.array([0, 0, 1]), np.ones(2)) == pytest.approx(3.0)


def test_weighted_loss_rejects_unknown_reduction():
    with pytest.raises(cm.ConfigError) as e:
        cm.weighted_loss(np.ones(2), np.zeros(2, int), np.ones(1), reduction="avg")
    assert e.value.field == "reduction"


def test_weights_array_from_mapping():
    assert weights_array({"b": 2.0, "a": 1.0}, ["a", "b"]).tolist() == [1.0, 2.0]
    with pytest.raises(cm.ConfigError):
        weights_array({"a": 1.0}, ["a", "b"])


# -- one reachability check, one step-weight helper -------------------------------------------------


def test_check_reachable_names_the_missing_domain():
    cm.check_reachable({"a": 0.7, "b": 0.3}, {"a": 0.5, "b": 0.5})
    cm.check_reachable({"a": 1.0, "b": 0.0}, {"a": 1.0, "b": 0.0})  # b needed by neither
    with pytest.raises(cm.ConfigError) as e:
        cm.check_reachable({"a": 1.0, "b": 0.0}, {"b": 0.5, "a": 0.5})  # aligned by name
    assert (e.value.field, e.value.value) == ("sample", "b")
    with pytest.raises(cm.ConfigError) as e:
        cm.check_reachable([1.0, 0.0, 1.0], [0.2, 0.1, 0.7], names=["x", "y", "z"], field="balance.sample")
    assert (e.value.field, e.value.value) == ("balance.sample", "y")


def test_loss_weights_and_check_reachable_agree():
    sizes, sample = {"a": 1, "b": 1}, cm.Explicit({"a": 1})
    with pytest.raises(cm.ConfigError) as lw:
        cm.loss_weights(sizes, target=1, sample=sample)
    with pytest.raises(cm.ConfigError) as cr:
        cm.check_reachable(sample.probs(sizes), cm.proportional_probs(sizes))
    assert str(lw.value) == str(cr.value)


@pytest.mark.parametrize(
    ("reduction", "n_tokens", "norm"),
    [
        ("mean", None, 4.0),  # B
        ("self_normalized", None, 3 * (2 / 3) + 2.0),  # Σ_b w_{d_b}
        ("sum", None, 1.0),
        ("mean", [1.0, 2.0, 3.0, 4.0], 10.0),  # Σ_b n_b
        ("self_normalized", [1.0, 2.0, 3.0, 4.0], (1 + 2 + 3) * (2 / 3) + 4 * 2.0),  # Σ_b w n_b
    ],
)
def test_step_weights_match_the_hand_computed_normaliser(reduction, n_tokens, norm):
    sample, target = {"a": 0.75, "b": 0.25}, {"a": 0.5, "b": 0.5}
    s = cm.step_weights(sample, target, [0, 0, 0, 1], reduction=reduction, n_tokens=n_tokens)
    assert s.weights.tolist() == pytest.approx([2 / 3, 2.0])
    assert s.normaliser == pytest.approx(norm)


def test_step_weights_plain_sampling_skipped_domains_and_empty_batches():
    plain = cm.step_weights([0.5, 0.5], None, [0, 1, 1], reduction="self_normalized")
    assert plain.weights.tolist() == [1.0, 1.0] and plain.normaliser == 3.0
    skipped = cm.step_weights([1.0, 0.0], [0.5, 0.5], [0, 0])  # b not drawn at this step
    assert skipped.weights.tolist() == [0.5, 0.0] and skipped.normaliser == 2.0
    for reduction in ("mean", "self_normalized"):
        assert cm.step_weights([0.5, 0.5], [0.5, 0.5], [], reduction=reduction).normaliser == 1.0
        tokens = cm.step_weights([0.5, 0.5], None, [0, 1], reduction=reduction, n_tokens=[0, 0])
        assert tokens.normaliser == 1.0  # nothing counted: the (zero) loss stays 0, not 0/0
    with pytest.raises(cm.ConfigError) as e:
        cm.step_weights([0.5, 0.5], None, [0, 2])
    assert e.value.field == "domains"


def test_step_weights_divided_loss_is_weighted_loss():
    loss, d = np.array([1.0, 2.0, 4.0, 8.0]), np.array([0, 0, 0, 1])
    for reduction in ("mean", "self_normalized"):
        s = cm.step_weights([0.75, 0.25], [0.5, 0.5], d, reduction=reduction)
        whole = cm.weighted_loss(loss, d, s.weights, reduction)
        assert cm.weighted_loss(loss, d, s.weights, "sum") / s.normaliser == pytest.approx(whole)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: cm.scalarization_weights(MC4, 5, 1e-320), "sample_tau"),  # one-hot sampling, τ=5 target
        (lambda: cm.scalarization_weights(MC4, -1), "tau"),
        (lambda: cm.loss_weights(MC4, target=-1), "target"),
        (lambda: cm.loss_weights(MC4, target="hot"), "target"),
        (lambda: cm.loss_weights(MC4, target=5, sample={"kind": "temperature", "tau": 0}), "sample.tau"),
        (lambda: cm.variance_inflation({"a": 1.7e308, "b": 5e-324}, math.inf), "tau"),
        (lambda: cm.theorem2_gap(MC4, 5, [1, 2, 3, 4]), "second_moments"),
        (lambda: cm.theorem2_gap(MC4, 5, {"en": 1.0}), "second_moments"),
        (lambda: weights_array([1.0, math.inf], ["a", "b"]), "weights"),
        (lambda: weights_array({"a": 1.0, "b": 1.0, "c": 1.0}, ["a", "b"]), "weights"),
    ],
)
def test_weighting_errors_name_the_argument(call, field):
    with pytest.raises(cm.ConfigError) as e:
        call()
    assert e.value.field == field, str(e.value)
