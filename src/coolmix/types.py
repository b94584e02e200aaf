"""Type aliases shared by the core: domains are always keyed by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Sizes = Mapping[str, float]
"""Domain name -> size (examples, tokens, ...); insertion order defines array order."""

Probs = Mapping[str, float]
"""Domain name -> probability (sums to 1)."""

Unit = Literal["examples", "tokens", "characters", "bytes", "documents"]
UNITS: tuple[str, ...] = ("examples", "tokens", "characters", "bytes", "documents")

Composition = Literal["exact", "iid"]
Reduction = Literal["mean", "self_normalized", "sum"]
