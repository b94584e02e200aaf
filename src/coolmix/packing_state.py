"""The token packer's saved state: its fields, and `PackerState`, which reads one and checks it.

`coolmix.packing.TokenPacker.load_state_dict` restores through `PackerState`: every field is
checked against the packer before anything changes, so a corrupt, hand-edited or foreign state
is one `ConfigError` naming ``packer_state.<field>``, never a KeyError, a NaN target that
starves a domain, or a resume into another run. The layout is `coolmix.state_format` (format 3,
kind "packer"); versions 2 and 1 are migrated (version 1 did not record the run, so it is not
compared). The packer's domains cannot change on resume (its targets Z are one budget).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from coolmix.errors import ConfigError
from coolmix.mixture import to_mapping
from coolmix.schedules import Event
from coolmix.state_format import domain_change, open_state
from coolmix.validate import MAX_INT

__all__ = ["STATE_KEYS", "PackerState"]

STEP_KEY, TARGET_KEY, REALISED_KEY, DOCS_KEY = "step", "target_tokens", "realised_tokens", "documents"
PENDING_KEY, NEXT_DOC_KEY, TRUNCATED_KEY, EVENTS_KEY = "pending", "next_doc_id", "truncated_tokens", "events"
SHAPE_KEY, LONGEST_KEY = "shape", "longest"
TOTAL_KEY, SCHEDULE_KEY, SIZES_KEY = "total_steps", "schedule", "sizes"
STATE_KEYS = (
    *(STEP_KEY, TARGET_KEY, REALISED_KEY, DOCS_KEY, PENDING_KEY, NEXT_DOC_KEY, TRUNCATED_KEY, EVENTS_KEY),
    *(SHAPE_KEY, LONGEST_KEY, TOTAL_KEY, SCHEDULE_KEY, SIZES_KEY),
)
MAX_TOKEN_ID = 2**63 - 1


class PackerState:
    """A `TokenPacker.state_dict` read and checked against ``packer`` (see its `load_state_dict`)."""

    def __init__(self, packer: Any, state: Mapping[str, Any]) -> None:
        self.pk, self.state = packer, state

    def parse(self) -> PackerState:
        pk, names = self.pk, self.pk.names
        self.r, saved = open_state(self.state, "packer", "packer_state", STATE_KEYS)
        r = self.r
        domain_change(saved, names, False, r.field("domains"))
        shape = [pk.rows, pk.seq_len, pk.long_docs]
        r.same(SHAPE_KEY, shape, "this packer ([rows, seq_len, long_docs])")
        for key, mine, what in (
            (TOTAL_KEY, pk.total_steps, "this packer"),
            (SCHEDULE_KEY, pk.schedule.to_dict(), "this packer (a deliberate change is a new packer)"),
            (SIZES_KEY, to_mapping(names, pk.sizes), "this packer"),
        ):
            if r.get(key) is not None:  # None: a version-1 state, which did not record the run
                r.same(key, mine, what)
        self.step = r.integer(STEP_KEY, hi=pk.total_steps)
        self.realised = np.array(r.per_domain(REALISED_KEY, names, r.integer), dtype=np.float64)
        self.docs = np.array(r.per_domain(DOCS_KEY, names, r.integer), dtype=np.int64)
        self.truncated = np.array(r.per_domain(TRUNCATED_KEY, names, r.integer), dtype=np.int64)
        longest_hi = pk.seq_len if pk.long_docs == "truncate" else MAX_INT
        self.longest = np.array(r.per_domain(LONGEST_KEY, names, r.integer, hi=longest_hi), dtype=np.int64)
        self.target = np.array(r.per_domain(TARGET_KEY, names, r.real), dtype=np.float64)
        self.next_doc = r.integer(NEXT_DOC_KEY)
        self._check_totals()
        self.pending = self._pending(r.get(PENDING_KEY))
        self.events = []
        for i, e in enumerate(r.sequence(EVENTS_KEY)):
            if not isinstance(e, Mapping):
                raise r.fail(f"{EVENTS_KEY}[{i}]", e, "must be an event mapping")
            key = f"{EVENTS_KEY}[{i}].step"
            r.integer(key, value=e.get("step"), field=r.field(key))
            self.events.append(Event.from_dict(e))
        return self

    def _check_totals(self) -> None:
        """Σ realised against the steps packed; Σ (Z − Y) = 0 and every deficit within its bound."""
        pk, r = self.pk, self.r
        placed, budget = float(self.realised.sum()), self.step * pk.rows * pk.seq_len
        if placed > budget or (pk.long_docs == "split" and placed != budget):
            why = f"{int(placed)} tokens placed in {self.step} steps of {pk.rows}×{pk.seq_len}"
            raise r.fail(REALISED_KEY, int(placed), why)
        short = np.flatnonzero(self.realised > self.docs * self.longest)
        if short.size:  # each document placed at most its domain's longest length
            i = int(short[0])
            why = f"{int(self.realised[i])} tokens from {self.docs[i]} documents of at most {self.longest[i]}"
            raise ConfigError(f"packer_state.{LONGEST_KEY}.{pk.names[i]}", int(self.longest[i]), why)
        deficit = self.target - self.realised
        slack = 1.0 + 1e-6 * (1.0 + placed)
        if abs(float(deficit.sum())) > slack:
            why = "targets must sum to the realised tokens"
            raise r.fail(TARGET_KEY, to_mapping(pk.names, self.target), why)
        longest = self.longest.astype(np.float64)
        above = longest.sum() - longest  # Σ_{j≠i} ℓ_j
        bad = np.flatnonzero((deficit < -longest - slack) | (deficit > above + slack))
        if bad.size:
            i = int(bad[0])
            why = f"Z − Y = {float(deficit[i]):g} is outside the packer's bound [−ℓ_i, Σ_(j≠i) ℓ_j]"
            raise ConfigError(f"packer_state.{TARGET_KEY}.{pk.names[i]}", float(self.target[i]), why)

    def _pending(self, raw: Any) -> tuple[int, np.ndarray, int, int] | None:
        """None, or (domain, its remaining tokens, 0, document id) of the partly placed document."""
        if raw is None:
            return None
        pk, r = self.pk, self.r.mapping(PENDING_KEY)
        name = r.get("domain")
        if not isinstance(name, str) or name not in pk.names:
            raise r.fail("domain", name, f"must be one of {', '.join(pk.names)}")
        d = pk.names.index(name)
        tokens = r.sequence("tokens")
        if not tokens or not all(type(t) is int and 0 <= t <= MAX_TOKEN_ID for t in tokens):
            raise r.fail("tokens", tokens[:8], "must be a non-empty list of token ids in [0, 2**63)")
        if len(tokens) > self.longest[d]:
            why = f"longer than the longest {name} document ({self.longest[d]})"
            raise r.fail("tokens", len(tokens), why)
        doc_id = r.integer("doc_id", hi=max(self.next_doc - 1, 0))
        return d, np.array(tokens, dtype=np.int64), 0, doc_id
