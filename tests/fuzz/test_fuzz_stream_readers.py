"""Hostile fuzz of the elastic streams' new surfaces: item-reader states (per source kind), the global
stream state's own fields (step, origin, the state_format envelope) and `latest_state`.

A state value other than the one saved must be refused with one ConfigError line or give exactly
the saved state's items (a reader in its first pass; later, pass lengths are unknown to a lone
reader, so only "no hang, no traceback" is checked there); nothing may hang.
"""

from __future__ import annotations

import copy
import json

import pytest
from fuzz_harness import fuzzer, run_api
from fuzz_strategies import junk, numbers
from hypothesis import strategies as st

from coolmix.integrations.streams import DomainStream, PackedStreams, StreamMixture, latest_state

pytest.importorskip("torch")

SIZES = {"en": 13, "sw": 4}
READER_KEYS = ("pass", "consumed", "total", "source")
STATE_KEYS = ("step", "origin", "format", "kind", "domains", "version")


def _gen(d, n):
    return lambda: ({"text": f"{d}-{i}", "input_ids": [1 + i % 5] * (1 + i % 3)} for i in range(n))


def _mixer(mode):
    sources = {d: _gen(d, n) for d, n in SIZES.items()}
    if mode == "examples":
        return StreamMixture(sources, SIZES, 3.0, 10, 4, seed=2)
    return PackedStreams(sources, SIZES, 3.0, 10, rows=2, seq_len=4)


reader_case = st.tuples(
    st.sampled_from(["iterable", "dir"]),
    st.sampled_from(READER_KEYS),
    st.one_of(numbers, junk, st.sampled_from([{"file": 0, "byte": 3}, {"file": 9, "byte": 0}])),
    st.integers(0, 30),
)


@fuzzer("api.stream_reader_state", reader_case, fast=80, slow=400)
def _reader_state(case):
    kind, key, value, taken = case
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        if kind == "dir":
            root = Path(tmp) / "d"
            root.mkdir()
            (root / "a.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(7)))
            source = str(root)
        else:
            source = lambda: ({"i": i} for i in range(7))  # noqa: E731
        s = DomainStream(source, "d")
        for _ in range(taken):
            next(s)
        state = copy.deepcopy(s.state_dict())
        want = [next(s) for _ in range(5)]
        before = state.get(key)
        state[key] = value
        same = value == before and type(value) is type(before)
        same = same or state["pass"] != 0 or (key == "source" and kind == "iterable" and value is None)

        def resume(st):
            again = DomainStream(source, "d")
            again.load_state_dict(st)
            return [next(again) for _ in range(5)]

        run_api(
            f"stream_reader.{kind}.load_state_dict",
            resume,
            state,
            check=lambda got: None if same or got == want else f"{key}={value!r} gave {got}",
        )


stream_case = st.tuples(
    st.sampled_from(["examples", "packed"]),
    st.sampled_from(STATE_KEYS),
    st.one_of(numbers, junk, st.sampled_from([["en"], ["sw", "en"], "stream", "sampler", 2, 3])),
)


@fuzzer("api.stream_global_state", stream_case, fast=60, slow=300)
def _global_state(case):
    mode, key, value = case
    mixer = _mixer(mode)
    it = mixer.lane(0, 2, 1, 2)
    for _ in range(2):
        next(it)
    state = copy.deepcopy(mixer.state_dict())
    before = state[key]
    state[key] = value
    same = value == before and type(value) is type(before)
    same = same or (key == "domains" and value == ["sw", "en"])  # the same domains, keyed by name
    same = same or (key == "origin" and type(value) is int and 0 <= value <= state["step"])

    def resume(st):
        again = _mixer(mode)
        again.load_state_dict(st)
        return next(again.lane(0, 2, 1, 2))

    run_api(
        f"stream_state.{mode}.{key}",
        resume,
        state,
        check=lambda r: None if same else f"{key}={value!r} accepted",
    )
    run_api(
        "latest_state",
        latest_state,
        [state, value],
        check=lambda r: None if isinstance(value, dict) and not value else f"latest_state took {value!r}",
    )


test_reader_state_fast, test_reader_state_slow = _reader_state
test_global_state_fast, test_global_state_slow = _global_state
