"""`Anneal`: a smooth τ(t) from ``start`` to ``end`` (linear, cosine or exponential in τ)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from coolmix.errors import ConfigError
from coolmix.schedules._base import Context, Schedule, register
from coolmix.validate import check_float

__all__ = ["Anneal"]

SHAPES = ("linear", "cosine", "exponential")


@register
@dataclass(frozen=True)
class Anneal(Schedule):
    """Smooth τ(t) from ``start`` to ``end`` between fractions ``begin`` and ``finish`` of training.

    With x = clip((t/T − begin) / (finish − begin), 0, 1):
    ``linear`` τ = start + (end − start)·x; ``cosine`` τ = end + (start − end)·(1 + cos πx)/2;
    ``exponential`` log τ = log start + (log end − log start)·x. Before ``begin`` τ = start,
    after ``finish`` τ = end. Both ends must be finite temperatures > 0.

    >>> Anneal(start=4, end=1, shape="exponential").tau_at(50, total_steps=100)
    2.0
    """

    start: float = 5.0
    end: float = 1.0
    shape: str = "cosine"
    begin: float = 0.0
    finish: float = 1.0
    kind: ClassVar[str] = "anneal"

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            v = check_float(name, getattr(self, name), lo=0.0, lo_open=True)  # finite: annealing needs it
            object.__setattr__(self, name, v)
        if self.shape not in SHAPES:
            raise ConfigError("shape", self.shape, f"must be one of {', '.join(map(repr, SHAPES))}")
        for name in ("begin", "finish"):
            object.__setattr__(self, name, check_float(name, getattr(self, name), lo=0.0, hi=1.0))
        if self.finish <= self.begin:
            raise ConfigError("finish", self.finish, f"must be > begin={self.begin}")

    def _shaped(self, x: Any, cos: Callable[[Any], Any], exp: Callable[[Any], Any]) -> Any:
        """τ at progress x ∈ [0, 1] (a float with math's cos/exp, or an array with numpy's)."""
        if self.shape == "linear":
            return self.start + (self.end - self.start) * x
        if self.shape == "cosine":
            return self.end + (self.start - self.end) * 0.5 * (1.0 + cos(math.pi * x))
        return exp(math.log(self.start) + (math.log(self.end) - math.log(self.start)) * x)

    def tau(self, step: int, ctx: Context) -> float:
        x = (step / ctx.total_steps - self.begin) / (self.finish - self.begin)
        t = self._shaped(min(max(x, 0.0), 1.0), math.cos, math.exp)
        # rounding can step just outside [min, max] of the ends (e.g. exp(log 1e-320) → 0): clamp
        return min(max(t, min(self.start, self.end)), max(self.start, self.end))

    def probs(self, step: int, ctx: Context) -> np.ndarray:
        return ctx.temperature(self.tau(step, ctx))

    def taus(self, steps: np.ndarray, total_steps: int) -> np.ndarray:
        """τ at every step of ``steps`` (vectorised `tau`; equal to it up to rounding)."""
        x = np.clip((steps / total_steps - self.begin) / (self.finish - self.begin), 0.0, 1.0)
        t = self._shaped(x, np.cos, np.exp)
        return np.clip(t, min(self.start, self.end), max(self.start, self.end))

    def probs_rows(self, start: int, stop: int, ctx: Context) -> np.ndarray:
        """p ∝ n^(1/τ(s)) for s in [start, stop), one vectorised pass in log space."""
        tau = self.taus(np.arange(start, stop, dtype=np.float64), ctx.total_steps)
        logn = np.log(np.asarray(ctx.sizes, dtype=np.float64))
        logits = (logn - logn.max())[None, :] / tau[:, None]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def breakpoints(self, ctx: Context) -> tuple[int, ...] | None:
        return None
