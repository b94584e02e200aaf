"""Schedules that read more than the step: `OrderMatters` (a domain subset first),
`UniMaxDynamic` (realised counts) and `Adaptive` (recorded events).

Counts and events live in the sampler state, so the stream stays a pure function of
(seed, config, events, step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from coolmix.distributions import Distribution, Temperature, as_distribution
from coolmix.errors import ConfigError
from coolmix.schedules._base import Context, Schedule, _under, as_schedule, check_at, register
from coolmix.schedules._static import Constant, validate_dist
from coolmix.validate import check_float, check_int

__all__ = ["Adaptive", "OrderMatters", "UniMaxDynamic"]


@register
@dataclass(frozen=True)
class OrderMatters(Schedule):
    """Choi et al. 2023: train on the ``high`` domains only (proportionally), then ``then`` from ``at``.

    Before ``at``: p_i = n_i / Σ_{j∈high} n_j for i in ``high``, else 0.
    """

    high: tuple[str, ...] = ()
    at: float | int = 0.5
    then: Distribution = field(default_factory=lambda: Temperature(1.0))
    kind: ClassVar[str] = "order_matters"

    def __post_init__(self) -> None:
        high = self.high
        if isinstance(high, str) or not isinstance(high, (tuple, list)) or not high:
            raise ConfigError("high", high, "must be a non-empty list of domain names")
        if not all(isinstance(h, str) and h for h in high):
            raise ConfigError("high", list(high), "domain names must be non-empty strings")
        object.__setattr__(self, "high", tuple(high))
        object.__setattr__(self, "at", check_at(self.at, "at", lo=1))
        object.__setattr__(self, "then", as_distribution(self.then, "then"))

    def validate(self, names: tuple[str, ...]) -> None:
        unknown = [h for h in self.high if h not in names]
        if unknown:
            raise ConfigError("high", unknown[0], f"unknown domain; known: {', '.join(names)}")
        validate_dist(self.then, names, "then")

    def check(self, total_steps: int) -> None:
        """``at`` must fall inside the run (at or past ``total_steps``, ``then`` would never start)."""
        ctx = Context(("_",), np.ones(1), check_int("total_steps", total_steps, lo=1))
        at = ctx.boundary(self.at)
        if at >= total_steps or at < 1:
            why = f"resolves to step {at}; must be in [1, total_steps={total_steps}) so both phases run"
            raise ConfigError("at", self.at, why)

    def probs(self, step: int, ctx: Context) -> np.ndarray:
        if step >= ctx.boundary(self.at):
            return ctx.dist(self.then)
        return ctx.memo(("order_matters", self.high), lambda: self._high_only(ctx))

    def _high_only(self, ctx: Context) -> np.ndarray:
        p = np.where([n in self.high for n in ctx.names], ctx.sizes / ctx.sizes.max(), 0.0)
        return p / p.sum()

    def tau(self, step: int, ctx: Context) -> float | None:
        return self.then.tau if step >= ctx.boundary(self.at) else 1.0

    def breakpoints(self, ctx: Context) -> tuple[int, ...] | None:
        return (ctx.boundary(self.at),)


@register
@dataclass(frozen=True)
class UniMaxDynamic(Schedule):
    """Li et al.'s App. A recast of UniMax: uniform over domains until a domain has been drawn
    ``max_epochs`` × its size, then it is dropped; when all are exhausted, fall back to ``after``.

    p_i(t) = 1[seen_i < max_epochs · n_i] / #alive. Reads the sampler's realised counts
    (``ctx.seen``), so the sampler must pass them; without counts it is uniform.
    """

    max_epochs: float = 4.0
    after: Distribution = field(default_factory=lambda: Temperature(1.0))
    kind: ClassVar[str] = "unimax_dynamic"

    def __post_init__(self) -> None:
        cap = check_float("max_epochs", self.max_epochs, lo=0.0, lo_open=True)
        object.__setattr__(self, "max_epochs", cap)
        object.__setattr__(self, "after", as_distribution(self.after, "after"))

    @property
    def needs_counts(self) -> bool:
        return True

    def validate(self, names: tuple[str, ...]) -> None:
        validate_dist(self.after, names, "after")

    def probs(self, step: int, ctx: Context) -> np.ndarray:
        if ctx.seen is None:
            return ctx.temperature(math.inf)
        alive = ctx.seen < self.max_epochs * ctx.sizes
        if not alive.any():
            return ctx.dist(self.after)
        return alive / alive.sum()

    def tau(self, step: int, ctx: Context) -> float | None:
        return math.inf

    def breakpoints(self, ctx: Context) -> tuple[int, ...] | None:
        return None


@register
@dataclass(frozen=True)
class Adaptive(Schedule):
    """``hot`` until the first recorded event named ``on``, then ``cold`` (adaptive Cooldown).

    The switch step comes from the sampler's recorded events, so resume replays it exactly.
    ``cold`` sees the global step (an `Anneal` cold schedule should use fractions accordingly).
    ``hot`` and ``cold`` are schedules, or anything `schedule_from_dict` reads (a τ number...).
    """

    hot: Schedule = field(default_factory=lambda: Constant(Temperature(5.0)))
    cold: Schedule = field(default_factory=lambda: Constant(Temperature(1.0)))
    on: str = "cooldown"
    kind: ClassVar[str] = "adaptive"

    def __post_init__(self) -> None:
        for name in ("hot", "cold"):
            try:
                object.__setattr__(self, name, as_schedule(getattr(self, name), name))
            except ConfigError as e:
                raise _under(name, e) from None
        if not isinstance(self.on, str) or not self.on:
            raise ConfigError("on", self.on, "must be a non-empty event name")

    @property
    def needs_counts(self) -> bool:
        return self.hot.needs_counts or self.cold.needs_counts

    def _active(self, step: int, ctx: Context) -> Schedule:
        s = ctx.first_event(self.on)
        return self.cold if s is not None and step >= s else self.hot

    def probs(self, step: int, ctx: Context) -> np.ndarray:
        return self._active(step, ctx).probs(step, ctx)

    def tau(self, step: int, ctx: Context) -> float | None:
        return self._active(step, ctx).tau(step, ctx)

    def breakpoints(self, ctx: Context) -> tuple[int, ...] | None:
        s = ctx.first_event(self.on)
        hot, cold = self.hot.breakpoints(ctx), self.cold.breakpoints(ctx)
        if hot is None or cold is None:
            return None
        return tuple(sorted({*hot, *cold, *(() if s is None else (s,))}))

    def validate(self, names: tuple[str, ...]) -> None:
        for name in ("hot", "cold"):
            try:
                getattr(self, name).validate(names)
            except ConfigError as e:
                raise _under(name, e) from None

    def check(self, total_steps: int) -> None:
        for name in ("hot", "cold"):
            try:
                getattr(self, name).check(total_steps)
            except ConfigError as e:
                raise _under(name, e) from None
