"""`Mixture`: ordered domains with sizes in a declared unit, validated once at the boundary."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from coolmix.errors import ConfigError
from coolmix.types import UNITS, Sizes

__all__ = ["Mixture", "as_array", "check_sizes", "to_mapping"]


def check_sizes(sizes: Sizes, field: str = "sizes") -> tuple[tuple[str, ...], np.ndarray]:
    """Validate a sizes mapping; return (names, float64 sizes) in insertion order.

    Sizes must be finite and > 0; names must be non-empty strings. A domain of size 0 has
    nothing to sample, so it is an error here rather than a silent NaN later.
    """
    if not isinstance(sizes, Mapping):
        raise ConfigError(field, sizes, "must be a mapping of domain name -> size")
    if len(sizes) == 0:
        raise ConfigError(field, dict(sizes), "empty mixture: declare at least one domain")
    names = tuple(sizes)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{field} key", name, "domain names must be non-empty strings")
        value = sizes[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ConfigError(f"{field}.{name}", value, "size must be a number")
        if not math.isfinite(float(value)) or float(value) <= 0:
            raise ConfigError(f"{field}.{name}", value, "size must be finite and > 0")
    return names, np.array([float(sizes[n]) for n in names], dtype=np.float64)


def as_array(sizes: Sizes, field: str = "sizes") -> np.ndarray:
    """Sizes as a float64 array aligned with the mapping's insertion order."""
    return check_sizes(sizes, field)[1]


def to_mapping(names: tuple[str, ...], values: np.ndarray) -> dict[str, float]:
    """Aligned array -> {name: float} (the public output form)."""
    return {n: float(v) for n, v in zip(names, values)}


@dataclass(frozen=True)
class Mixture:
    """Ordered domains -> sizes, with the unit the sizes are counted in.

    >>> m = Mixture({"en": 2733, "it": 162, "zh": 39, "sw": 1}, unit="tokens")
    >>> m.names, m.total
    (('en', 'it', 'zh', 'sw'), 2935.0)
    """

    sizes: Mapping[str, float]
    unit: str = "examples"

    def __post_init__(self) -> None:
        names, arr = check_sizes(self.sizes)
        if self.unit not in UNITS:
            raise ConfigError("unit", self.unit, f"must be one of {', '.join(UNITS)}")
        object.__setattr__(self, "sizes", dict(zip(names, (self.sizes[n] for n in names))))
        object.__setattr__(self, "_arr", arr)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.sizes)

    @property
    def array(self) -> np.ndarray:
        """Sizes aligned with `names` (a copy, float64)."""
        return self._arr.copy()  # type: ignore[attr-defined]

    @property
    def total(self) -> float:
        return float(self._arr.sum())  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.sizes)

    def index(self, name: str) -> int:
        """Position of a domain in array order; ConfigError for an unknown name."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ConfigError("domain", name, f"unknown; known: {', '.join(self.names)}") from None
