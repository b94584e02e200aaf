"""Loss weights that turn one sampling distribution into another, and the weighted reductions.

Scalarization (Li et al. 2025, Thm. 1): sample with p_s, multiply domain i's loss by
w_i = p_target,i / p_s,i. Then E_{x~p_s}[w L] = E_{x~p_target}[L] exactly; under SGD the
single-sample second moment grows by F(τ) = Σ_i p_τ,i² / p_1,i (Thm. 2, equal-s_i case).
Works on numpy arrays and torch tensors alike (duck-typed; the core never imports torch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.distributions import Distribution, Proportional, Temperature, check_tau
from coolmix.errors import ConfigError
from coolmix.mixture import check_sizes, to_mapping
from coolmix.types import Sizes

__all__ = [
    "loss_weights",
    "scalarization_weights",
    "theorem2_gap",
    "variance_inflation",
    "weighted_loss",
    "weights_array",
]


def loss_weights(
    sizes: Sizes,
    target: Distribution | float,
    sample: Distribution | float = 1.0,
) -> dict[str, float]:
    """w_i = p_target,i / p_sample,i: weights making sampling from ``sample`` optimise ``target``.

    Numbers are read as temperatures. A domain the sampler never draws (p_sample = 0) gets
    weight 0 and must also have p_target = 0, otherwise the target is unreachable.

    >>> w = loss_weights({"a": 3, "b": 1}, target=float("inf"), sample=1)
    >>> w
    {'a': 0.6666666666666666, 'b': 2.0}
    """
    names, arr = check_sizes(sizes)
    pt = _dist(target, "target").array(names, arr)
    ps = _dist(sample, "sample").array(names, arr)
    bad = (ps == 0) & (pt > 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError("sample", names[i], "is never sampled but has target probability > 0")
    w = np.divide(pt, ps, out=np.zeros_like(pt), where=ps > 0)
    return to_mapping(names, w)


def scalarization_weights(sizes: Sizes, tau: float, sample_tau: float = 1.0) -> dict[str, float]:
    """Theorem 1's equivalent weights, w_i = p(i; τ) / p(i; τ_s) (τ_s = 1: proportional sampling).

    >>> w = scalarization_weights({"en": 2733, "it": 162, "zh": 39, "sw": 1}, tau=5)
    >>> [round(v, 2) for v in w.values()]
    [0.49, 4.68, 14.61, 273.92]
    """
    return loss_weights(sizes, Temperature(check_tau(tau)), Temperature(check_tau(sample_tau, "sample_tau")))


def variance_inflation(sizes: Sizes, tau: float) -> float:
    """F(τ) = Σ_i p(i;τ)² / p(i;1) = 1 + χ²(p_τ ‖ p_1) ≥ 1 (Lemma 2.1; Thm. 3: non-decreasing in τ ≥ 1).

    >>> round(variance_inflation({"en": 2733, "it": 162, "zh": 39, "sw": 1}, tau=5), 1)
    29.8
    """
    names, arr = check_sizes(sizes)
    pt = Temperature(check_tau(tau)).array(names, arr)
    p1 = arr / arr.sum()
    return float(np.sum(pt * pt / p1))


def theorem2_gap(
    sizes: Sizes, tau: float, second_moments: Mapping[str, float], sample_tau: float = 1.0
) -> float:
    """E‖g_S‖² − E‖g_TS‖² = Σ_i p_τ,i (w_i − 1) s_i for single-sample estimators.

    Theorem 2 assumes equal s_i (then the gap is s·(F − 1) ≥ 0); with unequal per-domain
    gradient second moments s_i it can be negative (paper.md §2: n=(9,1), τ=∞, s_H=10 s_L).

    >>> round(theorem2_gap({"H": 9, "L": 1}, float("inf"), {"H": 10.0, "L": 1.0}), 3)
    -0.222
    """
    names, arr = check_sizes(sizes)
    s = np.array([_moment(second_moments, n) for n in names])
    pt = Temperature(check_tau(tau)).array(names, arr)
    ps = Temperature(check_tau(sample_tau, "sample_tau")).array(names, arr)
    w = pt / ps
    return float(np.sum(pt * (w - 1.0) * s))


def _moment(moments: Mapping[str, float], name: str) -> float:
    if name not in moments:
        raise ConfigError("second_moments", name, "missing a domain")
    v = float(moments[name])
    if not np.isfinite(v) or v < 0:
        raise ConfigError(f"second_moments.{name}", v, "must be finite and >= 0")
    return v


def _dist(d: Distribution | float, field: str) -> Distribution:
    if isinstance(d, Distribution):
        return d
    if isinstance(d, (int, float)) and not isinstance(d, bool):
        return Temperature(check_tau(d, field)) if d != 1 else Proportional()
    raise ConfigError(field, d, "must be a Distribution or a temperature number")


def weights_array(
    weights: Mapping[str, float] | Sequence[float] | np.ndarray, names: Sequence[str]
) -> np.ndarray:
    """Mapping or aligned sequence of per-domain weights -> float64 array aligned with ``names``."""
    if isinstance(weights, Mapping):
        missing = [n for n in names if n not in weights]
        if missing:
            raise ConfigError("weights", missing[0], "no weight for this domain")
        return np.array([float(weights[n]) for n in names])
    arr = np.asarray(weights, dtype=np.float64)
    if arr.shape != (len(names),):
        raise ConfigError("weights", arr.shape, f"expected {len(names)} aligned weights")
    return arr


def weighted_loss(
    per_example_loss: Any,
    domain_ids: Any,
    weights: Any,
    reduction: str = "mean",
    n_tokens: Any = None,
) -> Any:
    """Reduce per-example losses with per-domain weights w[domain_ids].

    - ``mean`` (the paper's unbiased L_S): Σ_b w_b ℓ_b / B.
    - ``self_normalized`` (DoReMi-style): Σ_b w_b ℓ_b / Σ_b w_b.
    - ``sum``: Σ_b w_b ℓ_b (for gradient accumulation; divide by the global count yourself).

    With ``n_tokens`` (tokens per example), ℓ_b is read as a per-token mean and the reduction is
    per token instead: Σ_b w_b n_b ℓ_b / Σ_b n_b (or / Σ_b w_b n_b when self-normalised).
    ``weights`` is an array aligned with domain ids (numpy or torch); tensors stay tensors so
    gradients flow.

    >>> float(weighted_loss(np.array([1.0, 3.0]), np.array([0, 1]), np.array([2.0, 0.5])))
    1.75
    """
    if reduction not in ("mean", "self_normalized", "sum"):
        raise ConfigError("reduction", reduction, "must be 'mean', 'self_normalized' or 'sum'")
    w = _gather(weights, domain_ids, per_example_loss)
    if n_tokens is not None:
        w_tok = w * n_tokens
        num = (w_tok * per_example_loss).sum()
        if reduction == "sum":
            return num
        den = w_tok.sum() if reduction == "self_normalized" else n_tokens.sum()
        return num / den
    num = (w * per_example_loss).sum()
    if reduction == "sum":
        return num
    den = w.sum() if reduction == "self_normalized" else per_example_loss.shape[0]
    return num / den


def _gather(weights: Any, domain_ids: Any, like: Any) -> Any:
    """weights[domain_ids], converted to the loss's array type, dtype and device."""
    if hasattr(like, "new_tensor"):  # torch tensor, without importing torch
        w = weights if hasattr(weights, "new_tensor") else like.new_tensor(np.asarray(weights))
        w = w.to(device=like.device, dtype=like.dtype)
        ids = (
            domain_ids
            if hasattr(domain_ids, "new_tensor")
            else like.new_tensor(np.asarray(domain_ids)).long()
        )
        return w[ids.to(like.device)]
    return np.asarray(weights, dtype=np.float64)[np.asarray(domain_ids)]
