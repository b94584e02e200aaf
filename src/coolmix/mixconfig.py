"""Mixture and plan configs: the ``[mixture]``, ``[schedule]`` and ``[run]`` tables as typed values.

A plan config file (TOML; YAML and JSON accepted) looks like::

    [mixture]
    sizes = { en = 2_733_000_000_000, sw = 1_000_000_000 }   # insertion order = array order
    unit = "tokens"                 # examples | documents | tokens | characters | bytes
    tokens_per_example = 1024       # or one per domain: { en = 1024, sw = 1024 }

    [schedule]                      # anything coolmix.schedule_from_dict accepts
    kind = "cooldown"
    hot = 5
    cold = 1
    at = 0.5

    [run]
    total_steps = 100_000
    batch_size = 512                # global batch, in examples
    world_size = 8                  # batch_size must be a multiple
    max_epochs = 4                  # warn when a domain is repeated more often

`load_plan_config` reads the file, applies ``a.b=value`` overrides and builds a frozen
`PlanConfig`; every problem is one `ConfigError` naming the dotted field and the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coolmix.compositions import composition_name
from coolmix.config import apply_overrides, build, load_file, to_dict
from coolmix.errors import ConfigError
from coolmix.mixture import check_sizes
from coolmix.plan import Plan, make_plan
from coolmix.sampler import MAX_BATCH
from coolmix.schedules import Schedule, schedule_from_dict
from coolmix.types import UNITS, Composition
from coolmix.validate import check_float, check_int

__all__ = ["MixtureConfig", "PlanConfig", "RunConfig", "load_plan_config", "plan_config_from_dict"]


@dataclass(frozen=True)
class MixtureConfig:
    """The ``[mixture]`` table: which domains, how big, in which unit."""

    sizes: dict[str, float] = field(default_factory=dict)
    """Domain name -> size in ``unit``; the table's order is the domains' array order."""

    unit: str = "examples"
    """What ``sizes`` count: examples, documents, tokens, characters or bytes."""

    tokens_per_example: float | dict[str, float] | None = None
    """Tokens (or ``unit``s) per example, one number or one per domain; converts token sizes to
    the example counts the sampler draws from, and example counts to tokens."""

    def __post_init__(self) -> None:
        names, _ = check_sizes(self.sizes, "mixture.sizes")
        object.__setattr__(self, "sizes", {n: _intlike(self.sizes[n]) for n in names})
        if self.unit not in UNITS:
            raise ConfigError("mixture.unit", self.unit, f"must be one of {', '.join(UNITS)}")
        tpe = self.tokens_per_example
        if tpe is None:
            return
        if isinstance(tpe, Mapping):
            unknown = [k for k in tpe if k not in self.sizes]
            if unknown:
                raise ConfigError(
                    f"mixture.tokens_per_example.{unknown[0]}",
                    tpe[unknown[0]],
                    f"unknown domain; known: {', '.join(names)}",
                )
            missing = [n for n in names if n not in tpe]
            if missing:
                raise ConfigError(
                    "mixture.tokens_per_example", dict(tpe), f"no value for domain {missing[0]!r}"
                )
            items = [(f"mixture.tokens_per_example.{n}", tpe[n]) for n in names]
        else:
            items = [("mixture.tokens_per_example", tpe)]
        for f, v in items:
            check_float(f, v, lo=0, lo_open=True)
        if isinstance(tpe, Mapping):
            object.__setattr__(self, "tokens_per_example", {n: _intlike(tpe[n]) for n in names})
        else:
            object.__setattr__(self, "tokens_per_example", _intlike(tpe))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.sizes)


@dataclass(frozen=True)
class RunConfig:
    """The ``[run]`` table: how long, how big a batch, how many ranks, which guardrails."""

    total_steps: int | None = None
    """Optimizer steps in the run (required)."""

    batch_size: int | None = None
    """Global batch size in examples, summed over ranks (required)."""

    seed: int = 0
    """Seed of the sampler's stream."""

    world_size: int = 1
    """Number of data-parallel ranks; ``batch_size`` must be a multiple of it."""

    composition: Composition = "exact"
    """``exact``: per-batch counts track B·p(t) within one item; ``seekable``: O(1) seek, within
    (1 + (k−2)·p_i)/2; ``iid``: independent draws."""

    max_epochs: float | None = None
    """Warn when a domain is repeated more than this many times over the run."""

    def __post_init__(self) -> None:
        for name in ("total_steps", "batch_size"):
            v = getattr(self, name)
            if v is None:
                raise ConfigError(f"run.{name}", v, "required")
            check_int(f"run.{name}", v, lo=1)
        if self.batch_size > MAX_BATCH:  # type: ignore[operator]
            raise ConfigError("run.batch_size", self.batch_size, f"must be <= {MAX_BATCH:,}")
        check_int("run.seed", self.seed, lo=0)
        check_int("run.world_size", self.world_size, lo=1)
        if self.batch_size < self.world_size:  # type: ignore[operator]
            raise ConfigError("run.batch_size", self.batch_size, f"smaller than world_size={self.world_size}")
        if self.batch_size % self.world_size:  # type: ignore[operator]
            raise ConfigError(
                "run.batch_size", self.batch_size, f"not divisible by world_size={self.world_size}"
            )
        composition_name("run.composition", self.composition)
        if self.max_epochs is not None:
            check_float("run.max_epochs", self.max_epochs, lo=0, lo_open=True)


