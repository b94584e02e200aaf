"""One versioned JSON state format for every resumable object: the sampler, the token packer, streams.

Every state is a JSON-able mapping with the same envelope::

    {"format": 3, "kind": "sampler" | "packer" | "stream", "domains": ["en", "it", ...], ...fields}

``domains`` names the domains in their order; per-domain fields are mappings keyed by name. A state
is opened with `open_state`: an older layout is migrated first (``MIGRATIONS[kind]``, or the
``migrate`` a caller passes), then the envelope is checked field by field (`StateReader`: one-line
`ConfigError` naming ``<prefix>.<field>``). Migrations are pure (old state → format-3 state):

- sampler: format 2 (``"version": 1, "format": 2``) and format 1 (no ``"format"``; it did not record
  the run's ``total_steps``, ``batch_size`` and ``schedule``, so those are ``None``: not checked);
- packer: version 2, and version 1 (no ``total_steps``, ``schedule``, ``sizes``: ``None``, not checked).

A domain **added or removed by name** between save and load is found by `domain_change`: it is refused
(one line naming the added and removed domains) unless the caller opts in (``allow_domain_change``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coolmix.errors import ConfigError
from coolmix.state_reader import StateReader

__all__ = [
    "DOMAINS_KEY",
    "FORMAT",
    "FORMAT_KEY",
    "KINDS",
    "KIND_KEY",
    "MIGRATIONS",
    "DomainChange",
    "domain_change",
    "envelope",
    "migrate",
    "open_state",
]

FORMAT = 3
"""The state format every object writes (sampler format 2 and packer version 2 were the last before it)."""
FORMAT_KEY, KIND_KEY, DOMAINS_KEY = "format", "kind", "domains"
KINDS = ("sampler", "packer", "stream")

Migration = Callable[[Mapping[str, Any], str], dict[str, Any]]
"""(old state, field prefix for errors) → format-3 state."""


def envelope(kind: str, domains: Sequence[str], fields: Mapping[str, Any]) -> dict[str, Any]:
    """A format-3 state: the envelope, then ``fields``.

    >>> envelope("sampler", ("en", "sw"), {"step": 4})
    {'format': 3, 'kind': 'sampler', 'domains': ['en', 'sw'], 'step': 4}
    """
    if kind not in KINDS:
        raise ConfigError("kind", kind, f"must be one of {', '.join(KINDS)}")
    return {FORMAT_KEY: FORMAT, KIND_KEY: kind, DOMAINS_KEY: list(domains), **fields}


def _domains_of(state: Mapping[str, Any], key: str, prefix: str) -> list[str]:
    """The domain names of an old state, from one of its per-domain mappings."""
    raw = state.get(key)
    if not isinstance(raw, Mapping) or not raw:
        why = "an old state names its domains here; missing or empty, so it cannot be migrated"
        raise ConfigError(f"{prefix}.{key}", raw, why)
    return [str(n) for n in raw]


def _sampler_old(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Sampler format 2 / format 1 (``"version": 1``) → format 3 (the fields keep their names)."""
    fmt = state.get(FORMAT_KEY, 1)
    if type(fmt) is not int or fmt not in (1, 2):
        raise ConfigError(f"{prefix}.{FORMAT_KEY}", fmt, f"expected {FORMAT} (or 2, or none: format 1)")
    version = state.get("version")
    if version != 1 or isinstance(version, bool):
        why = f"not a MixtureSampler state (format {FORMAT}, or version 1)"
        raise ConfigError(f"{prefix}.version", version, why)
    body = {k: v for k, v in state.items() if k not in ("version", FORMAT_KEY)}
    if fmt == 1:  # format 1 did not record the run: nothing to compare on load
        for key in ("total_steps", "batch_size", "schedule"):
            body.setdefault(key, None)
    body.setdefault("unit", "examples")
    body.setdefault("rebased", None)
    return envelope("sampler", _domains_of(state, "cursors", prefix), body)


