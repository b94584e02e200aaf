"""Temperature schedules: values with ``probs_at(step)``, pure functions of the step.

A schedule is a small frozen value. The sampler, the planner, the plots and the report all call
the same function, so there is no hidden counter. Two inputs besides the step are explicit:
recorded *events* (an adaptive switch, Li et al.'s Cooldown triggered by a detector) and, for
UniMax-dynamic only, the sampler's realised per-domain counts. Both live in the sampler state,
so the stream stays a pure function of (seed, config, events, step).

Boundaries given as floats in [0, 1) are fractions of ``total_steps``; ints are absolute steps.
Every joined piece sees the *global* step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from coolmix.distributions import (
    Distribution,
    Proportional,
    Temperature,
    check_tau,
    distribution_from_dict,
    temperature_array,
)
from coolmix.errors import ConfigError
from coolmix.mixture import check_sizes, to_mapping
from coolmix.types import Sizes

__all__ = [
    "SCHEDULES",
    "Adaptive",
    "Anneal",
    "Constant",
    "Context",
    "Cooldown",
    "Event",
    "OrderMatters",
    "Schedule",
    "Stages",
    "UniMaxDynamic",
    "dense_decreasing",
    "schedule_from_dict",
]


@dataclass(frozen=True)
class Event:
    """Something that happened at ``step`` and changes the schedule from then on (e.g. "cooldown")."""

    step: int
    name: str
    info: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"step": int(self.step), "name": self.name, "info": dict(self.info)}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Event:
        try:
            return Event(int(d["step"]), str(d["name"]), dict(d.get("info", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError("events", d, f"malformed event ({e})") from None


class Context:
    """What a schedule may read besides the step: the mixture, run length, events, counts.

    ``seen`` is the number of items drawn per domain *before* the step (aligned array), used
    only by exposure-driven schedules. Temperature probabilities are memoised per τ.
    """

    def __init__(
        self,
        names: tuple[str, ...],
        sizes: np.ndarray,
        total_steps: int,
        events: Sequence[Event] = (),
        seen: np.ndarray | None = None,
    ) -> None:
        self.names = names
        self.sizes = sizes
        self.total_steps = total_steps
        self.events = tuple(events)
        self.seen = seen
        self._cache: dict[Any, np.ndarray] = {}

    @staticmethod
    def of(sizes: Sizes, total_steps: int, events: Sequence[Event] = ()) -> Context:
        names, arr = check_sizes(sizes)
        return Context(names, arr, _check_total(total_steps), events)

    def dist(self, d: Distribution) -> np.ndarray:
        """d's probabilities on this mixture (memoised; callers must not mutate the result)."""
        p = self._cache.get(d)
        if p is None:
            p = d.array(self.names, self.sizes)
            self._cache[d] = p
        return p

    def temperature(self, tau: float) -> np.ndarray:
        key = ("tau", tau)
        p = self._cache.get(key)
        if p is None:
            p = temperature_array(self.sizes, tau)
            if len(self._cache) < 4096:
                self._cache[key] = p
        return p

    def boundary(self, at: float | int) -> int:
        """A boundary as an absolute step: floats are fractions of total_steps, ints are steps."""
        if isinstance(at, float):
            return math.floor(at * self.total_steps + 1e-9)
        return int(at)

    def first_event(self, name: str) -> int | None:
        steps = [e.step for e in self.events if e.name == name]
        return min(steps) if steps else None


def _check_total(total_steps: Any) -> int:
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps <= 0:
        raise ConfigError("total_steps", total_steps, "must be an integer > 0")
    return int(total_steps)


