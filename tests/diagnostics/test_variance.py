"""Gradient-variance estimates against a closed-form toy where s_i are known; Theorem-1 GD check."""

import math

import numpy as np
import pytest
import torch

import coolmix as cm
from coolmix.diagnostics.equivalence import theorem1_check
from coolmix.diagnostics.variance import estimator_moments, gradient_stats, minibatch_norms


class Linear(torch.nn.Module):
    def __init__(self, d=2):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(d, dtype=torch.float64))

    def forward(self, x):
        return x @ self.theta


def one_loss(model, ex):
    x, y = ex
    return 0.5 * (model(x) - y) ** 2


def toy_examples():
    # at θ = 0 the gradient of 0.5 (θ·x − y)² is −y·x: domain H has ‖∇‖² = 10, domain L has 1
    h = [
        (torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor(math.sqrt(10.0), dtype=torch.float64))
    ] * 3
    low = [(torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))] * 2
    return {"H": h, "L": low}


def test_second_moments_and_mean_gradients_are_exact():
    stats = gradient_stats(Linear(), one_loss, toy_examples())
    assert stats.second_moments() == pytest.approx({"H": 10.0, "L": 1.0})
    assert stats.mean_gradient_norms() == pytest.approx({"H": math.sqrt(10.0), "L": 1.0})


def test_theorem2_gap_sign_flips_with_unequal_second_moments():
    """paper.md §2 counterexample: n = (9, 1), τ = ∞, s_H = 10 s_L gives a gap of −2/9 < 0."""
    stats = gradient_stats(Linear(), one_loss, toy_examples())
    m = estimator_moments(stats, {"H": 9, "L": 1}, tau=math.inf)
    assert m["gap"] == pytest.approx(-2 / 9)
    assert m["gap"] == pytest.approx(cm.theorem2_gap({"H": 9, "L": 1}, math.inf, m["s"]))
    assert m["gap_equal_s"] > 0  # what Theorem 2 would have predicted
    assert m["F"] == pytest.approx(cm.variance_inflation({"H": 9, "L": 1}, math.inf))
    # variances: both estimators share the mean ḡ = (−√10/2, −1/2), ‖ḡ‖² = 2.75
    assert m["ts_variance"] == pytest.approx(0.5 * 10 + 0.5 * 1 - 2.75)
    assert m["s_variance"] == pytest.approx(0.9 * (5 / 9) ** 2 * 10 + 0.1 * 25 - 2.75)


def test_simulated_minibatch_norms_match_closed_form_moments():
    stats = gradient_stats(Linear(), one_loss, toy_examples())
    sizes = {"H": 9, "L": 1}
    m = estimator_moments(stats, sizes, tau=3.0)
    pt = np.array(list(cm.temperature_probs(sizes, tau=3).values()))
    p1 = np.array([0.9, 0.1])
    w = pt / p1
    b = 8
    g2 = stats.mean_gradient_dot(pt)
    ts = minibatch_norms(stats, pt, np.ones(2), b, n_batches=20_000, seed=0)
    sc = minibatch_norms(stats, p1, w, b, n_batches=20_000, seed=0)
    # E‖mean of B i.i.d. single-sample gradients‖² = ‖ḡ‖² + Var/B
    assert np.mean(ts**2) == pytest.approx(g2 + m["ts_variance"] / b, rel=0.02)
    assert np.mean(sc**2) == pytest.approx(g2 + m["s_variance"] / b, rel=0.02)


def test_theorem1_full_batch_trajectories_coincide():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    data = {"big": (torch.randn(90, 3), torch.randn(90)), "small": (torch.randn(10, 3), torch.randn(10))}

    def loss_fn(m, d):
        x, y = d
        return (m(x).squeeze(-1) - y) ** 2

    out = theorem1_check(model, loss_fn, data, tau=5.0, steps=30, lr=0.1)
    assert out["max_abs_param_diff"] < 1e-5
    assert out["loss_ts"] == pytest.approx(out["loss_s"], rel=1e-5)
    assert out["weights"]["small"] > 1 > out["weights"]["big"]
