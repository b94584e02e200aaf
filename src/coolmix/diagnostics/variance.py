"""Gradient variance of temperature sampling vs scalarization, measured at fixed parameters.

Li et al.'s Theorem 2 compares single-sample estimators: TS draws i ~ p_τ, x ~ D_i and uses
∇L(x); scalarization draws x ~ D (proportional) and uses w_i ∇L(x), w = p_τ / p_1. Both are
unbiased for ḡ = Σ_i p_τ,i g_i, and

    E‖g_TS‖² = Σ_i p_τ,i s_i,    E‖g_S‖² = Σ_i p_τ,i w_i s_i,    s_i = E_{x~D_i} ‖∇L(x)‖²,

so the variance gap is Σ_i p_τ,i (w_i − 1) s_i — which is s·(F(τ) − 1) ≥ 0 only when every s_i
equals s (the theorem's silent assumption, paper.md §2). We measure s_i on real data.

Everything derives from the Gram matrix of a few per-example gradients per domain: mini-batch
gradient norms under any sampling scheme are quadratic forms in it, so the paper's Fig. 3
(variance of mini-batch gradient norms) is simulated exactly without more backward passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from coolmix.distributions import temperature_array
from coolmix.errors import ConfigError

__all__ = [
    "GradientStats",
    "estimator_moments",
    "gradient_stats",
    "minibatch_norms",
    "per_example_gram",
]


def per_example_gram(
    model: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor], examples: Sequence[Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Gram matrix ⟨∇L(x_a), ∇L(x_b)⟩ of per-example gradients (float64) and the summed gradient.

    ``loss_fn(model, example)`` returns a scalar loss for one example. One backward per example;
    gradients are flattened and kept in float32 (n × P) only while the Gram is formed.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    grads = []
    for ex in examples:
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model, ex)
        g = torch.autograd.grad(loss, params, allow_unused=True)
        flat = torch.cat(
            [
                (x if x is not None else torch.zeros_like(p)).reshape(-1)
                for x, p in zip(g, params, strict=True)
            ]
        )
        grads.append(flat.detach().float())
    mat = torch.stack(grads).double()
    return (mat @ mat.T).numpy(), mat.sum(0).numpy()


@dataclass(frozen=True)
class GradientStats:
    """Per-domain gradient statistics from a Gram matrix of per-example gradients."""

    names: tuple[str, ...]
    gram: np.ndarray  # (n, n) over all sampled examples
    domains: np.ndarray  # (n,) domain id of each sampled example

    def second_moments(self) -> dict[str, float]:
        """s_i = mean ‖∇L(x)‖² over domain i's sampled examples."""
        d = np.diag(self.gram)
        return {n: float(d[self.domains == k].mean()) for k, n in enumerate(self.names)}

    def mean_gradient_norms(self) -> dict[str, float]:
        """‖g_i‖ with g_i the mean gradient of domain i's sampled examples."""
        out = {}
        for k, n in enumerate(self.names):
            m = self.domains == k
            out[n] = float(np.sqrt(max(self.gram[np.ix_(m, m)].mean(), 0.0)))
        return out

    def mean_gradient_dot(self, probs: np.ndarray) -> float:
        """‖Σ_i p_i g_i‖² from the Gram blocks."""
        c = np.array([probs[k] / np.count_nonzero(self.domains == k) for k in self.domains])
        return float(c @ self.gram @ c)


def gradient_stats(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    examples_by_domain: Mapping[str, Sequence[Any]],
) -> GradientStats:
    """Per-example gradients for a few examples of each domain → `GradientStats`."""
    names = tuple(examples_by_domain)
    flat, ids = [], []
    for k, n in enumerate(names):
        exs = list(examples_by_domain[n])
        if not exs:
            raise ConfigError(f"examples.{n}", 0, "need at least one example per domain")
        flat.extend(exs)
        ids.extend([k] * len(exs))
    gram, _ = per_example_gram(model, loss_fn, flat)
    return GradientStats(names, gram, np.array(ids))


def estimator_moments(stats: GradientStats, sizes: Mapping[str, float], tau: float) -> dict[str, Any]:
    """Single-sample second moments and variances of the TS and S estimators at temperature τ.

    Returns E‖g‖² and Var (trace of covariance) for both, the measured gap, the gap Theorem 2
    would predict with equal s_i (s̄·(F−1), s̄ = Σ p_τ,i s_i), F(τ), and s_i per domain.
    """
    n = np.array([float(sizes[name]) for name in stats.names])
    pt, p1 = temperature_array(n, tau), n / n.sum()
    w = pt / p1
    s = np.array(list(stats.second_moments().values()))
    mean_sq = stats.mean_gradient_dot(pt)
    ts2, s2 = float(pt @ s), float((pt * w) @ s)
    f = float(np.sum(pt * pt / p1))
    return {
        "tau": tau,
        "F": f,
        "s": dict(zip(stats.names, s.tolist(), strict=True)),
        "weights": dict(zip(stats.names, w.tolist(), strict=True)),
        "ts_second_moment": ts2,
        "s_second_moment": s2,
        "ts_variance": ts2 - mean_sq,
        "s_variance": s2 - mean_sq,
        "gap": s2 - ts2,
        "gap_equal_s": ts2 * (f - 1.0),
        "equal_s_ratio": float(s.max() / max(s.min(), 1e-30)),
    }


def minibatch_norms(
    stats: GradientStats,
    probs: np.ndarray,
    weights: np.ndarray,
    batch_size: int,
    n_batches: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """Norms of simulated mini-batch gradients (1/B) Σ_b w_{d_b} ∇L(x_b), slots i.i.d. from ``probs``.

    Items are resampled from the per-domain example pools, so only the Gram matrix is needed.
    TS: probs = p_τ, weights = 1. Scalarization: probs = p_1, weights = p_τ / p_1.
    """
    rng = np.random.default_rng(seed)
    pools = [np.flatnonzero(stats.domains == k) for k in range(len(stats.names))]
    norms = np.empty(n_batches)
    for b in range(n_batches):
        doms = rng.choice(len(probs), size=batch_size, p=probs)
        idx = np.array([pools[d][rng.integers(len(pools[d]))] for d in doms])
        coef = weights[doms] / batch_size
        g = stats.gram[np.ix_(idx, idx)]
        norms[b] = np.sqrt(max(coef @ g @ coef, 0.0))
    return norms