_TABLE_OF = {
    "sizes": "mixture",
    "unit": "mixture",
    "tokens_per_example": "mixture",
    "total_steps": "run",
    "batch_size": "run",
    "seed": "run",
    "composition": "run",
    "max_epochs": "run",
}


def _intlike(v: float) -> float | int:
    """Whole numbers back to int (the builder reads sizes as floats), so configs round-trip."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


# Schedules built from other schedules report the inner field (Cooldown is a two-phase Stages, so
# at=0 surfaces as starts[1]); name the key the user wrote instead.
_DERIVED_FIELDS: dict[str, dict[str, str]] = {
    "cooldown": {"starts": "at", "dists[0]": "hot", "dists[1]": "cold"},
    "dense": {"starts": "end", "dists": "hot"},
}


def _user_field(schedule: Any, field: str) -> str:
    """``field`` of a schedule error as the user spelled it in the ``[schedule]`` table."""
    inner = field.removeprefix("schedule.").removeprefix("stages.")
    if not isinstance(schedule, Mapping):
        return f"schedule.{inner}" if field != "schedule" else field
    table = _DERIVED_FIELDS.get(str(schedule.get("kind")), {})
    base = inner.split("[")[0]
    for key in (inner, base):
        if key in table:
            return f"schedule.{table[key]}"
    return field if field.startswith("schedule") else f"schedule.{inner}"


@dataclass(frozen=True)
class PlanConfig:
    """A whole plan config: mixture, schedule (converted to a `Schedule`), run."""

    mixture: MixtureConfig
    """The ``[mixture]`` table."""

    schedule: Any
    """The ``[schedule]`` table (or a bare τ), anything `coolmix.schedule_from_dict` accepts."""

    run: RunConfig
    """The ``[run]`` table."""

    name: str = ""
    """Optional short name shown in outputs."""

    description: str = ""
    """Optional one-line description."""

    def __post_init__(self) -> None:
        s = self.schedule
        if isinstance(s, Mapping) and "kind" not in s and "dist" in s:
            s = {"kind": "constant", **s}  # a bare [schedule.dist] table is a constant schedule
        try:
            s = s if isinstance(s, Schedule) else schedule_from_dict(s, "schedule")
            s.validate(self.mixture.names)
        except ConfigError as e:
            raise ConfigError(_user_field(self.schedule, e.field), e.value, e.why) from None
        object.__setattr__(self, "schedule", s)

    def plan(self, **kwargs: Any) -> Plan:
        """`make_plan` for this config; keyword arguments pass through (e.g. ``simulate=False``)."""
        try:
            return self._plan(**kwargs)
        except ConfigError as e:  # name the field as it is spelled in the file
            root = e.field.split(".")[0].split("[")[0]
            if root in ("mixture", "run"):
                raise
            table = _TABLE_OF.get(root, "schedule")
            if table == "schedule":
                raise ConfigError(_user_field(self.schedule.to_dict(), e.field), e.value, e.why) from None
            raise ConfigError(f"{table}.{e.field}", e.value, e.why) from None

    def _plan(self, **kwargs: Any) -> Plan:
        m, r = self.mixture, self.run
        return make_plan(
            m.sizes,
            self.schedule,
            r.total_steps,  # type: ignore[arg-type]
            r.batch_size,  # type: ignore[arg-type]
            tokens_per_example=m.tokens_per_example,
            unit=m.unit,
            max_epochs=r.max_epochs,
            seed=r.seed,
            composition=r.composition,
            **kwargs,
        )

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (write it with `coolmix.config.dump_toml`)."""
        out = {
            "mixture": to_dict(self.mixture),
            "schedule": self.schedule.to_dict(),
            "run": to_dict(self.run),
        }
        out.update({k: v for k, v in (("name", self.name), ("description", self.description)) if v})
        return out


def plan_config_from_dict(data: Mapping[str, Any]) -> PlanConfig:
    """Build a `PlanConfig` from plain data (a loaded file); ConfigError names the dotted field."""
    if not isinstance(data, Mapping):
        raise ConfigError("config", data, "top level must be a table")
    for key in ("mixture", "schedule", "run"):
        if key not in data:
            raise ConfigError(key, None, f"missing [{key}] table")
    return build(PlanConfig, data)


def load_plan_config(path: str | Path, overrides: Sequence[str] = ()) -> PlanConfig:
    """Read a plan config file, apply ``a.b=value`` overrides, build and validate it.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); f = os.path.join(d, "p.toml")
    >>> _ = open(f, "w").write('[mixture]\\nsizes = {a = 90, b = 10}\\n[schedule]\\nkind = "cooldown"\\n'
    ...                        '[run]\\ntotal_steps = 10\\nbatch_size = 4\\n')
    >>> cfg = load_plan_config(f, ["run.batch_size=8"])
    >>> cfg.run.batch_size, cfg.schedule.to_dict()
    (8, {'kind': 'cooldown', 'hot': 5.0, 'cold': 1.0, 'at': 0.5})
    """
    try:
        return plan_config_from_dict(apply_overrides(load_file(path), list(overrides)))
    except RecursionError:  # a self-referencing YAML anchor (a: &x [*x])
        raise ConfigError("config", str(path), "recursive structure (YAML anchor)") from None
