"""`Mixture`: ordered domains with sizes in a declared unit, validated once at the boundary.

Two readings of a sizes mapping: `check_sizes` (any finite size > 0, as float64 for probability
maths) and `check_items` (exact integer item counts, as int64, for index maths such as the
sampler's keyed permutations, where a float would round sizes above 2**53).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Literal

import numpy as np

from coolmix.errors import ConfigError
from coolmix.types import UNITS, Sizes
from coolmix.validate import MAX_INT, check_float, check_int

__all__ = [
    "MAX_EXACT_FLOAT",
    "Bucket",
    "Mixture",
    "check_items",
    "check_sizes",
    "resource_buckets",
    "to_mapping",
]

MAX_EXACT_FLOAT = 2**53
"""Largest float the package takes as an integer count (floats above it are not exact)."""


def _names(sizes: Sizes | Mixture, field: str) -> tuple[str, ...]:
    if isinstance(sizes, Mixture):
        sizes = sizes.sizes
    if not isinstance(sizes, Mapping):
        raise ConfigError(field, sizes, "must be a mapping of domain name -> size")
    if len(sizes) == 0:
        raise ConfigError(field, dict(sizes), "empty mixture: declare at least one domain")
    names = tuple(sizes)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{field} key", name, "domain names must be non-empty strings")
    return names


def check_sizes(sizes: Sizes | Mixture, field: str = "sizes") -> tuple[tuple[str, ...], np.ndarray]:
    """Validate a sizes mapping (or a `Mixture`); return (names, float64 sizes) in insertion order.

    Sizes must be finite and > 0; names must be non-empty strings. A domain of size 0 has
    nothing to sample, so it is an error here rather than a silent NaN later.
    """
    names = _names(sizes, field)
    values = sizes.sizes if isinstance(sizes, Mixture) else sizes
    return names, np.array([_size(f"{field}.{n}", values[n]) for n in names], dtype=np.float64)


def _size(field: str, value: object) -> float:
    try:
        return check_float(field, value, lo=0.0, lo_open=True)
    except OverflowError:  # an int beyond the float range
        raise ConfigError(field, value, "size must be finite (below 1e308)") from None


def check_items(sizes: Sizes | Mixture, field: str = "sizes") -> tuple[tuple[str, ...], list[int]]:
    """Validate exact item counts: ints in [1, 2**62], or integral floats <= 2**53 (exact ones).

    Returns (names, Python ints), so callers can build int64 arrays without rounding.

    >>> check_items({"en": 10**17 + 1, "sw": 3.0})
    (('en', 'sw'), [100000000000000001, 3])
    """
    names = _names(sizes, field)
    values = sizes.sizes if isinstance(sizes, Mixture) else sizes
    out = []
    for n in names:
        v, f = values[n], f"{field}.{n}"
        if isinstance(v, Real) and not isinstance(v, (bool, Integral)):
            x = check_float(f, v, lo=1.0)
            if x != int(x) or x > MAX_EXACT_FLOAT:
                raise ConfigError(f, v, "an item count must be an integer (floats only up to 2**53)")
            v = int(x)
        out.append(check_int(f, v, lo=1, hi=MAX_INT))
    return names, out


def to_mapping(names: tuple[str, ...], values: np.ndarray) -> dict[str, float]:
    """Aligned array -> {name: float} (the public output form)."""
    return {n: float(v) for n, v in zip(names, values, strict=True)}


@dataclass(frozen=True)
class Mixture:
    """Ordered domains -> sizes, with the unit the sizes are counted in.

    `coolmix.MixtureSampler` accepts a Mixture and keeps its unit; the sampler still needs item
    counts for its permutations (the sizes themselves when they are integers, else ``items=``).

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
        object.__setattr__(self, "sizes", {n: self.sizes[n] for n in names})
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


Bucket = Literal["high", "mid", "low"]
"""Resource level of a domain, by training size (the paper's HRL / mid / LRL)."""


def resource_buckets(
    sizes: Mapping[str, int],
    high_frac: float = 0.9,
    low_frac: float = 0.4,
    by: Literal["ratio", "tercile"] = "ratio",
) -> dict[str, Bucket]:
    """Label each domain high / mid / low resource by its training size.

    ``by="ratio"`` (default): with r = n / max(n), r >= high_frac -> "high", r >= low_frac ->
    "mid", else "low". The paper's OPUS buckets (HRL 1M, mid 500K-1M, LRL < 500K, largest 1M) are
    ``high_frac=1.0, low_frac=0.5``; the defaults 0.9 / 0.4 leave room for near-maximal sizes.
    ``by="tercile"``: rank by size (largest first, ties in input order) and label the first
    ceil(K/3) "high", the last floor(K/3) "low" and the rest "mid"; the fractions are ignored.

    >>> resource_buckets({"es": 31_663, "gl": 18_730, "hi": 9_080, "ga": 2_277})
    {'es': 'high', 'gl': 'mid', 'hi': 'low', 'ga': 'low'}
    >>> resource_buckets({"es": 31_663, "gl": 18_730, "hi": 9_080, "ga": 2_277}, by="tercile")
    {'es': 'high', 'gl': 'high', 'hi': 'mid', 'ga': 'low'}
    """
    if not sizes:
        raise ConfigError("sizes", dict(sizes), "needs at least one domain")
    for d, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"sizes[{d!r}]", n, "must be an integer >= 0")
    if by == "tercile":
        order = sorted(sizes, key=lambda d: -sizes[d])  # stable: ties keep input order
        k = len(order)
        n_high, n_low = math.ceil(k / 3), k // 3
        rank = {d: i for i, d in enumerate(order)}
        return {d: "high" if rank[d] < n_high else "low" if rank[d] >= k - n_low else "mid" for d in sizes}
    if by != "ratio":
        raise ConfigError("by", by, "must be 'ratio' or 'tercile'")
    if not 0.0 <= low_frac <= high_frac <= 1.0:
        raise ConfigError("low_frac", low_frac, f"need 0 <= low_frac <= high_frac={high_frac} <= 1")
    largest = max(sizes.values())
    if largest == 0:
        raise ConfigError("sizes", dict(sizes), "all sizes are 0")
    out: dict[str, Bucket] = {}
    for d, n in sizes.items():
        r = n / largest
        out[d] = "high" if r >= high_frac else "mid" if r >= low_frac else "low"
    return out
