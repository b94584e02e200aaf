"""DoReMi's domain-weight update (Xie et al. 2023): Group-DRO with exponentiated gradients.

The update is pure numpy so it can be tested against closed forms; the proxy training that
feeds it per-domain excess losses lives in the reproduction runner. Per step:

    excess_i = max(ℓ_proxy,i − ℓ_ref,i, 0)             (per-domain mean over the batch)
    log α ← log α + η · excess;   α ← softmax(log α)
    α ← (1 − ε) α + ε / K                               (smoothing; η = 1, ε = 1e-3 in the paper)

The main model trains on the time average of α (a static distribution).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.distributions import Explicit
from coolmix.errors import ConfigError

__all__ = ["DoReMiWeights", "doremi_step"]


def doremi_step(
    alpha: np.ndarray, excess: np.ndarray, eta: float = 1.0, smoothing: float = 1e-3
) -> np.ndarray:
    """One exponentiated-gradient step on the domain weights; returns the new (smoothed) α.

    >>> doremi_step(np.array([0.5, 0.5]), np.array([0.0, 0.0])).tolist()
    [0.5, 0.5]
    """
    logits = np.log(alpha) + eta * np.maximum(excess, 0.0)
    logits -= logits.max()
    a = np.exp(logits)
    a /= a.sum()
    return (1.0 - smoothing) * a + smoothing / len(a)


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
        if not (eta > 0):
            raise ConfigError("eta", eta, "must be > 0")
        if not (0 <= smoothing < 1):
            raise ConfigError("smoothing", smoothing, "must be in [0, 1)")
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

    def update(self, proxy_loss: Mapping[str, float], ref_loss: Mapping[str, float]) -> dict[str, float]:
        """Step with per-domain losses of this batch; domains absent from the batch get excess 0."""
        excess = np.array(
            [
                max(proxy_loss[n] - ref_loss[n], 0.0) if n in proxy_loss and n in ref_loss else 0.0
                for n in self.names
            ]
        )
        self.alpha = doremi_step(self.alpha, excess, self.eta, self.smoothing)
        self._sum += self.alpha
        self.updates += 1
        return self.current()

    def current(self) -> dict[str, float]:
        return dict(zip(self.names, self.alpha.tolist()))

    def average(self) -> dict[str, float]:
        """The time-averaged weights (what trains the main model)."""
        avg = self._sum / self.updates if self.updates else self.alpha
        return dict(zip(self.names, (avg / avg.sum()).tolist()))

    def as_distribution(self) -> Explicit:
        return Explicit(self.average())

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha.tolist(), "sum": self._sum.tolist(), "updates": self.updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.alpha = np.array(state["alpha"], dtype=float)
        self._sum = np.array(state["sum"], dtype=float)
        self.updates = int(state["updates"])
