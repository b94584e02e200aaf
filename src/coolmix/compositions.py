"""Which domain: compositions turn p(t) into per-domain counts, one class per rule behind one protocol.

A composition decides how many items of each domain batch t holds, given p(t) and what it carries.
`MixtureSampler` asks it (and nothing else decides), then `coolmix.items` picks the items and the
batch order. Two shapes share the `Composition` base:

- **sequential** (``seekable = False``): ``step(t, p, carry) → (counts, carry, slots)`` advances a
  per-domain float ``carry`` (saved as the state's ``residuals``); the sampler walks it, with
  checkpoints, for any step. `Exact` (largest remainder with carried residuals, within 1 of
  X(t) = Σ_{s<t} B·p(s)) and `IID` (every slot drawn from p(t); ``slots`` gives each slot's domain).
- **closed form** (``seekable = True``): `Seekable` (Webster arrivals on X(t), `coolmix.seekable`)
  answers ``cursors(step)`` / ``batch_cursors(step)`` in O(1) with no walk; ``anchor`` starts an
  epoch after a schedule change, an event, a load, or a domain change (``rebase``).

`TokenDeficit` is the token packer's rule in the same terms with tokens as its unit: the domain
with the largest deficit Z − Y gets the next document (it decides per document, not per batch).

**Adding a composition** (say block-exact) is one class and one registry entry: subclass
`Composition`, set ``name``, implement ``step`` (and ``check`` if it refuses some schedules), and add
it to `COMPOSITIONS` below; ``MixtureSampler(..., composition="<name>")`` then uses it, and the
registry-wide tests (tests/core/test_compositions.py) cover it. A class can also be passed directly
(``composition=MyRule``) without registering it. Numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from coolmix.counts import SMALL_K, exact_counts, exact_counts_small
from coolmix.errors import ConfigError
from coolmix.permutation import derive_key, splitmix64
from coolmix.schedules import Schedule
from coolmix.seekable import Target, batch_cursors, cursors_at

__all__ = ["COMPOSITIONS", "IID", "Composition", "Exact", "Seekable", "TokenDeficit", "composition_class"]

StepCounts = tuple[np.ndarray, np.ndarray, np.ndarray | None]
_INV_2_64 = 1.0 / 18446744073709551616.0


def counter_key(counter: int) -> int:
    """A 64-bit key offset for a counter (step or pass number): ``splitmix64(counter)``."""
    return int(splitmix64(np.array([counter], dtype=np.uint64))[0])


class Composition:
    """The protocol: per-step counts over ``names`` (summing to ``batch_size``) from p(t).

    Subclasses set ``name`` and implement `step` (sequential) or set ``seekable = True`` and
    implement the closed-form methods (`Seekable`).
    """

    name: ClassVar[str] = ""
    unit: ClassVar[str] = "items"
    seekable: ClassVar[bool] = False
    """True: counts are a closed form of the step (O(1) seek); False: `step` is walked in order."""
    per_slot: ClassVar[bool] = False
    """True: `step` draws each slot's domain (the slots are the batch's order, not a shuffle of counts)."""

    def __init__(self, names: Sequence[str], batch_size: int, seed: int) -> None:
        self.names, self.batch_size, self.seed = tuple(names), batch_size, seed
        self.build: Callable[[], Target] | None = None  # X(t) of the sampler's schedules (closed forms)

    def check(self, schedule: Schedule) -> None:
        """Refuse (one-line `ConfigError`) a schedule this composition cannot serve."""

    def step(self, t: int, p: np.ndarray, carry: np.ndarray) -> StepCounts:
        """Counts of batch ``t`` (int64, Σ = B), the new carry, and each slot's domain (or None:
        the sampler lays the counts out in blocks and shuffles them)."""
        raise NotImplementedError(f"{type(self).__name__} is not a sequential composition")

    def step_lists(self, p: list[float], pa: np.ndarray, carry: list[float]) -> tuple[list[int], list[float]]:
        """`step` on plain Python lists (a seek's hot loop), for rules with ``walks_lists``."""
        raise NotImplementedError

    @property
    def walks_lists(self) -> bool:
        """Whether `step_lists` gives the same bits as `step` (and is used for cold seeks)."""
        return False

    # closed form (``seekable = True``): C(step) without a walk

    def cursors(self, step: int) -> np.ndarray:
        """C(step): items per domain before ``step`` (int64)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed form: the sampler walks `step`")

    def batch_cursors(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(C(step), C(step + 1)): batch ``step`` holds their difference."""
        raise NotImplementedError(f"{type(self).__name__} has no closed form: the sampler walks `step`")

    def target(self, step: int) -> np.ndarray:
        """X(step) the closed form tracks."""
        raise NotImplementedError(f"{type(self).__name__} has no closed form: the sampler walks `step`")

    def anchor(self, step: int, cursors: np.ndarray) -> None:
        """p changes from ``step`` on (a schedule change or an event), with ``cursors`` drawn so far."""

    def restart(self, step: int, cursors: np.ndarray, rebase: tuple[int, np.ndarray] | None = None) -> None:
        """Resume at ``step`` with ``cursors`` (a load); ``rebase`` = (t0, C(t0)) of a domain change."""


class Exact(Composition):
    """Largest remainder with carried residuals (`coolmix.counts.exact_counts`): within 1 of X(t)."""

    name = "exact"

    def step(self, t: int, p: np.ndarray, carry: np.ndarray) -> StepCounts:
        fast = exact_counts_small(p.tolist(), self.batch_size, carry.tolist()) if len(p) < SMALL_K else None
        if fast is None:
            counts, carry = exact_counts(p, self.batch_size, carry)
            return counts, carry, None
        return np.array(fast[0], dtype=np.int64), np.array(fast[1]), None

    def step_lists(self, p: list[float], pa: np.ndarray, carry: list[float]) -> tuple[list[int], list[float]]:
        fast = exact_counts_small(p, self.batch_size, carry)
        if fast is None:  # clipped or pathological targets: the numpy reference
            c, r = exact_counts(pa, self.batch_size, np.array(carry))
            return c.tolist(), r.tolist()
        return fast

    @property
    def walks_lists(self) -> bool:
        return len(self.names) < SMALL_K


class IID(Composition):
    """Every slot drawn independently from p(t) (counter-based uniforms keyed by seed and step)."""

    name = "iid"
    per_slot = True

    def __init__(self, names: Sequence[str], batch_size: int, seed: int) -> None:
        super().__init__(names, batch_size, seed)
        self._key = derive_key(seed, "iid")
        self._arange = np.arange(batch_size, dtype=np.uint64)

    def step(self, t: int, p: np.ndarray, carry: np.ndarray) -> StepCounts:
        u = splitmix64(self._arange ^ np.uint64(self._key ^ counter_key(t))) * _INV_2_64
        slots = np.minimum(np.searchsorted(np.cumsum(p), u, side="right"), len(p) - 1)
        # never land on a zero-probability domain through float round-off
        while (p[slots] == 0).any():
            slots = np.where(p[slots] == 0, int(np.argmax(p)), slots)
        return np.bincount(slots, minlength=len(p)).astype(np.int64), carry, slots


class Seekable(Composition):
    """Webster arrivals on the running target (`coolmix.seekable`): C(t) in closed form, O(1) seek.

    Epochs ``(start step, anchor, target)``: from ``start`` the stream is every arrival j >= anchor_i
    of the target (built lazily by the sampler's ``build`` from its schedules and events). Anchors
    are *virtual* cursors: the real ones are anchor + ``shift``, where ``shift`` is 0 unless the
    domains changed (`rebase`), which starts the arrivals afresh at the rebase step.
    """

    name = "seekable"
    seekable = True

    def __init__(self, names: Sequence[str], batch_size: int, seed: int) -> None:
        super().__init__(names, batch_size, seed)
        self.restart(0, np.zeros(len(self.names), dtype=np.int64))

    def check(self, schedule: Schedule) -> None:
        if schedule.needs_counts:
            kind = schedule.kind
            why = f"schedule {kind!r} needs exposure (realised counts), so it cannot seek; use 'exact'"
            raise ConfigError("composition", "seekable", why)

    def _epoch(self, step: int) -> tuple[int, np.ndarray, Target]:
        """The epoch in force at ``step``; only the last one may still need its target built."""
        i = max(j for j, e in enumerate(self._epochs) if e[0] <= step)
        start, anchor, target = self._epochs[i]
        if target is None:
            assert self.build is not None, "the sampler binds build before asking"
            target = self.build()
            self._epochs[i] = (start, anchor, target)
        return start, anchor, target

    def cursors(self, step: int) -> np.ndarray:
        """C(step): items per domain before ``step``."""
        start, anchor, target = self._epoch(step)
        return cursors_at(target, step, start, anchor) + self._shift

    def batch_cursors(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(C(step), C(step + 1)) from one window."""
        start, anchor, target = self._epoch(step)
        c0, c1 = batch_cursors(target, step, start, anchor)
        return c0 + self._shift, c1 + self._shift

    def target(self, step: int) -> np.ndarray:
        """X(step) of the epoch in force at ``step``."""
        return self._epoch(step)[2].window(step, step)[0][0]

    def anchor(self, step: int, cursors: np.ndarray) -> None:
        """A new epoch from ``step`` at (real) ``cursors``, its target built lazily; earlier epochs
        keep the targets their batches were made with (the one in force is built first)."""
        self._epoch(step)
        self._epochs = [e for e in self._epochs if e[0] < step] + [(step, cursors - self._shift, None)]

    def restart(self, step: int, cursors: np.ndarray, rebase: tuple[int, np.ndarray] | None = None) -> None:
        """Forget every epoch and resume at ``step`` with ``cursors`` (what a load does).

        ``rebase`` = (t0, C(t0)): the domains changed at t0, where arrivals restarted at the
        target's X(t0) (virtual anchor ⌊X(t0) + 1/2⌋); re-anchoring a stream at one of its own
        steps with its own cursors is the identity, so a resume stays exact.
        """
        k = len(self.names)
        self._shift = np.zeros(k, dtype=np.int64)
        self._epochs: list[tuple[int, np.ndarray, Target | None]] = [(0, np.zeros(k, dtype=np.int64), None)]
        if rebase is not None:
            t0, c0 = rebase
            virtual = np.floor(self._epoch(0)[2].window(t0, t0)[0][0] + 0.5).astype(np.int64)
            self._shift = c0 - virtual
            self._epochs = [(t0, virtual, self._epochs[0][2])]
        if step:
            self.anchor(step, cursors)


COMPOSITIONS: dict[str, type[Composition]] = {c.name: c for c in (Exact, IID, Seekable)}
"""The registry: ``composition=<name>`` → its class. A new composition is one class plus one entry here."""


def composition_name(field: str, value: Any) -> str:
    """``value`` when it names a registered composition (configs hold names), else one `ConfigError` on
    ``field``."""
    if isinstance(value, str) and value in COMPOSITIONS:
        return value
    raise ConfigError(field, value, f"must be one of {', '.join(map(repr, COMPOSITIONS))}")


def composition_class(composition: str | type[Composition]) -> type[Composition]:
    """The class for a registered name, or a `Composition` subclass passed as is."""
    if isinstance(composition, type) and issubclass(composition, Composition) and composition.name:
        return composition
    if isinstance(composition, str) and composition in COMPOSITIONS:
        return COMPOSITIONS[composition]
    names = ", ".join(repr(n) for n in COMPOSITIONS)
    raise ConfigError("composition", composition, f"must be one of {names} (or a named Composition subclass)")


class TokenDeficit:
    """The packer's composition, in tokens: the next document comes from the domain with the largest
    deficit Z_i − Y_i (ties: domain order), where Z_i gains p_i(t)·n for every n tokens placed.

    Σ (Z − Y) = 0 at every placement, so the chosen deficit is >= 0 and −ℓ_i <= Z_i − Y_i <=
    Σ_{j≠i} ℓ_j (ℓ_i: domain i's longest document). ``target`` is Z (its state, saved as
    ``target_tokens``); Y (``realised``) belongs to the packer, which places the tokens.

    >>> td = TokenDeficit(2)
    >>> td.place(np.array([0.75, 0.25]), 8); td.choose(np.array([0.75, 0.25]), np.array([8.0, 0.0]), True)
    1
    """

    unit = "tokens"

    def __init__(self, k: int) -> None:
        self.target = np.zeros(k)

    def choose(self, p: np.ndarray, realised: np.ndarray, all_on: bool) -> int:
        """The active domain with the largest deficit Z − Y; inactive domains forfeit theirs.

        A switched-off domain (p_i = 0) gets no document and its deficit (either sign) is spread
        over the active domains by p, so Σ (Z − Y) stays 0 and no old debt is paid later.
        ``all_on`` is ``p.min() > 0``, computed once per batch.
        """
        if all_on:
            return int((self.target - realised).argmax())
        deficit = self.target - realised
        off = p <= 0
        if off.any():
            spill = deficit[off].sum()
            self.target[off] = realised[off]
            self.target += p * spill
            deficit = self.target - realised
        return int(np.argmax(np.where(off, -np.inf, deficit)))

    @staticmethod
    def choose_lists(target: Any, realised: Any) -> int:
        """`choose` for all-on p on lists of Python floats (the packer's fast path): first max of Z − Y."""
        best, bd = 0, target[0] - realised[0]
        for i in range(1, len(target)):
            if target[i] - realised[i] > bd:
                best, bd = i, target[i] - realised[i]
        return best

    def place(self, p: np.ndarray, n: int) -> None:
        """n tokens were placed: Z += p·n."""
        self.target += p * n

    @staticmethod
    def place_lists(target: Any, p: list[float], n: int) -> None:
        """`place` on Python floats (the same IEEE operations in the same order)."""
        for i in range(len(p)):
            target[i] += p[i] * n
