"""Type aliases shared by the core: domains are always keyed by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Sizes = Mapping[str, float]
"""Domain name -> size (examples, tokens, ...); insertion order defines array order."""

UNITS: tuple[str, ...] = ("examples", "tokens", "characters", "bytes", "documents")

Composition = str
"""How a batch's domain counts are drawn, by registered name: "exact" (largest remainder with carried
residuals), "iid", "seekable" (the closed-form, O(1)-seek divisor method), or any name added to
`coolmix.compositions.COMPOSITIONS` (configs are checked against the registry, not a fixed list)."""

Reduction = Literal["mean", "self_normalized", "sum"]
"""How `coolmix.weighted_loss` normalises Σ w·ℓ: by the count, by Σ w, or not at all."""
