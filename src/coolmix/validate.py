"""Boundary checks shared by the whole package: one home for "is this a valid int / float / path".

Every check raises `ConfigError(field, value, why)` (one line, names the field the user wrote) and
returns the value converted to a plain Python type, so callers can write ``n = check_int("n", n, lo=1)``.
Also the one codec for infinity in JSON-able data: ``"inf"`` on the way out, ``"inf"``/``None``/inf in.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from coolmix.errors import ConfigError

__all__ = [
    "INF_TOKEN",
    "MAX_INT",
    "canonical_json",
    "check_finite",
    "check_float",
    "check_int",
    "decode_inf",
    "encode_inf",
]

MAX_INT = 2**62
"""Largest count the package accepts anywhere (int64 arithmetic with headroom for sums)."""

INF_TOKEN = "inf"
"""How τ = ∞ (uniform) and other infinities are written in JSON, TOML, CSV and metrics."""


def check_int(field: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int in [lo, hi] (bools and floats rejected), else `ConfigError` naming ``field``.

    >>> check_int("steps", 3, lo=1)
    3
    >>> check_int("steps", True, lo=1)
    Traceback (most recent call last):
    ...
    coolmix.errors.ConfigError: steps=True: must be an integer >= 1
    """
    explicit_hi = hi is not None
    hi = MAX_INT if hi is None else hi
    if lo is not None:
        bound = f"in [{lo}, {hi}]" if explicit_hi else f">= {lo}"
    else:
        bound = f"<= {hi}"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ConfigError(field, value, f"must be an integer {bound}")
    v = int(value)
    if (lo is not None and v < lo) or v > hi:
        raise ConfigError(field, value, f"must be an integer {bound}" if v <= MAX_INT else "must be <= 2**62")
    return v


def check_float(
    field: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """``value`` as a float within the bounds, never NaN (and never ±inf unless ``allow_inf``).

    >>> check_float("tau", 5, lo=0, lo_open=True)
    5.0
    >>> check_float("tau", float("nan"), lo=0)
    Traceback (most recent call last):
    ...
    coolmix.errors.ConfigError: tau=nan: must be a number, not NaN
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigError(field, value, "must be a number")
    try:
        v = float(value)
    except OverflowError:  # an int beyond the largest float (a 400-digit literal)
        raise ConfigError(field, value, "too large (beyond the largest float, about 1.8e308)") from None
    if math.isnan(v):
        raise ConfigError(field, value, "must be a number, not NaN")
    if math.isinf(v) and not allow_inf:
        raise ConfigError(field, value, "must be finite")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ConfigError(field, value, f"must be {'>' if lo_open else '>='} {lo:g}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise ConfigError(field, value, f"must be {'<' if hi_open else '<='} {hi:g}")
    return v


def check_finite(field: str, values: Any) -> None:
    """Raise unless every entry of ``values`` (a number, sequence or array) is finite.

    A last line of defence for outputs: a public function never returns NaN or inf silently.
    """
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ConfigError(field, values, "the inputs give a non-finite result (overflow or underflow)")


def canonical_json(value: Any) -> str:
    """``value`` as JSON text with sorted keys (unknown types by ``repr``): two configs saved and
    loaded through JSON compare equal exactly when their texts do (saved states name their run)."""
    import json

    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):  # mixed-type keys, a cycle: no config of ours
        return f"<not JSON: {type(value).__name__}>"


def encode_inf(value: float | None) -> float | str | None:
    """A float for JSON: ``inf`` becomes ``"inf"`` (JSON has no infinity); everything else unchanged."""
    if isinstance(value, float) and math.isinf(value) and value > 0:
        return INF_TOKEN
    return value


def decode_inf(value: Any) -> Any:
    """Inverse of `encode_inf`: ``"inf"`` (any case) becomes ``math.inf``; other values unchanged.

    >>> decode_inf("inf"), decode_inf(5)
    (inf, 5)
    """
    if isinstance(value, str) and value.strip().lower() in (INF_TOKEN, "+inf", "infinity"):
        return math.inf
    return value
