"""`StateReader`: read a saved state (a JSON-able mapping) field by field, checking each one.

Every resumable object (token packer, stream lanes) restores through it, so a corrupt, hand-edited
or foreign state gives one `ConfigError` naming ``<prefix>.<field>`` (and the domain, for
per-domain maps) instead of a KeyError, an OverflowError or a silently different stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from coolmix.errors import ConfigError
from coolmix.validate import MAX_INT, canonical_json, check_float, check_int

__all__ = ["StateReader"]

T = TypeVar("T")


class StateReader:
    """Typed, range-checked access to ``state[key]`` with errors named ``prefix.key``.

    >>> r = StateReader({"step": 3, "seen": {"a": 1}}, "packer_state")
    >>> r.integer("step"), r.per_domain("seen", ("a",), r.integer)
    (3, [1])
    >>> r.integer("pass")
    Traceback (most recent call last):
    ...
    coolmix.errors.ConfigError: packer_state.pass=None: missing from the state
    """

    def __init__(self, state: Any, prefix: str, what: str = "a state_dict()") -> None:
        if not isinstance(state, Mapping):
            raise ConfigError(prefix, type(state).__name__, f"must be a mapping from {what}")
        self.state, self.prefix = state, prefix

    def field(self, key: str) -> str:
        return f"{self.prefix}.{key}"

    def get(self, key: str) -> Any:
        """``state[key]``; a missing key is a ConfigError naming it."""
        if key not in self.state:
            raise ConfigError(self.field(key), None, "missing from the state")
        return self.state[key]

    def fail(self, key: str, value: Any, why: str) -> ConfigError:
        return ConfigError(self.field(key), value, why)

    def integer(
        self, key: str, lo: int = 0, hi: int = MAX_INT, value: Any = None, field: str | None = None
    ) -> int:
        """An int in [lo, hi] (bools and floats refused)."""
        v = self.get(key) if field is None else value
        return check_int(field or self.field(key), v, lo=lo, hi=hi)

    def real(self, key: str, value: Any = None, field: str | None = None, **bounds: Any) -> float:
        """A finite float within ``bounds`` (`check_float`'s keywords)."""
        v = self.get(key) if field is None else value
        return check_float(field or self.field(key), v, **bounds)

    def same(self, key: str, mine: Any, what: str) -> None:
        """``state[key]`` must equal ``mine`` (compared as JSON): the state belongs to this run."""
        got = self.get(key)
        if canonical_json(got) != canonical_json(mine):
            raise ConfigError(self.field(key), got, f"saved by another run; {what} has {mine!r}")

    def mapping(self, key: str) -> StateReader:
        """A nested mapping, read with the prefix ``prefix.key``."""
        return StateReader(self.get(key), self.field(key), "its state_dict()")

    def per_domain(self, key: str, names: Sequence[str], read: Callable[..., T], **bounds: Any) -> list[T]:
        """One value per domain (exactly ``names``), each read by ``read`` (e.g. ``self.integer``)."""
        raw = self.get(key)
        if not isinstance(raw, Mapping) or set(raw) != set(names):
            got = sorted(map(str, raw)) if isinstance(raw, Mapping) else raw
            raise ConfigError(self.field(key), got, f"need one value per domain: {', '.join(names)}")
        return [read(key, value=raw[n], field=f"{self.field(key)}.{n}", **bounds) for n in names]

    def only(self, keys: Sequence[str]) -> None:
        """No key beyond ``keys``: a field this object never writes means the state is not its own."""
        extra = sorted(str(k) for k in self.state if k not in keys)
        if extra:
            raise ConfigError(self.field(extra[0]), self.state[extra[0]], "not a field of this state")

    def sequence(self, key: str) -> list[Any]:
        v = self.get(key)
        if not isinstance(v, list):
            raise ConfigError(self.field(key), v, "must be a list")
        return v
