"""The one exception users see: `ConfigError(field, value, why)`, printed as a single line."""

from __future__ import annotations

from typing import Any

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """Invalid configuration or argument; names the offending field and value.

    >>> str(ConfigError("tau", -1.0, "must be > 0"))
    'tau=-1.0: must be > 0'
    """

    def __init__(self, field: str, value: Any, why: str) -> None:
        self.field = field
        self.value = value
        self.why = why
        super().__init__(f"{field}={_short(value)}: {why}")


def _short(value: Any, limit: int = 80) -> str:
    """repr() cut to one short line, so error messages stay one line."""
    try:
        text = repr(value).replace("\n", " ")
    except ValueError:  # e.g. an int beyond Python's int-to-str digit limit
        text = f"<{type(value).__name__} too large to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
