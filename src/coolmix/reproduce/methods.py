"""Balancing methods as trainer settings: every method trains through the same engine and sampler.

A method is a ``[balance]`` table (what is sampled, what the loss is re-weighted towards), plus
for a few an ``[optim]`` or ``[adaptive]`` setting (`method_sections`), and for the three-run
DoReMi a recipe in the runner. HRL/LRL-dependent methods (Order Matters, UniMax) read the
experiment's sizes.

Calibration choices, each stated once here:

- **Clipping.** Methods ending in ``_clip`` clip the global gradient norm at `CLIP_NORM`; the
  convergence experiment's base config turns clipping off, so ``tau5`` vs ``scal5`` measures
  sampling vs scalarization alone and ``tau5_clip`` vs ``scal5_clip`` shows what clipping adds
  (a w ≈ 20 example makes the scalarized batch's ‖g‖ large, and clipping shrinks exactly those).
- **UniMax's cap N** (`unimax_epochs`). Chung et al. 2023 leave N a hyper-parameter (1–10
  at their scale) and allocate the budget by their Alg. 1: smallest language first, an equal
  share of what is left, capped at N epochs, the leftover carried to the larger ones. We set
  N from the budget: the epochs the scarcest language gets under τ = 5 at that budget, so
  UniMax repeats it exactly as much as the strongest static upsampler does, and only the
  allocation rule differs. A fixed N = 4 dropped our 30-verse Swahili after 15 of 360 steps
  and, at the MT budget, never bound at all (UniMax = uniform). Static: that allocation as a
  fixed distribution; dynamic (the paper's App. A): uniform until a language has been drawn N
  epochs, then it is dropped.
- **DoReMi** (runner): reference = proxy-sized model at the author's fork weights
  ``mc4_alpha_0.3`` (τ = 3.33, `DOREMI_REFERENCE_TAU`); proxy sampled uniformly (Xie et al.
  Alg. 1 samples from the uniform domain distribution, so every domain is in every batch),
  per-token excess, η = 1, ε = 1e-3; the main model trains on the time-averaged α. We pick
  τ = 3.33 over uniform because uniform repeats the scarcest language tens of times more in
  the reference than any main run does, so its reference loss there is a memorised floor the
  proxy can never reach, and DoReMi would chase that gap.
- **Late upsampling** (Blakeney et al. 2024, arXiv 2406.03476): τ = 1, then τ = 5 for the
  last 20% of steps. **τ warm-up** (Wang et al. 2020, arXiv 2010.02523): τ linear 1 → 5.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coolmix.distributions import temperature_probs

__all__ = [
    "CLIP_NORM",
    "DOREMI_REFERENCE_TAU",
    "METHODS",
    "MethodSpec",
    "balance_for",
    "high_resource",
    "method_sections",
    "unimax_epochs",
]

CLIP_NORM = 1.0
"""Gradient-norm clip of the ``*_clip`` methods (the trainer's default and the fork's)."""
DOREMI_REFERENCE_TAU = 1 / 0.3
"""DoReMi's reference weights: the fork's ``mc4_alpha_0.3`` (α = 0.3, τ = 3.33)."""
LATE_AT = 0.8
"""Late upsampling switches to τ = 5 for the last 20% of steps (Blakeney et al. 2024)."""


@dataclass(frozen=True)
class MethodSpec:
    """A named balancing strategy and its display label (its config comes from `method_sections`)."""

    key: str
    label: str


METHODS: dict[str, MethodSpec] = {
    m.key: m
    for m in [
        MethodSpec("tau1", "τ=1 (proportional)"),
        MethodSpec("tau2", "TS τ=2"),
        MethodSpec("tau3", "TS τ=3"),
        MethodSpec("tau5", "τ=5"),
        MethodSpec("tau100", "τ=100 (≈uniform)"),
        MethodSpec("scal2", "Scalarization τ=2"),
        MethodSpec("scal3", "Scalarization τ=3"),
        MethodSpec("scal5", "Scalarization τ=5"),
        MethodSpec("tau5_clip", "τ=5, clip 1.0"),
        MethodSpec("scal5_clip", "Scalarization τ=5, clip 1.0"),
        MethodSpec("unimax", "UniMax (dynamic)"),
        MethodSpec("unimax_static", "UniMax (static)"),
        MethodSpec("order_matters", "Order Matters"),
        MethodSpec("cooldown", "Cooldown (5→1 at 50%)"),
        MethodSpec("increasing", "1→5 at 50%"),
        MethodSpec("late_upsample", "Late upsampling (1, then 5 for the last 20%)"),
        MethodSpec("tau_warmup", "τ warm-up (linear 1→5)"),
        MethodSpec("dense1", "Dense 5→1 (5 phases)"),
        MethodSpec("dense2", "Dense 5→1 (10 phases)"),
        MethodSpec(
            "doremi",
            "DoReMi (proxy)",
        ),
        MethodSpec("doremi_ref", "DoReMi reference (τ=3.33, proxy size)"),
        MethodSpec("adaptive", "Adaptive Cooldown"),
    ]
}


def unimax_epochs(sizes: Mapping[str, float], budget: float, tau: float = 5.0) -> float:
    """UniMax's cap N from the budget: the epochs of the scarcest language under τ (1 decimal).

    N = budget · p_τ(j) / n_j for j the smallest domain (see the module docstring for why).

    >>> unimax_epochs({"en": 1000, "sw": 10}, budget=1000)
    28.5
    """
    small = min(sizes, key=lambda k: sizes[k])
    p = temperature_probs(dict(sizes), tau=tau)[small]
    return max(1.0, round(budget * p / float(sizes[small]), 1))


def balance_for(
    method: str,
    sizes: Mapping[str, int],
    total_steps: int,
    batch_size: int,
    high: tuple[str, ...],
    unimax_epochs: float | None = None,
) -> dict[str, Any]:
    """The ``[balance]`` table of ``method`` on a mixture (for DoReMi's main run, see the runner).

    ``unimax_epochs``: UniMax's cap N; None derives it from the budget (`unimax_epochs`).
    """
    base = method.removesuffix("_clip")
    taus = {"tau1": 1.0, "tau2": 2.0, "tau3": 3.0, "tau5": 5.0, "tau100": 100.0}
    if base in taus:
        return {"sample": taus[base]}
    if base.startswith("scal"):
        return {"sample": 1.0, "target": float(base[4:])}
    if base == "doremi_ref":
        return {"sample": DOREMI_REFERENCE_TAU}
    if base == "cooldown":
        return {"sample": {"kind": "cooldown", "hot": 5.0, "cold": 1.0, "at": 0.5}}
    if base == "increasing":
        return {"sample": {"kind": "cooldown", "hot": 1.0, "cold": 5.0, "at": 0.5}}
    if base == "late_upsample":
        return {"sample": {"kind": "cooldown", "hot": 1.0, "cold": 5.0, "at": LATE_AT}}
    if base == "tau_warmup":
        return {"sample": {"kind": "anneal", "start": 1.0, "end": 5.0, "shape": "linear"}}
    if base in ("dense1", "dense2"):
        phases = 5 if base == "dense1" else 10
        taus_ = [5.0 * (1.0 / 5.0) ** (i / (phases - 1)) for i in range(phases)]
        starts = [0, *[i / phases for i in range(1, phases)]]
        return {"sample": {"kind": "stages", "starts": starts, "dists": taus_}}
    budget = float(total_steps * batch_size)
    n_cap = _unimax_cap(sizes, budget) if unimax_epochs is None else float(unimax_epochs)
    if base == "unimax":
        return {"sample": {"kind": "unimax_dynamic", "max_epochs": n_cap, "after": 1.0}}
    if base == "unimax_static":
        return {"sample": {"kind": "unimax", "budget": budget, "max_epochs": n_cap}}
    if base == "order_matters":
        return {"sample": {"kind": "order_matters", "high": list(high), "at": 0.5, "then": 5.0}}
    if base == "adaptive":
        return {"sample": {"kind": "adaptive", "hot": 5.0, "cold": 1.0, "on": "cooldown"}}
    raise KeyError(method)


_unimax_cap = unimax_epochs  # the parameter of `balance_for` shadows the function's name


def method_sections(
    method: str, sizes: Mapping[str, int], total_steps: int, batch_size: int, high: tuple[str, ...]
) -> dict[str, Any]:
    """Config sections ``method`` sets over its experiment's base config (merged per section)."""
    out: dict[str, Any] = {"balance": balance_for(method, sizes, total_steps, batch_size, high)}
    if method.endswith("_clip"):
        out["optim"] = {"clip": CLIP_NORM}
    if method == "adaptive":
        low = [k for k in sizes if k not in high]
        out["adaptive"] = {
            "domains": low,
            "mode": "any",
            "margin": 0.005,
            "patience": 2,
            "min_evals": 3,
            "smoothing": 0.3,
        }
    return out


def high_resource(sizes: Mapping[str, int]) -> tuple[str, ...]:
    """Languages that are not low-resource by `resource_buckets` (≥ 40% of the largest): the set
    Order Matters trains on first."""
    from coolmix.mixture import resource_buckets

    b = resource_buckets({k: int(v) for k, v in sizes.items()})
    return tuple(k for k in sizes if b[k] != "low")
