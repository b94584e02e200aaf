"""Hostile fuzz of `weights_at` (per-step loss weights) and `realised_exposure` (StatefulDataLoader
state reader): a finite result or one ConfigError naming the field, never anything else."""

from __future__ import annotations

import pytest
from fuzz_harness import check_nonneg, fuzzer, run_api
from fuzz_strategies import hostile, sizes, taus
from hypothesis import strategies as st

import coolmix as cm

SCHEDULES = [cm.Cooldown(hot=5, cold=1, at=0.5), cm.Anneal(start=10, end=1), cm.UniMaxDynamic(max_epochs=2)]
weights_case = st.tuples(sizes, st.sampled_from(SCHEDULES), hostile, hostile, taus)


@fuzzer("api.weights_at", weights_case, fast=80, slow=400)
def _weights_at(case):
    s, sched, step, total, target = case
    run_api("weights_at", cm.weights_at, step, s, sched, total, target, check=check_nonneg)


test_weights_at_fast, test_weights_at_slow = _weights_at

leaf = st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=3), st.floats(allow_nan=True))
junk_state = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "_snapshot",
                    "_worker_snapshots",
                    "worker_0",
                    "worker_x",
                    "dataset_state",
                    "version",
                    "realised",
                    "en",
                    "tokens",
                    "documents",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


def _exposure_ok(r) -> str | None:
    ok = all(isinstance(c.get("tokens"), int) and isinstance(c.get("documents"), int) for c in r.values())
    return None if ok else f"not integer counts: {r!r}"


@fuzzer("api.realised_exposure", junk_state, fast=150, slow=800)
def _realised_exposure(state):
    pytest.importorskip("torch")
    from coolmix.integrations.loader import realised_exposure

    run_api("realised_exposure", realised_exposure, state, check=_exposure_ok)


test_realised_exposure_fast, test_realised_exposure_slow = _realised_exposure
