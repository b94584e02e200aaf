"""Reading a stream's saved state (`coolmix.integrations.streams`): every field checked on load.

A stream state is *global*, in the `coolmix.state_format` envelope (``"format": 3, "kind":
"stream", "domains"``; a domain added or removed is refused, naming it). It holds the run it
belongs to (total_steps, schedule, sizes, the per-step amount; the seed for `StreamMixture`), the
next global ``step`` (and ``origin``, the step the saving iteration started at, for a DataLoader
worker restoring its own snapshot), one reader state per domain at that step's position in the
domain's global order (``streams``), the realised exposure, and for `PackedStreams` the global
packer. It holds no rank, worker or layout, so it resumes under any (ranks × workers) layout. Its
counters must be ints in range and agree with each other (items read per domain = documents
realised = the composition's cumulative counts at ``step``), so a hand-edited or foreign state is
one `ConfigError` naming ``stream_state.<field>``, raised by ``load_state_dict``, never at the
first ``next``, never a KeyError or a silently different stream. Lane states of versions 1–2
(one lane's own sub-stream) have no exact global equivalent: refused in one line, not migrated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.errors import ConfigError
from coolmix.integrations.readers import CONSUMED_KEY, PASS_KEY, SOURCE_KEY, TOTAL_KEY, ItemReader
from coolmix.state_format import domain_change, open_state
from coolmix.state_reader import StateReader

__all__ = [
    "CONSUMED_KEY",
    "ORIGIN_KEY",
    "PASS_KEY",
    "REALISED_KEY",
    "SOURCE_KEY",
    "STATE_VERSION",
    "STEP_KEY",
    "STREAMS_KEY",
    "TOTAL_KEY",
    "latest_state",
    "read_examples",
    "read_packed",
    "read_reader",
    "read_stream",
    "realised_from_state",
]

STATE_VERSION = 3
"""Version of a stream's `state_dict`: 3 made it global (one composition for all lanes; no lane,
no layout: it resumes under any ranks × workers); 2 named the run; 1 was the first lane format."""

STEP_KEY, STREAMS_KEY, REALISED_KEY, ORIGIN_KEY = "step", "streams", "realised", "origin"
PREFIX = "stream_state"


def read_reader(state: Any, name: str, cls: type[ItemReader]) -> tuple[int, int, int, Any]:
    """(pass, consumed, total, source state) of one domain's reader, each checked.

    Every finished pass gave at least one item, so total >= pass + consumed (= consumed in the
    first pass; pass lengths are unknown, so no more can be checked later); the source state is
    checked by the reader class (HF / torchdata: a mapping; shard dir: file and byte; else None).
    """
    r = StateReader(state, f"{PREFIX}.{STREAMS_KEY}.{name}")
    r.only((PASS_KEY, CONSUMED_KEY, TOTAL_KEY, SOURCE_KEY))
    p, consumed, total = r.integer(PASS_KEY), r.integer(CONSUMED_KEY), r.integer(TOTAL_KEY)
    if p + consumed > total:
        why = f"fewer than pass + consumed = {p + consumed} (every finished pass gave an item)"
        raise r.fail(TOTAL_KEY, total, why)
    if p == 0 and total != consumed:
        raise r.fail(TOTAL_KEY, total, f"in the first pass it equals consumed = {consumed}")
    src = r.get(SOURCE_KEY)
    cls.check_source_state(src, r.field(SOURCE_KEY))
    return p, consumed, total, src


def read_stream(
    state: Any,
    run: Mapping[str, Any],
    names: Sequence[str],
    classes: Sequence[type[ItemReader]],
    keys: Sequence[str],
) -> tuple[StateReader, int, list[int]]:
    """Check the fields every stream state has; returns (reader, step, items read per domain).

    ``run`` is the mixer's identity (`_Lanes._run_fields`): each entry must equal the saved one;
    ``keys`` are the mixer's own extra fields (no others are allowed).
    """
    fields = ("version", STEP_KEY, ORIGIN_KEY, STREAMS_KEY, REALISED_KEY, *run, *keys)
    r, saved = open_state(state, "stream", PREFIX, fields, migrate_old=_refuse_lane_state)
    domain_change(saved, names, False, r.field("domains"))
    version = r.get("version")
    if version != STATE_VERSION or isinstance(version, bool):
        raise r.fail("version", version, f"expected {STATE_VERSION}")
    for key, mine in run.items():
        r.same(key, mine, "this stream (a deliberate change is a new stream)")
    step = r.integer(STEP_KEY, hi=int(run["total_steps"]))
    r.integer(ORIGIN_KEY, hi=step)  # where the saving lane's iteration started (its workers' steps)
    streams = r.mapping(STREAMS_KEY)
    if set(streams.state) != set(names):
        why = f"need one state per domain: {', '.join(names)}"
        raise r.fail(STREAMS_KEY, sorted(map(str, streams.state)), why)
    totals = [read_reader(streams.state[n], n, c)[2] for n, c in zip(names, classes, strict=True)]
    return r, step, totals


def _refuse_lane_state(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Lane states (versions 1, 2: one (rank, worker) lane's own sub-stream) have no exact global
    equivalent, so they are refused in one line rather than migrated into a different stream."""
    version = state.get("version")
    if version in (1, 2) and not isinstance(version, bool):
        why = (
            f"a per-lane state of coolmix's earlier streams; version {STATE_VERSION} streams are global "
            "(another stream, elastic across layouts): restart the data stream or resume with that coolmix"
        )
        raise ConfigError(f"{prefix}.version", version, why)
    raise ConfigError(f"{prefix}.format", state.get("format"), "expected 3 (a stream's state_dict())")


