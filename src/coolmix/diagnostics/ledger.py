"""Exposure ledger: realised examples and tokens per domain vs the planned share, epochs, repeats.

Peers log plans; nobody logs what was actually drawn (peers.md §6.6). The ledger is fed the
*global* batch each step (aggregate over ranks first), persisted in checkpoints, and written to
the metrics. Because the sampler makes without-replacement passes, the most any single item
has been repeated is ⌈draws / n⌉, so "max repetitions" is exact without per-item counters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.errors import ConfigError

__all__ = ["ExposureLedger"]


class ExposureLedger:
    """Cumulative realised exposure per domain, with the target share it should track.

    >>> led = ExposureLedger({"en": 100, "sw": 4})
    >>> led.record(0, np.array([0, 0, 1, 1]), probs=np.array([0.5, 0.5]))
    >>> led.summary()["sw"]["epochs"], led.summary()["sw"]["max_repeats"]
    (0.5, 1)
    """

    def __init__(self, sizes: Mapping[str, int], size_tokens: Mapping[str, float] | None = None) -> None:
        self.names = tuple(sizes)
        self.sizes = np.array([float(sizes[n]) for n in self.names])
        self.size_tokens = (
            None if size_tokens is None else np.array([float(size_tokens[n]) for n in self.names])
        )
        self.examples = np.zeros(len(self.names), dtype=np.int64)
        self.tokens = np.zeros(len(self.names), dtype=np.int64)
        self.target = np.zeros(len(self.names))  # Σ_t B_t · p_i(t), in examples
        self.steps = 0

    def record(
        self,
        step: int,
        domain_ids: np.ndarray,
        n_tokens: np.ndarray | None = None,
        probs: np.ndarray | Sequence[float] | None = None,
    ) -> None:
        """Add one global batch: its domain ids, tokens per example, and p(t) it was drawn from."""
        ids = np.asarray(domain_ids, dtype=np.int64)
        k = len(self.names)
        self.examples += np.bincount(ids, minlength=k)
        if n_tokens is not None:
            self.tokens += np.bincount(
                ids, weights=np.asarray(n_tokens, dtype=np.float64), minlength=k
            ).astype(np.int64)
        if probs is not None:
            self.target += len(ids) * np.asarray(probs, dtype=np.float64)
        self.steps = max(self.steps, int(step) + 1)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per domain: examples, tokens, realised and target share, epochs, max repeats of an item."""
        total = max(int(self.examples.sum()), 1)
        total_tok = max(int(self.tokens.sum()), 1)
        target_total = self.target.sum() or 1.0
        out = {}
        for i, n in enumerate(self.names):
            ex = int(self.examples[i])
            out[n] = {
                "examples": ex,
                "tokens": int(self.tokens[i]),
                "share": ex / total,
                "token_share": int(self.tokens[i]) / total_tok,
                "target_share": float(self.target[i] / target_total),
                "target_examples": float(self.target[i]),
                "epochs": float(ex / self.sizes[i]),
                "max_repeats": math.ceil(ex / self.sizes[i]),
                "distinct_items": int(min(ex, self.sizes[i])),
            }
        return out

    def epochs(self) -> dict[str, float]:
        return {n: float(self.examples[i] / self.sizes[i]) for i, n in enumerate(self.names)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "examples": self.examples.tolist(),
            "tokens": self.tokens.tolist(),
            "target": self.target.tolist(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or list(state.get("names", [])) != list(self.names):
            raise ConfigError(
                "ledger.names",
                state.get("names") if isinstance(state, Mapping) else state,
                f"ledger from a different mixture; expected {list(self.names)}",
            )
        try:
            self.examples = np.array(state["examples"], dtype=np.int64)
            self.tokens = np.array(state["tokens"], dtype=np.int64)
            self.target = np.array(state["target"], dtype=np.float64)
            self.steps = int(state["steps"])
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError("ledger", type(e).__name__, f"corrupt ledger state: {e}") from None
