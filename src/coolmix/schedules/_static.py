"""Piecewise-constant schedules: `Constant`, `Stages` (a join), and the joins people name:
`Cooldown` (Li et al. 2025's single switch) and `Dense` (a geometric staircase).

Boundaries given as floats in (0, 1) are fractions of ``total_steps``; ints are absolute steps.
Every joined piece sees the *global* step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np

from coolmix.distributions import (
    Distribution,
    Explicit,
    Proportional,
    Temperature,
    as_distribution,
    check_tau,
)
from coolmix.errors import ConfigError
from coolmix.schedules._base import Context, Schedule, check_at, register
from coolmix.validate import check_float, check_int

__all__ = ["Constant", "Cooldown", "Dense", "Stages", "validate_dist"]


def validate_dist(d: Distribution, names: tuple[str, ...], field: str) -> None:
    """A distribution's domain names must be the mixture's (explicit weights name domains)."""
    if isinstance(d, Explicit):
        d.check_names(names, f"{field}.weights")


@register
@dataclass(frozen=True)
class Constant(Schedule):
    """One distribution for the whole run (static τ, UniMax, explicit weights...).

    >>> Constant(Temperature(5)).to_dict()
    {'kind': 'constant', 'dist': {'kind': 'temperature', 'tau': 5.0}}
    """

    dist: Distribution = field(default_factory=Proportional)
    kind: ClassVar[str] = "constant"

    def __post_init__(self) -> None:
        object.__setattr__(self, "dist", as_distribution(self.dist, "dist"))

    def probs(self, step: int, ctx: Context) -> np.ndarray:
        return ctx.dist(self.dist)

    def tau(self, step: int, ctx: Context) -> float | None:
        return self.dist.tau

    def breakpoints(self, ctx: Context) -> tuple[int, ...] | None:
        return ()  # constant: p never changes

    def validate(self, names: tuple[str, ...]) -> None:
        validate_dist(self.dist, names, "dist")

    @classmethod
    def from_dict(cls, d: Any, field: str = "schedule") -> Schedule:
        """Also accepts ``tau = …`` or ``alpha = …`` for ``dist = …`` (``{"kind": "constant", "tau": 5}``)."""
        knobs = {k: d[k] for k in ("tau", "alpha") if k in d}
        if knobs and "dist" not in d:
            d = {**{k: v for k, v in d.items() if k not in knobs}, "dist": knobs}
        return super().from_dict(d, field)


@register
@dataclass(frozen=True)
class Stages(Schedule):
    """Piecewise-constant join: phase k uses ``dists[k]`` from ``starts[k]`` (first start is 0).

    Starts must strictly increase (after resolving fractions), e.g. the paper's 1→5 ablation:
    ``Stages(starts=(0, 0.5), dists=(Temperature(1), Temperature(5)))``.
    """

    starts: tuple[float | int, ...] = (0,)
    dists: tuple[Distribution, ...] = (Proportional(),)
    kind: ClassVar[str] = "stages"

    def __post_init__(self) -> None:
        starts, dists = tuple(self.starts), tuple(self.dists)
        if not starts or len(starts) != len(dists):
            raise ConfigError("starts", len(starts), f"need one start per phase ({len(dists)} dists)")
        if starts[0] != 0 or isinstance(starts[0], bool):
            raise ConfigError("starts[0]", starts[0], "the first phase must start at 0")
        checked = (0, *(check_at(a, f"starts[{i + 1}]") for i, a in enumerate(starts[1:])))
        if all(isinstance(a, float) or a == 0 for a in checked) or all(isinstance(a, int) for a in checked):
            for i in range(1, len(checked)):  # comparable without total_steps: check now
                if float(checked[i]) <= float(checked[i - 1]):
                    raise ConfigError(self._start_field(i), checked[i], "phases out of order")
        object.__setattr__(self, "starts", checked)
        dists = tuple(as_distribution(d, f"dists[{i}]") for i, d in enumerate(dists))
        object.__setattr__(self, "dists", dists)

    def _start_field(self, i: int) -> str:
        """The config key that set ``starts[i]`` (subclasses derive starts from other knobs)."""
        return f"starts[{i}]"

    def check(self, total_steps: int) -> None:
        """Starts must strictly increase once fractions become steps (mixed ints and fractions),
        and lie before ``total_steps`` (a phase starting at or after the end would never run)."""
        ctx = Context(("_",), np.ones(1), check_int("total_steps", total_steps, lo=1))
        steps = [ctx.boundary(a) for a in self.starts]
        for i in range(1, len(steps)):
            if steps[i] >= total_steps:
                why = f"at or past total_steps={total_steps}: this phase would never start"
                raise ConfigError(self._start_field(i), self.starts[i], why)
            if steps[i] <= steps[i - 1]:
                raise ConfigError(
                    self._start_field(i),
                    self.starts[i],
                    f"phases out of order at total_steps={total_steps} (step {steps[i]} <= {steps[i - 1]})",
                )

    def _phase(self, step: int, ctx: Context) -> int:
        k = 0
        for i, a in enumerate(self.starts):
            if step >= ctx.boundary(a):
                k = i
        return k

    def probs(self, step: int, ctx: Context) -> np.ndarray:
        return ctx.dist(self.dists[self._phase(step, ctx)])

    def tau(self, step: int, ctx: Context) -> float | None:
        return self.dists[self._phase(step, ctx)].tau

    def breakpoints(self, ctx: Context) -> tuple[int, ...] | None:
        return tuple(ctx.boundary(a) for a in self.starts[1:])

    def validate(self, names: tuple[str, ...]) -> None:
        for i, d in enumerate(self.dists):
            validate_dist(d, names, f"dists[{i}]")


@register
@dataclass(frozen=True)
class Cooldown(Stages):
    """Li et al. 2025's Cooldown: τ = ``hot`` until ``at`` (fraction or step ≥ 1), then τ = ``cold``.

    A two-phase `Stages` (so every Stages consumer handles it) that serialises as its own knobs.

    >>> Cooldown().tau_at(49, total_steps=100), Cooldown().tau_at(50, total_steps=100)
    (5.0, 1.0)
    """

    starts: tuple[float | int, ...] = field(init=False, repr=False, default=(0,))
    dists: tuple[Distribution, ...] = field(init=False, repr=False, default=(Proportional(),))
    hot: float = 5.0
    cold: float = 1.0
    at: float | int = 0.5
    kind: ClassVar[str] = "cooldown"

    def __post_init__(self) -> None:
        hot, cold = check_tau(self.hot, "hot"), check_tau(self.cold, "cold")
        at = check_at(self.at, "at", lo=1)  # at step 0 there would be no hot phase
        for name, value in (("hot", hot), ("cold", cold), ("at", at), ("starts", (0, at))):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "dists", (Temperature(hot), Temperature(cold)))

    def _start_field(self, i: int) -> str:
        return "at"


@register
@dataclass(frozen=True)
class Dense(Stages):
    """A "dense" decreasing schedule (Li et al. Fig. 5): ``phases`` equal steps from hot to cold.

    τ decreases geometrically from ``hot`` to ``cold`` over the first ``end`` of training; the
    last phase (τ = cold) starts at ``end``.
    """

    starts: tuple[float | int, ...] = field(init=False, repr=False, default=(0,))
    dists: tuple[Distribution, ...] = field(init=False, repr=False, default=(Proportional(),))
    hot: float = 5.0
    cold: float = 1.0
    phases: int = 5
    end: float = 0.5
    kind: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        hot = check_float("hot", self.hot, lo=0.0, lo_open=True)  # a geometric staircase: finite ends
        cold = check_float("cold", self.cold, lo=0.0, lo_open=True)
        phases = check_int("phases", self.phases, lo=2, hi=10_000)
        end = check_float("end", self.end, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        starts = (0, *[float(end * i / (phases - 1)) for i in range(1, phases)])
        if any(b <= a for a, b in pairwise(starts)):
            raise ConfigError("end", end, f"too small to hold {phases} phases")
        knobs = {"hot": hot, "cold": cold, "phases": phases, "end": end, "starts": starts}
        for name, value in knobs.items():
            object.__setattr__(self, name, value)
        taus = np.geomspace(hot, cold, phases)
        object.__setattr__(self, "dists", tuple(Temperature(float(t)) for t in taus))

    def _start_field(self, i: int) -> str:
        return "phases"