class Schedule:
    """Base: subclasses implement ``probs`` (arrays) and ``to_dict``; the public wrappers map names."""

    kind: ClassVar[str] = ""
    needs_counts: ClassVar[bool] = False

    def probs(self, step: int, ctx: Context) -> np.ndarray:
        raise NotImplementedError

    def tau(self, step: int, ctx: Context) -> float | None:
        """The temperature in force at ``step``, or None where it is not a temperature."""
        return None

    def breakpoints(self, ctx: Context) -> tuple[int, ...]:
        """Steps where a piecewise-constant schedule changes; () if constant; None if continuous."""
        return ()

    def validate(self, names: tuple[str, ...]) -> None:
        """Check domain names the schedule refers to (ConfigError for unknown ones)."""

    def probs_at(
        self, step: int, sizes: Sizes, total_steps: int, events: Sequence[Event] = ()
    ) -> dict[str, float]:
        """Probabilities in force at ``step`` as a mapping.

        >>> Cooldown(hot=5, cold=1, at=0.5).probs_at(10, {"a": 3, "b": 1}, total_steps=100)["b"]
        0.4452893186621929
        """
        ctx = Context.of(sizes, total_steps, events)
        self.validate(ctx.names)
        return to_mapping(ctx.names, self.probs(int(step), ctx))

    def tau_at(self, step: int, total_steps: int, events: Sequence[Event] = ()) -> float | None:
        """The temperature in force at ``step`` (independent of sizes)."""
        ctx = Context(("_",), np.ones(1), _check_total(total_steps), events)
        return self.tau(int(step), ctx)

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


def _as_dist(d: Distribution | float | str | Mapping[str, Any], field: str) -> Distribution:
    return d if isinstance(d, Distribution) else distribution_from_dict(d, field)


def _check_at(at: Any, field: str) -> float | int:
    """A boundary: a float fraction in (0, 1) or an int step >= 0."""
    if isinstance(at, bool) or not isinstance(at, (int, float, np.integer, np.floating)):
        raise ConfigError(field, at, "must be a fraction in (0, 1) or an integer step")
    if isinstance(at, (float, np.floating)):
        if not (0.0 < float(at) < 1.0):
            raise ConfigError(field, at, "a fractional boundary must lie in (0, 1)")
        return float(at)
    if at < 0:
        raise ConfigError(field, at, "a step boundary must be >= 0")
    return int(at)


@dataclass(frozen=True)
class Constant(Schedule):
    """One distribution for the whole run (static τ, UniMax, explicit weights...)."""

    dist: Distribution = field(default_factory=Proportional)
    kind: ClassVar[str] = "constant"

    def __post_init__(self) -> None:
        object.__setattr__(self, "dist", _as_dist(self.dist, "dist"))

    def probs(self, step: int, ctx: Context) -> np.ndarray:
        return ctx.dist(self.dist)

    def tau(self, step: int, ctx: Context) -> float | None:
        return self.dist.tau

    def validate(self, names: tuple[str, ...]) -> None:
        _validate_dist(self.dist, names)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "dist": self.dist.to_dict()}


