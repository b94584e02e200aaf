"""Balancing methods as trainer settings: every method trains through the same engine and sampler.

A method is a ``[balance]`` table (what is sampled, what the loss is re-weighted towards) plus,
for the two-stage DoReMi, a recipe. HRL/LRL-dependent methods (Order Matters, UniMax) read the
experiment's sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["METHODS", "MethodSpec", "balance_for"]


@dataclass(frozen=True)
class MethodSpec:
    """A named balancing strategy; ``kind`` says how the runner executes it."""

    key: str
    label: str
    kind: str = "train"  # "train" | "doremi" | "adaptive"
    note: str = ""


METHODS: dict[str, MethodSpec] = {
    m.key: m
    for m in [
        MethodSpec("tau1", "τ=1 (proportional)"),
        MethodSpec("tau2", "TS τ=2"),
        MethodSpec("tau3", "TS τ=3"),
        MethodSpec("tau5", "τ=5"),
        MethodSpec("tau100", "τ=100 (≈uniform)"),
        MethodSpec("scal2", "Scalarization τ=2", note="τ=1 sampling, w = p_2/p_1"),
        MethodSpec("scal3", "Scalarization τ=3", note="τ=1 sampling, w = p_3/p_1"),
        MethodSpec("scal5", "Scalarization τ=5", note="τ=1 sampling, w = p_5/p_1"),
        MethodSpec(
            "unimax", "UniMax (dynamic)", note="uniform until a language reaches N epochs, then dropped"
        ),
        MethodSpec("unimax_static", "UniMax (static)", note="Chung et al. budget allocation"),
        MethodSpec("order_matters", "Order Matters", note="HRLs only, then τ=5 over all from 50%"),
        MethodSpec("cooldown", "Cooldown (5→1 at 50%)"),
        MethodSpec("increasing", "1→5 at 50%"),
        MethodSpec("dense1", "Dense 5→1 (5 phases)"),
        MethodSpec("dense2", "Dense 5→1 (10 phases)"),
        MethodSpec("doremi", "DoReMi (proxy)", kind="doremi", note="reference τ=1 + Group-DRO proxy"),
        MethodSpec("adaptive", "Adaptive Cooldown", kind="adaptive", note="5→1 when an LRL overfits"),
    ]
}


def balance_for(
    method: str,
    sizes: Mapping[str, int],
    total_steps: int,
    batch_size: int,
    high: tuple[str, ...],
    unimax_epochs: float = 4.0,
) -> dict[str, Any]:
    """The ``[balance]`` table of ``method`` on a mixture (for DoReMi's main run, see the runner)."""
    taus = {"tau1": 1.0, "tau2": 2.0, "tau3": 3.0, "tau5": 5.0, "tau100": 100.0}
    if method in taus:
        return {"sample": taus[method]}
    if method.startswith("scal"):
        return {"sample": 1.0, "target": float(method[4:])}
    if method == "cooldown":
        return {"sample": {"kind": "cooldown", "hot": 5.0, "cold": 1.0, "at": 0.5}}
    if method == "increasing":
        return {"sample": {"kind": "cooldown", "hot": 1.0, "cold": 5.0, "at": 0.5}}
    if method in ("dense1", "dense2"):
        phases = 5 if method == "dense1" else 10
        taus_ = [5.0 * (1.0 / 5.0) ** (i / (phases - 1)) for i in range(phases)]
        starts = [0, *[i / phases for i in range(1, phases)]]
        return {"sample": {"kind": "stages", "starts": starts, "dists": taus_}}
    if method == "unimax":
        return {"sample": {"kind": "unimax_dynamic", "max_epochs": unimax_epochs, "after": 1.0}}
    if method == "unimax_static":
        budget = float(total_steps * batch_size)
        return {"sample": {"kind": "unimax", "budget": budget, "max_epochs": unimax_epochs}}
    if method == "order_matters":
        return {"sample": {"kind": "order_matters", "high": list(high), "at": 0.5, "then": 5.0}}
    if method == "adaptive":
        return {"sample": {"kind": "adaptive", "hot": 5.0, "cold": 1.0, "on": "cooldown"}}
    raise KeyError(method)


def high_resource(sizes: Mapping[str, int]) -> tuple[str, ...]:
    """Languages that are not low-resource by `resource_buckets` (≥ 40% of the largest): the set
    Order Matters trains on first."""
    from coolmix.train.evaluate import resource_buckets

    b = resource_buckets({k: int(v) for k, v in sizes.items()})
    return tuple(k for k in sizes if b[k] != "low")
