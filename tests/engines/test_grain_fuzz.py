"""Hostile fuzz of the Grain adapter's surfaces that need no grain: rank views, their indexing and
`rescale_state`. A sound result or one ConfigError naming the field (tests/fuzz's harness)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
from fuzz_harness import fuzzer, run_api
from fuzz_strategies import edge_ints, junk

import coolmix as cm
from coolmix.integrations.grain import SelectionMap, rescale_state
from coolmix.integrations.ranks import DataParallel

B, STEPS = 8, 5
FULL = SelectionMap(cm.MixtureSampler({"en": 50, "it": 7, "sw": 1}, 3.0, total_steps=STEPS, batch_size=B))
ints = st.one_of(st.integers(-3, 12), edge_ints, junk, st.sampled_from([1.0, 2.5, np.int64(2)]))


def _int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


@fuzzer("grain.shard", st.tuples(ints, ints, ints), fast=80, slow=400)
def _shard(case):
    rank, world, i = case
    ok = _int(rank) and _int(world) and 1 <= world <= B and B % world == 0 and 0 <= rank < world
    if rank is None and world is None:  # DataParallel(): the default group, here one process
        ok, rank, world = True, 0, 1
    view = run_api(
        "grain.shard", lambda r, w: FULL.shard(DataParallel(r, w)), rank, world,
        check=lambda v: None if ok else f"rank={rank!r}, world_size={world!r} accepted",
    )
    if view is None:
        return
    per = B // int(world)
    valid = _int(i) and 0 <= i < STEPS * per

    def sound(r):
        if not valid:
            return f"index {i!r} accepted"
        s, k = divmod(int(i), per)
        return None if r == FULL[s * B + int(rank) * per + k] else f"{r} is not the global sample"

    run_api("grain.shard[i]", view.__getitem__, i, check=sound, expect_field="index")


states = st.one_of(
    st.fixed_dictionaries({"next_index": ints}),
    st.dictionaries(st.sampled_from(["next_index", "workers", "x"]), ints, max_size=3),
    junk,
)


@fuzzer("grain.rescale_state", st.tuples(states, ints, ints), fast=80, slow=400)
def _rescale(case):
    state, old, new = case

    def sound(out):
        if not (isinstance(state, dict) and set(state) == {"next_index"} and _int(old) and _int(new)):
            return f"{state!r}, {old!r} -> {new!r} accepted"
        n = state["next_index"]
        if not _int(n) or n < 0 or old < 1 or new < 1 or int(n) * int(old) > 2**62:
            return f"{state!r}, {old!r} -> {new!r} accepted"
        g = int(n) * int(old)
        return None if out == {"next_index": g // int(new)} and g % int(new) == 0 else f"{out}"

    run_api("grain.rescale_state", rescale_state, state, old, new, check=sound)


test_shard_fast, test_shard_slow = _shard
test_rescale_state_fast, test_rescale_state_slow = _rescale