def _packer_old(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Packer version 2 / 1 → format 3 (version 1 did not record the run: not checked on load)."""
    if FORMAT_KEY in state:
        raise ConfigError(f"{prefix}.{FORMAT_KEY}", state[FORMAT_KEY], f"expected {FORMAT}")
    version = state.get("version")
    if version not in (1, 2) or isinstance(version, bool):
        why = f"expected a TokenPacker state (format {FORMAT}, or version 2 or 1)"
        raise ConfigError(f"{prefix}.version", version, why)
    for key in ("shape", "step"):  # the old layout's leading fields, checked in the order it read them
        if key not in state:
            raise ConfigError(f"{prefix}.{key}", None, "missing from the state")
    body = {k: v for k, v in state.items() if k != "version"}
    if version == 1:
        for key in ("total_steps", "schedule", "sizes"):
            body.setdefault(key, None)
    return envelope("packer", _domains_of(state, "target_tokens", prefix), body)


MIGRATIONS: dict[str, Migration] = {"sampler": _sampler_old, "packer": _packer_old}
"""Old layout → format 3, per kind. Streams pass their own to `open_state` (``migrate=``)."""


def migrate(state: Any, kind: str, prefix: str, migrate: Migration | None = None) -> Mapping[str, Any]:
    """``state`` as a format-3 mapping: returned as is when it says ``"format": 3``, else migrated."""
    if not isinstance(state, Mapping):
        raise ConfigError(prefix, type(state).__name__, f"must be a mapping from a {kind} state_dict()")
    fmt = state.get(FORMAT_KEY)
    if type(fmt) is int and fmt == FORMAT:
        return state
    if FORMAT_KEY not in state and KIND_KEY in state:  # format 3's envelope without its number
        raise ConfigError(f"{prefix}.{FORMAT_KEY}", None, "missing from the state")
    if type(fmt) is int and fmt > FORMAT:
        why = f"written by a newer coolmix (this one reads <= {FORMAT})"
        raise ConfigError(f"{prefix}.{FORMAT_KEY}", fmt, why)
    fn = migrate or MIGRATIONS.get(kind)
    if fn is None:
        raise ConfigError(f"{prefix}.{FORMAT_KEY}", fmt, f"expected {FORMAT}; no migration for {kind} states")
    return fn(state, prefix)


def open_state(
    state: Any,
    kind: str,
    prefix: str,
    keys: Sequence[str] | None = None,
    migrate_old: Migration | None = None,
) -> tuple[StateReader, tuple[str, ...]]:
    """Migrate ``state`` if old, check its envelope, and return (a reader, its domain names).

    ``keys``: the fields (beyond the envelope) a state of this kind may have; any other is refused.

    >>> r, names = open_state(envelope("packer", ["a"], {"step": 2}), "packer", "packer_state")
    >>> names, r.integer("step")
    (('a',), 2)
    >>> open_state(envelope("packer", ["a"], {}), "sampler", "sampler_state")
    Traceback (most recent call last):
    ...
    coolmix.errors.ConfigError: sampler_state.kind='packer': a packer state, not a sampler state
    """
    r = StateReader(migrate(state, kind, prefix, migrate_old), prefix, f"a {kind} state_dict()")
    got = r.get(KIND_KEY)
    if got != kind:
        raise r.fail(KIND_KEY, got, f"a {got} state, not a {kind} state")
    raw = r.get(DOMAINS_KEY)
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(n, str) for n in raw)
        or len(set(raw)) != len(raw)
    ):
        raise r.fail(DOMAINS_KEY, raw, "must be a non-empty list of distinct domain names")
    if keys is not None:
        r.only((FORMAT_KEY, KIND_KEY, DOMAINS_KEY, *keys))
    return r, tuple(raw)


@dataclass(frozen=True)
class DomainChange:
    """The domains of a saved state against those of the object loading it (both in their own order)."""

    saved: tuple[str, ...]
    current: tuple[str, ...]

    @property
    def added(self) -> tuple[str, ...]:
        return tuple(n for n in self.current if n not in self.saved)

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(n for n in self.saved if n not in self.current)

    @property
    def changed(self) -> bool:
        """Whether the sets differ (a new order of the same names is not a change: fields are keyed)."""
        return set(self.saved) != set(self.current)

    def pick(self, values: Mapping[str, Any], new: Any) -> list[Any]:
        """``values`` (keyed by saved name) in the current order; ``new`` for an added domain."""
        return [values.get(n, new) for n in self.current]


def domain_change(
    saved: Sequence[str], current: Sequence[str], allow: bool, field: str
) -> DomainChange:
    """The change from ``saved`` to ``current`` domains; refused (one line naming them) unless ``allow``.

    >>> domain_change(["en", "sw"], ["en", "sw", "yo"], True, "s.domains").added
    ('yo',)
    >>> try:
    ...     domain_change(["en", "sw"], ["en"], False, "s.domains")
    ... except ConfigError as e:
    ...     print(e.why)
    saved with other domains (removed: sw); allow_domain_change=True resumes the common ones
    """
    change = DomainChange(tuple(saved), tuple(current))
    if change.changed and not set(change.saved) & set(change.current):
        why = "no domain in common with this run's: not a state of this mixture"
        raise ConfigError(field, list(saved), why)
    if change.changed and not allow:
        diff = (("added", change.added), ("removed", change.removed))
        parts = "; ".join(f"{what}: {', '.join(ns)}" for what, ns in diff if ns)
        why = f"saved with other domains ({parts}); allow_domain_change=True resumes the common ones"
        raise ConfigError(field, list(saved), why)
    return change
