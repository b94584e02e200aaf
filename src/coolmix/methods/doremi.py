"""DoReMi's domain-weight update (Xie et al. 2023): Group-DRO with exponentiated gradients.

The update is pure numpy so it can be tested against closed forms; the proxy training that
feeds it per-domain excess losses is `coolmix.train.extensions.DoReMiProxy`. Per step, with
P the domains present in the batch:

    λ_i = Σ_{tokens t of domain i} max(ℓ_proxy(t) − ℓ_ref(t), 0) / #tokens of domain i   (i ∈ P)
    α_P ← α(P) · softmax_P(log α_P + η λ_P)          (absent domains keep their weight)
    α ← (1 − ε) α + ε / K                            (smoothing; η = 1, ε = 1e-3 in the paper)

The clip is per *token* (Xie et al., Alg. 1), not on per-domain means, so a domain whose proxy
is better than the reference on some tokens and worse on others still counts the worse ones.
A domain absent from a batch is left out of the softmax instead of being given λ = 0: with
λ = 0 the present domains' positive excess would push it down for not being sampled. The main
model trains on the time average of α (a static distribution, `DoReMiWeights.average`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.distributions import Explicit
from coolmix.errors import ConfigError
from coolmix.validate import check_float

__all__ = ["DoReMiWeights", "doremi_step"]


def doremi_step(
    alpha: np.ndarray,
    excess: np.ndarray,
    eta: float = 1.0,
    smoothing: float = 1e-3,
    present: np.ndarray | None = None,
) -> np.ndarray:
    """One exponentiated-gradient step on the domain weights; returns the new (smoothed) α.

    ``excess`` is the per-domain excess λ (negative values are clipped to 0); ``present`` (bool,
    default all) marks the domains that were in the batch: only they are re-weighted, within the
    mass they already held, so an absent domain keeps its α (up to the smoothing).

    >>> doremi_step(np.array([0.5, 0.5]), np.array([0.0, 0.0])).tolist()
    [0.5, 0.5]
    >>> doremi_step(np.array([0.2, 0.8]), np.array([0.0, 3.0]), smoothing=0.0,
    ...             present=np.array([True, False])).tolist()
    [0.2, 0.8]
    """
    alpha = np.asarray(alpha, dtype=float)
    mask = np.ones(len(alpha), dtype=bool) if present is None else np.asarray(present, dtype=bool)
    new = alpha.copy()
    if mask.any():
        logits = np.log(alpha[mask]) + eta * np.maximum(np.asarray(excess, dtype=float)[mask], 0.0)
        logits -= logits.max()
        a = np.exp(logits)
        new[mask] = alpha[mask].sum() * a / a.sum()
    new /= new.sum()
    return (1.0 - smoothing) * new + smoothing / len(new)


class DoReMiWeights:
    """Running DoReMi weights over named domains, with their time average."""

    def __init__(
        self,
        names: Sequence[str],
        init: Mapping[str, float] | None = None,
        eta: float = 1.0,
        smoothing: float = 1e-3,
    ) -> None:
        if not names:
            raise ConfigError("domains", list(names), "need at least one domain")
        check_float("eta", eta, lo=0.0, lo_open=True)
        check_float("smoothing", smoothing, lo=0.0, hi=1.0, hi_open=True)
        self.names = tuple(names)
        a = (
            np.full(len(names), 1.0 / len(names))
            if init is None
            else np.array([float(init[n]) for n in names])
        )
        self.alpha = a / a.sum()
        self.eta, self.smoothing = float(eta), float(smoothing)
        self._sum = np.zeros(len(names))
        self.updates = 0

    def update(self, excess: Mapping[str, float]) -> dict[str, float]:
        """Step with this batch's per-domain excess λ_i; domains missing from ``excess`` were
        absent from the batch and keep their weight (see `doremi_step`)."""
        lam = np.array([float(excess.get(n, 0.0)) for n in self.names])
        present = np.array([n in excess for n in self.names])
        self.alpha = doremi_step(self.alpha, lam, self.eta, self.smoothing, present)
        self._sum += self.alpha
        self.updates += 1
        return self.current()

    def current(self) -> dict[str, float]:
        return dict(zip(self.names, self.alpha.tolist(), strict=True))

    def average(self) -> dict[str, float]:
        """The time-averaged weights ᾱ = (1/T) Σ_t α_t (what trains the main model)."""
        avg = self._sum / self.updates if self.updates else self.alpha
        return dict(zip(self.names, (avg / avg.sum()).tolist(), strict=True))

    def as_distribution(self) -> Explicit:
        return Explicit(self.average())

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha.tolist(), "sum": self._sum.tolist(), "updates": self.updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.alpha = np.array(state["alpha"], dtype=float)
        self._sum = np.array(state["sum"], dtype=float)
        self.updates = int(state["updates"])