def _validate_dist(d: Distribution, names: tuple[str, ...]) -> None:
    weights = getattr(d, "weights", None)
    if weights is not None:
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ConfigError("weights", unknown[0], f"unknown domain; known: {', '.join(names)}")


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
            raise ConfigError("stages", len(dists), "need one start per phase and at least one phase")
        if starts[0] != 0:
            raise ConfigError("stages.starts[0]", starts[0], "the first phase must start at 0")
        checked = (0, *(_check_at(a, f"stages.starts[{i + 1}]") for i, a in enumerate(starts[1:])))
        if all(isinstance(a, float) or a == 0 for a in checked) or all(isinstance(a, int) for a in checked):
            keys = [float(a) for a in checked]
            for i in range(1, len(keys)):
                if keys[i] <= keys[i - 1]:
                    raise ConfigError(f"stages.starts[{i}]", checked[i], "phases out of order")
        object.__setattr__(self, "starts", checked)
        object.__setattr__(
            self, "dists", tuple(_as_dist(d, f"stages.dists[{i}]") for i, d in enumerate(dists))
        )

    def check_resolved(self, total_steps: int) -> None:
        """Starts must strictly increase once fractions become steps (mixed ints and fractions)."""
        ctx = Context(("_",), np.ones(1), total_steps)
        steps = [ctx.boundary(a) for a in self.starts]
        for i in range(1, len(steps)):
            if steps[i] <= steps[i - 1]:
                raise ConfigError(
                    f"stages.starts[{i}]",
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

    def breakpoints(self, ctx: Context) -> tuple[int, ...]:
        return tuple(ctx.boundary(a) for a in self.starts[1:])

    def validate(self, names: tuple[str, ...]) -> None:
        for d in self.dists:
            _validate_dist(d, names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "starts": list(self.starts),
            "dists": [d.to_dict() for d in self.dists],
        }


def Cooldown(hot: float = 5.0, cold: float = 1.0, at: float | int = 0.5) -> Stages:
    """Li et al. 2025's Cooldown: τ = ``hot`` until ``at`` (fraction or step), then τ = ``cold``.

    >>> Cooldown().tau_at(49, total_steps=100), Cooldown().tau_at(50, total_steps=100)
    (5.0, 1.0)
    """
    return _CooldownStages(hot=check_tau(hot, "hot"), cold=check_tau(cold, "cold"), at=_check_at(at, "at"))


@dataclass(frozen=True, init=False)
class _CooldownStages(Stages):
    """A two-phase Stages that serialises as ``kind = "cooldown"``."""

    hot: float = 5.0
    cold: float = 1.0
    at: float | int = 0.5
    kind: ClassVar[str] = "cooldown"

    def __init__(self, hot: float, cold: float, at: float | int) -> None:
        object.__setattr__(self, "hot", hot)
        object.__setattr__(self, "cold", cold)
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "starts", (0, at))
        object.__setattr__(self, "dists", (Temperature(hot), Temperature(cold)))
        Stages.__post_init__(self)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "cooldown", "hot": _num(self.hot), "cold": _num(self.cold), "at": self.at}


def _num(x: float) -> float | str:
    return "inf" if math.isinf(x) else x


def dense_decreasing(hot: float = 5.0, cold: float = 1.0, phases: int = 5, end: float = 0.5) -> Stages:
    """A "dense" decreasing schedule (Li et al. Fig. 5): ``phases`` equal steps from hot to cold.

    τ decreases geometrically from ``hot`` to ``cold`` over the first ``end`` of training; the
    last phase (τ = cold) starts at ``end``.
    """
    hot, cold = check_tau(hot, "hot"), check_tau(cold, "cold")
    if isinstance(phases, bool) or not isinstance(phases, int) or not 2 <= phases <= 10_000:
        raise ConfigError("phases", phases, "must be an integer in [2, 10000]")
    end = float(_check_at(float(end), "end"))
    taus = np.geomspace(hot, cold, phases)
    starts = (0, *[float(end * i / (phases - 1)) for i in range(1, phases)])
    return Stages(starts=starts, dists=tuple(Temperature(float(t)) for t in taus))


@dataclass(frozen=True)
class Anneal(Schedule):
    """Smooth τ(t) from ``start`` to ``end`` between fractions ``begin`` and ``finish`` of training.

    ``shape``: ``linear`` and ``cosine`` interpolate τ; ``exponential`` interpolates log τ. Before
    ``begin`` τ = start, after ``finish`` τ = end. (τ = inf is not allowed at either end.)
    """

    start: float = 5.0
    end: float = 1.0
    shape: str = "cosine"
    begin: float = 0.0
    finish: float = 1.0
    kind: ClassVar[str] = "anneal"

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            v = check_tau(getattr(self, name), name)
            if math.isinf(v):
                raise ConfigError(name, v, "annealing needs a finite temperature")
            object.__setattr__(self, name, v)
        if self.shape not in ("linear", "cosine", "exponential"):
            raise ConfigError("shape", self.shape, "must be 'linear', 'cosine' or 'exponential'")
        for name in ("begin", "finish"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ConfigError(name, v, "must be a fraction in [0, 1]")
        if self.finish <= self.begin:
            raise ConfigError("finish", self.finish, f"must be > begin={self.begin}")

    def tau(self, step: int, ctx: Context) -> float:
        x = (step / ctx.total_steps - self.begin) / (self.finish - self.begin)
        x = min(max(x, 0.0), 1.0)
        if self.shape == "linear":
            return self.start + (self.end - self.start) * x
        if self.shape == "cosine":
            return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * x))
        return math.exp(math.log(self.start) + (math.log(self.end) - math.log(self.start)) * x)

    def probs(self, step: int, ctx: Context) -> np.ndarray:
        return ctx.temperature(self.tau(step, ctx))

    def breakpoints(self, ctx: Context) -> None:  # type: ignore[override]
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "shape": self.shape,
            "begin": self.begin,
            "finish": self.finish,
        }


