"""Hostile fuzz of the torchtitan adapter's surfaces that need no torchtitan: `LossWeights` and the
domain-in-labels encoding. A sound result or one ConfigError (tests/fuzz's harness)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
from fuzz_harness import fuzzer, run_api
from fuzz_strategies import edge_floats, edge_ints, junk

from coolmix.integrations.torchtitan import IGNORE_INDEX, LossWeights, decode_labels, encode_labels

NAMES = ["en", "sw"]
weights = st.one_of(
    st.lists(st.one_of(edge_floats, st.floats(0, 10)), min_size=0, max_size=3),
    st.dictionaries(st.sampled_from(["en", "sw", "zz"]), edge_floats, max_size=3),
    junk,
)


steps = st.one_of(st.integers(-2, 50), edge_ints, junk)


def _sound_weights(lw: LossWeights) -> str | None:
    return None if lw.current.shape == (2,) and (lw.current >= 0).all() else "bad weights"


@fuzzer("torchtitan.loss_weights", st.tuples(weights, steps), fast=80, slow=400)
def _weights(case):
    w, step = case
    lw = run_api("torchtitan.LossWeights", LossWeights, w, NAMES, check=_sound_weights)
    if lw is not None:
        run_api("torchtitan.LossWeights.at", lw.at, step, expect_field="step",
                check=lambda _: None if lw.step == step else f"step {step!r} accepted")


@fuzzer("torchtitan.labels", st.tuples(
    st.lists(st.sampled_from([IGNORE_INDEX, -1, 0, 1, 7, 63, 64, 2**40]), min_size=1, max_size=12),
    st.lists(st.integers(-2, 6), min_size=12, max_size=12),
    st.one_of(st.sampled_from([1, 8, 64, 65, 2**20]), edge_ints, junk),
), fast=80, slow=400)
def _labels(case):
    lab, dom, v = case
    labels, doms = np.array(lab, dtype=np.int64), np.array(dom[: len(lab)], dtype=np.int64)
    counted = (labels != IGNORE_INDEX) & (doms >= 0)

    def sound(enc):
        tok, back = decode_labels(enc, v)
        if counted.any() and (labels[counted].max() >= v or labels[counted].min() < 0):
            return "an out-of-vocabulary label was encoded"
        ok = np.array_equal(tok, labels) and np.array_equal(back, np.where(counted, doms, -1))
        return None if ok else f"round trip lost data: {tok}, {back}"

    run_api("torchtitan.encode_labels", encode_labels, labels, doms, v, check=sound)


test_loss_weights_fast, test_loss_weights_slow = _weights
test_labels_fast, test_labels_slow = _labels