def _realised(r: StateReader, names: Sequence[str]) -> tuple[list[int], list[int]]:
    """(documents, tokens) per domain from ``realised``: {name: {"documents", "tokens"}}."""
    realised = r.mapping(REALISED_KEY)
    if set(realised.state) != set(names):
        why = f"need one entry per domain: {', '.join(names)}"
        raise r.fail(REALISED_KEY, sorted(map(str, realised.state)), why)
    docs, toks = [], []
    for n in names:
        entry = realised.mapping(n)
        entry.only(("documents", "tokens"))
        docs.append(entry.integer("documents"))
        toks.append(entry.integer("tokens"))
    return docs, toks


def read_examples(
    r: StateReader, names: Sequence[str], totals: list[int], planned: np.ndarray
) -> tuple[list[int], list[int]]:
    """`StreamMixture`'s checks: items read per domain = the composition's cumulative counts at the
    saved step (``planned``) = documents realised. Returns (documents, tokens)."""
    want = dict(zip(names, planned.tolist(), strict=True))
    if totals != planned.tolist():
        why = f"items read per domain must be the composition's counts before this step, {want}"
        raise r.fail(STREAMS_KEY, dict(zip(names, totals, strict=True)), why)
    docs, toks = _realised(r, names)
    if docs != totals:
        why = f"documents per domain must equal the items each stream read ({want})"
        raise r.fail(REALISED_KEY, dict(zip(names, docs, strict=True)), why)
    return docs, toks


def read_packed(r: StateReader, step: int, packer: Any, names: Sequence[str], totals: list[int]) -> None:
    """`PackedStreams`'s checks: the global packer state (loaded into ``packer``, a fresh one) at
    ``step``, its documents = the items each stream read, ``realised`` = the packer's own counts."""
    try:
        packer.load_state_dict(r.get("packer"))
    except ConfigError as e:
        raise ConfigError(f"{PREFIX}.{e.field}", e.value, e.why) from None
    if packer.step != step:
        raise r.fail(STEP_KEY, step, f"the packer's state is at step {packer.step}")
    docs = [packer.realised()[n]["documents"] for n in names]
    if docs != totals:
        why = f"the packer's documents {dict(zip(names, docs, strict=True))} ≠ the items each stream read"
        raise r.fail(STREAMS_KEY, dict(zip(names, totals, strict=True)), why)
    if r.get(REALISED_KEY) != packer.realised():
        why = f"must be the packer's own counts {packer.realised()}"
        raise r.fail(REALISED_KEY, r.get(REALISED_KEY), why)


def latest_state(states: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The global state to resume from, given lane states (every worker of every rank, or a subset).

    A lane's state after its batch of step s is the global state at s + 1, and the loader delivers
    steps in order, so the state with the largest ``step`` is the stream as delivered. Load it
    into a mixer of any layout (``load_state_dict``). Empty states (workers that never
    started) are ignored; no state at all is {} (start from step 0).
    """
    best: Mapping[str, Any] = {}
    for i, st in enumerate(states):
        if not isinstance(st, Mapping):
            raise ConfigError(f"stream_states[{i}]", type(st).__name__, "must be a stream state_dict()")
        if not st:
            continue
        step = st.get(STEP_KEY)
        if st.get("version") != STATE_VERSION or isinstance(step, bool) or not isinstance(step, int):
            why = f"not a version {STATE_VERSION} stream state (with an integer step)"
            raise ConfigError(f"stream_states[{i}]", sorted(map(str, st))[:6], why)
        if not best or step > best[STEP_KEY]:
            best = st
    return {**best, ORIGIN_KEY: best[STEP_KEY]} if best else {}


def realised_from_state(states: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """The run's realised documents and tokens per domain, from lane states: those of the latest
    one (stream states are global, so lanes' counts are not summed)."""
    st = latest_state(states)
    realised = st.get(REALISED_KEY, {})
    return {n: {"documents": int(c["documents"]), "tokens": int(c["tokens"])} for n, c in realised.items()}