@dataclass(frozen=True)
class OrderMatters(Schedule):
    """Choi et al. 2023: train on the ``high`` domains only (proportionally), then ``then`` from ``at``."""

    high: tuple[str, ...] = ()
    at: float | int = 0.5
    then: Distribution = field(default_factory=lambda: Temperature(1.0))
    kind: ClassVar[str] = "order_matters"

    def __post_init__(self) -> None:
        if isinstance(self.high, str) or not self.high:
            raise ConfigError("high", self.high, "must be a non-empty list of domain names")
        object.__setattr__(self, "high", tuple(self.high))
        object.__setattr__(self, "at", _check_at(self.at, "at"))
        object.__setattr__(self, "then", _as_dist(self.then, "then"))

    def validate(self, names: tuple[str, ...]) -> None:
        unknown = [h for h in self.high if h not in names]
        if unknown:
            raise ConfigError("high", unknown[0], f"unknown domain; known: {', '.join(names)}")
        _validate_dist(self.then, names)

    def probs(self, step: int, ctx: Context) -> np.ndarray:
        if step >= ctx.boundary(self.at):
            return ctx.dist(self.then)
        key = ("order_matters", self.high)
        p = ctx._cache.get(key)
        if p is None:
            mask = np.array([n in self.high for n in ctx.names])
            p = np.where(mask, ctx.sizes, 0.0)
            p = p / p.sum()
            ctx._cache[key] = p
        return p

    def tau(self, step: int, ctx: Context) -> float | None:
        return self.then.tau if step >= ctx.boundary(self.at) else 1.0

    def breakpoints(self, ctx: Context) -> tuple[int, ...]:
        return (ctx.boundary(self.at),)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "high": list(self.high),
            "at": self.at,
            "then": self.then.to_dict(),
        }


@dataclass(frozen=True)
class UniMaxDynamic(Schedule):
    """Li et al.'s App. A recast of UniMax: uniform over domains until a domain has been drawn
    ``max_epochs`` × its size, then it is dropped; when all are exhausted, fall back to ``after``.

    Reads the sampler's realised counts (``ctx.seen``), so the sampler must pass them.
    """

    max_epochs: float = 4.0
    after: Distribution = field(default_factory=lambda: Temperature(1.0))
    kind: ClassVar[str] = "unimax_dynamic"
    needs_counts: ClassVar[bool] = True

    def __post_init__(self) -> None:
        v = self.max_epochs
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
            raise ConfigError("max_epochs", v, "must be a finite number > 0")
        object.__setattr__(self, "after", _as_dist(self.after, "after"))

    def probs(self, step: int, ctx: Context) -> np.ndarray:
        if ctx.seen is None:
            return ctx.temperature(math.inf)
        alive = ctx.seen < self.max_epochs * ctx.sizes
        if not alive.any():
            return ctx.dist(self.after)
        return alive / alive.sum()

    def tau(self, step: int, ctx: Context) -> float | None:
        return math.inf

    def breakpoints(self, ctx: Context) -> None:  # type: ignore[override]
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_epochs": self.max_epochs, "after": self.after.to_dict()}


