"""The one exception users see: `ConfigError(field, value, why)`, printed as a single line."""

from __future__ import annotations

import pickle
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

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as (field, value, why, message), so a refusal raised in a worker process arrives
        in the parent as the same one line (the default would call ``__init__`` with the message
        alone and fail). A value that cannot be pickled travels as its short repr."""
        value = self.value
        try:
            pickle.dumps(value)
        except Exception:
            value = _short(value)
        return (_rebuild, (type(self), self.field, value, self.why, str(self)))


def _rebuild(cls: type[ConfigError], field: str, value: Any, why: str, message: str) -> ConfigError:
    """Inverse of `ConfigError.__reduce__`: the error with its original message, whatever ``value`` became."""
    err = cls.__new__(cls)
    err.field, err.value, err.why = field, value, why
    ValueError.__init__(err, message)
    return err


def _short(value: Any, limit: int = 80) -> str:
    """repr() cut to one short line, so error messages stay one line."""
    try:
        text = repr(value).replace("\n", " ")
    except ValueError:  # e.g. an int beyond Python's int-to-str digit limit
        text = f"<{type(value).__name__} too large to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
