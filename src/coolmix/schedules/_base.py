"""The `Schedule` base, its `Context`, recorded `Event`s, and the kind registry `SCHEDULES`.

A schedule is a small frozen dataclass that owns itself: it validates its knobs in
``__post_init__``, checks what depends on the run length in `Schedule.check`, and serialises
through `Schedule.to_dict` / `Schedule.from_dict`, both derived from its dataclass fields. So
`schedule_from_dict` is a registry lookup, and a config layer can ask `Schedule.fields` which
keys a kind takes.

Error fields are relative to the schedule's own table (``at``, ``starts[2]``, ``dist.weights``,
``hot.at``), as the config layer expects (it prefixes ``schedule.``); only a bad ``kind`` or a key
the kind does not take is named under ``field`` itself (``schedule.kind``, ``schedule.hott``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, cast

import numpy as np

from coolmix.distributions import DISTRIBUTIONS, Distribution, as_distribution, temperature_array
from coolmix.errors import ConfigError
from coolmix.mixture import check_sizes, to_mapping
from coolmix.types import Sizes
from coolmix.validate import check_float, check_int, decode_inf, encode_inf

__all__ = [
    "SCHEDULES",
    "Context",
    "Event",
    "Schedule",
    "as_schedule",
    "cuts",
    "register",
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
    only by exposure-driven schedules. Probabilities that depend only on the mixture are memoised
    per key through `memo` (bounded, so a continuous anneal cannot grow it without limit).
    """

    MEMO_LIMIT: ClassVar[int] = 4096

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
        self._memo: dict[Any, np.ndarray] = {}

    @staticmethod
    def of(sizes: Sizes, total_steps: int, events: Sequence[Event] = ()) -> Context:
        names, arr = check_sizes(sizes)
        return Context(names, arr, check_int("total_steps", total_steps, lo=1), events)

    def memo(self, key: Any, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()`` once per hashable ``key`` on this mixture (callers must not mutate it)."""
        p = self._memo.get(key)
        if p is None:
            p = compute()
            if len(self._memo) < self.MEMO_LIMIT:
                self._memo[key] = p
        return p

    def dist(self, d: Distribution) -> np.ndarray:
        """d's probabilities on this mixture (memoised)."""
        return self.memo(d, lambda: d.array(self.names, self.sizes))

    def temperature(self, tau: float) -> np.ndarray:
        """p ∝ n^(1/τ) on this mixture (memoised per τ)."""
        return self.memo(("tau", tau), lambda: temperature_array(self.sizes, tau))

    def boundary(self, at: float | int) -> int:
        """A boundary as an absolute step: floats are fractions of total_steps, ints are steps."""
        if isinstance(at, float):
            return math.floor(at * self.total_steps + 1e-9)
        return int(at)

    def first_event(self, name: str) -> int | None:
        steps = [e.step for e in self.events if e.name == name]
        return min(steps) if steps else None


def check_at(at: Any, field: str, lo: int = 0) -> float | int:
    """A boundary: a float fraction in (0, 1) or an int step >= ``lo``."""
    if isinstance(at, (float, np.floating)):
        return check_float(field, at, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    if isinstance(at, bool) or not isinstance(at, (int, np.integer)):
        raise ConfigError(field, at, "must be a fraction in (0, 1) or an integer step")
    return check_int(field, at, lo=lo)


def _under(prefix: str, e: ConfigError) -> ConfigError:
    """``e`` with its field put under ``prefix`` (unless it already is)."""
    if not prefix or e.field == prefix or e.field.startswith((f"{prefix}.", f"{prefix}[")):
        return e
    return ConfigError(f"{prefix}.{e.field}", e.value, e.why)


class Schedule:
    """Base: subclasses are frozen dataclasses implementing ``probs`` (arrays, aligned with names).

    Public wrappers (`probs_at`, `tau_at`) map names; `check` validates what depends on
    ``total_steps``; `fields` / `to_dict` / `from_dict` come from the dataclass fields.
    """

    kind: ClassVar[str] = ""

    def probs(self, step: int, ctx: Context) -> np.ndarray:
        raise NotImplementedError

    def probs_rows(self, start: int, stop: int, ctx: Context) -> np.ndarray:
        """p(start), …, p(stop − 1) as a (stop − start, k) array; continuous schedules override
        it with a vectorised form, so long prefix sums Σ_s p(s) (seekable streams) stay cheap."""
        rows = [self.probs(s, ctx) for s in range(start, stop)]
        return np.array(rows, dtype=np.float64).reshape(stop - start, len(ctx.names))

    def tau(self, step: int, ctx: Context) -> float | None:
        """The temperature in force at ``step``, or None where it is not a temperature."""
        return None

    @property
    def needs_counts(self) -> bool:
        """Whether p(t) reads the realised counts ``ctx.seen`` (exposure-driven schedules)."""
        return False

    def breakpoints(self, ctx: Context) -> tuple[int, ...] | None:
        """Steps where a piecewise-constant schedule changes; () if constant; None if p may change
        at any step. None by default: a kind that does not say is treated as continuous, never as
        constant (a constant or piecewise kind overrides this, and the conformance test checks it)."""
        return None

    def validate(self, names: tuple[str, ...]) -> None:
        """Check domain names the schedule refers to (ConfigError for unknown ones)."""

    def check(self, total_steps: int) -> None:
        """Check what depends on the run length (e.g. boundaries that collide once resolved)."""


    def probs_at(
        self, step: int, sizes: Sizes, total_steps: int, events: Sequence[Event] = ()
    ) -> dict[str, float]:
        """Probabilities in force at ``step`` as a mapping.

        >>> from coolmix.schedules import Cooldown
        >>> Cooldown(hot=5, cold=1, at=0.5).probs_at(10, {"a": 3, "b": 1}, total_steps=100)["b"]
        0.4452893186621929
        """
        ctx = Context.of(sizes, total_steps, events)
        self.validate(ctx.names)
        return to_mapping(ctx.names, self.probs(check_int("step", step, lo=0), ctx))

    def tau_at(self, step: int, total_steps: int, events: Sequence[Event] = ()) -> float | None:
        """The temperature in force at ``step`` (independent of sizes)."""
        ctx = Context(("_",), np.ones(1), check_int("total_steps", total_steps, lo=1), events)
        return self.tau(check_int("step", step, lo=0), ctx)

    # -- serialisation, derived from the dataclass fields -----------------------------------------

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The keys this kind's config table takes besides ``kind`` (its init dataclass fields)."""
        return tuple(f.name for f in dataclasses.fields(cast(Any, cls)) if f.init)  # dataclass subclasses

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": ..., <field>: value}``; nested values serialise themselves, ∞ as ``"inf"``."""
        return {"kind": self.kind, **{k: _encode(getattr(self, k)) for k in self.fields()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], field: str = "schedule") -> Schedule:
        """Inverse of `to_dict`; keys of another kind are named in one line."""
        args = {k: v for k, v in d.items() if k != "kind"}
        _check_keys(cls, args, field)
        return cls(**{k: _decode(v) for k, v in args.items()})


def _encode(v: Any) -> Any:
    if isinstance(v, (Distribution, Schedule)):
        return v.to_dict()
    if isinstance(v, tuple):
        return [_encode(x) for x in v]
    return encode_inf(v)


def _decode(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_decode(x) for x in v)
    return decode_inf(v)


def _check_keys(cls: type[Schedule], args: Mapping[str, Any], field: str) -> None:
    """Unknown keys → one ConfigError naming them and, where they belong to other kinds, which."""
    extra = [k for k in args if k not in cls.fields()]
    if not extra:
        return
    others = {kind: set(c.fields()) for kind, c in SCHEDULES.items() if c is not cls}
    owners = sorted(k for k, f in others.items() if set(extra) <= f) or sorted(
        k for k, f in others.items() if set(extra) & f
    )
    takes = ", ".join(cls.fields()) or "no keys"
    where = f" (keys of kind {', '.join(map(repr, owners))})" if owners else ""
    why = f"{len(extra)} key(s) {', '.join(extra)} not taken by kind={cls.kind!r}{where}; it takes {takes}"
    raise ConfigError(f"{field}.{extra[0]}", args[extra[0]], why)


S = TypeVar("S", bound=type[Schedule])

def cuts(schedule: Schedule, ctx: Context) -> tuple[int, ...] | None:
    """Where ``schedule``'s p(t) may change: its breakpoints; None when it is continuous or reads
    the realised counts (exposure-driven schedules change whenever the counts do). The one
    reading of breakpoints that seeks, the closed-form target, the planner and checks share."""
    return None if schedule.needs_counts else schedule.breakpoints(ctx)


SCHEDULES: dict[str, type[Schedule]] = {}
"""kind -> Schedule class; filled by `register` as the kinds are defined."""


def register(cls: S) -> S:
    """Class decorator: make ``cls.kind`` loadable by `schedule_from_dict`."""
    SCHEDULES[cls.kind] = cls
    return cls


def as_schedule(v: Any, field: str = "schedule") -> Schedule:
    """A `Schedule` as is; a table with a schedule ``kind`` through the registry; else a constant."""
    if isinstance(v, Schedule):
        return v
    return schedule_from_dict(v, field)


def schedule_from_dict(d: Any, field: str = "schedule") -> Schedule:
    """Config value -> Schedule: a registry lookup on ``kind``; a τ number or a distribution table
    means a constant schedule of that distribution.

    >>> schedule_from_dict({"kind": "cooldown", "hot": 5, "cold": 1, "at": 0.5}).tau_at(0, 10)
    5.0
    """
    kind = d.get("kind") if isinstance(d, Mapping) else None
    if not isinstance(d, Mapping) or kind is None or (isinstance(kind, str) and kind in DISTRIBUTIONS):
        return SCHEDULES["constant"].from_dict({"dist": as_distribution(d, field)}, field)
    cls = SCHEDULES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join([*SCHEDULES, *DISTRIBUTIONS])
        raise ConfigError(f"{field}.kind", kind, f"must be one of {known}")
    return cls.from_dict(d, field)