@dataclass(frozen=True)
class Adaptive(Schedule):
    """``hot`` until the first recorded event named ``on``, then ``cold`` (adaptive Cooldown).

    The switch step comes from the sampler's recorded events, so resume replays it exactly.
    ``cold`` sees the global step (an `Anneal` cold schedule should use fractions accordingly).
    """

    hot: Schedule = field(default_factory=lambda: Constant(Temperature(5.0)))
    cold: Schedule = field(default_factory=lambda: Constant(Temperature(1.0)))
    on: str = "cooldown"
    kind: ClassVar[str] = "adaptive"

    def __post_init__(self) -> None:
        for name in ("hot", "cold"):
            v = getattr(self, name)
            if not isinstance(v, Schedule):
                object.__setattr__(self, name, _as_schedule(v, name))
        if not isinstance(self.on, str) or not self.on:
            raise ConfigError("on", self.on, "must be a non-empty event name")

    @property
    def needs_counts(self) -> bool:  # type: ignore[override]
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
        self.hot.validate(names)
        self.cold.validate(names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "hot": self.hot.to_dict(),
            "cold": self.cold.to_dict(),
            "on": self.on,
        }


def _as_schedule(v: Any, field: str) -> Schedule:
    if isinstance(v, Schedule):
        return v
    if isinstance(v, Mapping) and v.get("kind") in SCHEDULES:
        return schedule_from_dict(v, field)
    return Constant(_as_dist(v, field))


SCHEDULES: dict[str, Any] = {
    "constant": Constant,
    "stages": Stages,
    "cooldown": Cooldown,
    "anneal": Anneal,
    "dense": dense_decreasing,
    "order_matters": OrderMatters,
    "unimax_dynamic": UniMaxDynamic,
    "adaptive": Adaptive,
}


def schedule_from_dict(d: Mapping[str, Any] | float | str, field: str = "schedule") -> Schedule:
    """Config value -> Schedule. A bare τ number means Constant(Temperature(τ)).

    >>> schedule_from_dict({"kind": "cooldown", "hot": 5, "cold": 1, "at": 0.5}).tau_at(0, 10)
    5.0
    """
    if not isinstance(d, Mapping):
        return Constant(_as_dist(d, field))
    kind = d.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise ConfigError(f"{field}.kind", kind, f"must be one of {', '.join(SCHEDULES)}")
    if kind not in SCHEDULES:
        if kind in (None, "temperature", "proportional", "uniform", "explicit", "unimax"):
            return Constant(_as_dist(d, field))
        raise ConfigError(f"{field}.kind", kind, f"must be one of {', '.join(SCHEDULES)}")
    args = {k: v for k, v in d.items() if k != "kind"}
    try:
        if kind == "constant":
            return Constant(_as_dist(args.pop("dist", args.pop("tau", 1.0)), f"{field}.dist"), **args)
        if kind == "stages":
            starts = args.pop("starts", None)
            dists = args.pop("dists", None)
            if not isinstance(starts, Sequence) or not isinstance(dists, Sequence) or args:
                raise ConfigError(field, dict(d), "stages need 'starts' and 'dists' lists only")
            return Stages(tuple(starts), tuple(_as_dist(x, f"{field}.dists") for x in dists))
        if kind == "order_matters" and "then" in args:
            args["then"] = _as_dist(args["then"], f"{field}.then")
        if kind == "unimax_dynamic" and "after" in args:
            args["after"] = _as_dist(args["after"], f"{field}.after")
        if kind == "adaptive":
            for k in ("hot", "cold"):
                if k in args:
                    args[k] = _as_schedule(args[k], f"{field}.{k}")
        for k in ("hot", "cold", "start", "end"):
            if kind in ("cooldown", "dense", "anneal") and args.get(k) == "inf":
                args[k] = math.inf
        if kind == "order_matters" and "high" in args and isinstance(args["high"], list):
            args["high"] = tuple(args["high"])
        return SCHEDULES[kind](**args)
    except TypeError as e:
        raise ConfigError(field, dict(d), f"bad arguments for kind={kind!r}: {e}") from None
