"""Reading a stream lane's saved state (`coolmix.integrations.streams`): every field checked.

A lane state names its run (total_steps, schedule, sizes and the per-step amount; the seed for
`StreamMixture`) and is refused under another one (a deliberate change is a new stream); its
counters must be ints in range and agree with each other (items taken per domain = documents
realised, Σ documents = batches × per-rank batch size, residuals as `MixtureSampler` keeps them),
so a hand-edited or foreign state is one `ConfigError` naming ``stream_state.<field>``, never a
KeyError, an endless loop or a silently different stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.errors import ConfigError
from coolmix.state_reader import StateReader

__all__ = [
    "CONSUMED_KEY",
    "LAYOUT_KEY",
    "PASS_KEY",
    "REALISED_KEY",
    "SOURCE_KEY",
    "STATE_VERSION",
    "TOTAL_KEY",
    "read_domain",
    "read_examples_lane",
    "read_lane",
    "read_packed_lane",
]

STATE_VERSION = 2
"""Version of a lane's `state_dict`: 2 added the run it belongs to (total_steps, schedule, sizes,
batch_size/rows, seed) and the checks of every field on load."""

PASS_KEY, CONSUMED_KEY, SOURCE_KEY, TOTAL_KEY = "pass", "consumed", "source", "total"
LAYOUT_KEY, REALISED_KEY = "layout", "realised"
PREFIX = "stream_state"


def read_domain(state: Any, name: str, kind: str) -> tuple[int, int, int, Any]:
    """(pass, consumed, total, source state) of one domain's stream, each checked.

    Every finished pass gave this lane at least one item, so total >= pass + consumed; only HF and
    torchdata sources keep a state of their own (a mapping), the others are skipped forward.
    """
    r = StateReader(state, f"{PREFIX}.streams.{name}")
    p, consumed, total = r.integer(PASS_KEY), r.integer(CONSUMED_KEY), r.integer(TOTAL_KEY)
    if p + consumed > total:
        why = f"fewer than pass + consumed = {p + consumed} (every finished pass gave this lane an item)"
        raise r.fail(TOTAL_KEY, total, why)
    src = r.get(SOURCE_KEY)
    if src is not None and (kind not in ("hf", "node") or not isinstance(src, Mapping)):
        why = f"a {kind} source keeps no state of its own (only HF and torchdata sources, as a mapping)"
        raise r.fail(SOURCE_KEY, type(src).__name__, why)
    return p, consumed, total, src


def read_lane(
    state: Any, run: Mapping[str, Any], names: Sequence[str], kinds: Sequence[str]
) -> tuple[StateReader, list[int], list[int]]:
    """Check the fields every lane has; returns (reader, layout, items taken per domain).

    ``run`` is the mixer's identity (`_Lanes._run_fields`): each entry must equal the saved one.
    """
    r = StateReader(state, PREFIX, "a stream's state_dict()")
    version = r.get("version")
    if version != STATE_VERSION or isinstance(version, bool):
        raise r.fail("version", version, f"expected {STATE_VERSION}")
    for key, mine in run.items():
        r.same(key, mine, "this stream (a deliberate change is a new stream)")
    layout = r.get(LAYOUT_KEY)
    if not isinstance(layout, list) or len(layout) != 2:
        raise r.fail(LAYOUT_KEY, layout, "must be [world_size, workers]")
    world = r.integer(LAYOUT_KEY, lo=1, value=layout[0], field=r.field(LAYOUT_KEY))
    workers = r.integer(LAYOUT_KEY, lo=1, value=layout[1], field=r.field(LAYOUT_KEY))
    r.integer("lane", hi=world * workers - 1)
    streams = r.mapping("streams")
    if set(streams.state) != set(names):
        why = f"need one state per domain: {', '.join(names)}"
        raise r.fail("streams", sorted(map(str, streams.state)), why)
    totals = [read_domain(streams.state[n], n, k)[2] for n, k in zip(names, kinds, strict=True)]
    return r, [world, workers], totals


def _realised(r: StateReader, names: Sequence[str]) -> tuple[list[int], list[int]]:
    """(documents, tokens) per domain from ``realised``: {name: {"documents", "tokens"}}."""
    realised = r.mapping(REALISED_KEY)
    if set(realised.state) != set(names):
        why = f"need one entry per domain: {', '.join(names)}"
        raise r.fail(REALISED_KEY, sorted(map(str, realised.state)), why)
    docs, toks = [], []
    for n in names:
        entry = realised.mapping(n)
        docs.append(entry.integer("documents"))
        toks.append(entry.integer("tokens"))
    return docs, toks


BASE_KEYS = ("version", "lane", LAYOUT_KEY, "streams")


def read_examples_lane(
    r: StateReader, names: Sequence[str], totals: list[int], local: int, total_steps: int
) -> tuple[int, np.ndarray, list[int], list[int]]:
    """`StreamMixture`'s fields: (batches, residuals, documents, tokens), checked against each other."""
    r.only(
        (
            *BASE_KEYS,
            "total_steps",
            "schedule",
            "sizes",
            "batch_size",
            "seed",
            "batches",
            "residuals",
            REALISED_KEY,
        )
    )
    k = len(names)
    batches = r.integer("batches", hi=total_steps)
    residuals = np.array(r.per_domain("residuals", names, r.real, lo=-k - 2.0, hi=k + 2.0))
    if abs(float(residuals.sum())) > 1e-6 * (1 + local + k):
        raise r.fail("residuals", dict(zip(names, residuals.tolist(), strict=True)), "must sum to 0")
    docs, toks = _realised(r, names)
    if docs != totals:
        took = dict(zip(names, totals, strict=True))
        why = f"documents per domain must equal the items each stream took ({took})"
        raise r.fail(REALISED_KEY, dict(zip(names, docs, strict=True)), why)
    if sum(docs) != batches * local:
        why = f"{sum(docs)} documents in {batches} batches of {local} (per rank)"
        raise r.fail("batches", batches, why)
    return batches, residuals, docs, toks


def read_packed_lane(r: StateReader, packer: Any, names: Sequence[str], totals: list[int]) -> None:
    """`PackedStreams`'s fields: the packer state (loaded into ``packer``, a fresh lane packer),
    its documents = the items each stream took, and ``realised`` = the packer's own counts."""
    r.only((*BASE_KEYS, "total_steps", "schedule", "sizes", "rows", "seq_len", "packer", REALISED_KEY))
    try:
        packer.load_state_dict(r.get("packer"))
    except ConfigError as e:
        raise ConfigError(f"{PREFIX}.{e.field}", e.value, e.why) from None
    docs = [packer.realised()[n]["documents"] for n in names]
    if docs != totals:
        why = f"the packer's documents {dict(zip(names, docs, strict=True))} ≠ the items each stream took"
        raise r.fail("streams", dict(zip(names, totals, strict=True)), why)
    if r.get(REALISED_KEY) != packer.realised():
        why = f"must be the packer's own counts {packer.realised()}"
        raise r.fail(REALISED_KEY, r.get(REALISED_KEY), why)
