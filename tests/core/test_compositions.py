"""Every registered composition (and a toy one defined here) honours the protocol through MixtureSampler:
batches of B, cumulative counts = the batches' counts, a cold seek = the sequential stream, and a
saved state resumes exactly. Parametrised over `COMPOSITIONS`, so a new entry is tested the day it
is registered."""

import json

import numpy as np
import pytest

import coolmix as cm
from coolmix.compositions import COMPOSITIONS, Composition, TokenDeficit, composition_class
from coolmix.counts import exact_counts

SIZES = {"en": 700, "it": 90, "zh": 20, "sw": 5}
STEPS, BATCH = 40, 6


class BlockExact(Composition):
    """A toy "block-exact" rule, the whole of it: largest remainder whose residuals restart every
    `block` steps, so each block of steps is within 1 of its own target (one class, nothing else)."""

    name = "block_exact"
    block = 4

    def step(self, t, p, carry):
        if t % self.block == 0:
            carry = np.zeros_like(carry)
        counts, carry = exact_counts(p, self.batch_size, carry)
        return counts, carry, None


RULES = [*COMPOSITIONS.values(), BlockExact]
SCHEDULES = {
    "cooldown": cm.Cooldown(hot=5, cold=1, at=0.5),
    "anneal": cm.Anneal(start=10, end=1, shape="linear"),
}


def make(rule, schedule, seed=2):
    return cm.MixtureSampler(
        SIZES, schedule, total_steps=STEPS, batch_size=BATCH, seed=seed, composition=rule
    )


def stream(s, start=0):
    return [tuple(a.tolist() for a in s.global_batch(t)) for t in range(start, STEPS)]


@pytest.mark.parametrize("sched", list(SCHEDULES), ids=str)
@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_batches_add_up_to_the_cumulative_counts(rule, sched):
    s = make(rule, SCHEDULES[sched])
    counts = np.zeros(len(SIZES), dtype=np.int64)
    for t, (dom, items) in enumerate(stream(s)):
        assert len(dom) == len(items) == BATCH
        assert s.cumulative_counts_array(t).tolist() == counts.tolist()
        counts += np.bincount(dom, minlength=len(SIZES))
    assert s.cumulative_counts_array(STEPS).tolist() == counts.tolist()


@pytest.mark.parametrize("sched", list(SCHEDULES), ids=str)
@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_a_cold_seek_equals_the_sequential_stream(rule, sched):
    whole = stream(make(rule, SCHEDULES[sched]))
    for t in (37, 5, 22, 0, 39):
        cold = make(rule, SCHEDULES[sched])
        assert tuple(a.tolist() for a in cold.global_batch(t)) == whole[t]


@pytest.mark.parametrize("sched", list(SCHEDULES), ids=str)
@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_a_saved_state_round_trips_and_resumes_exactly(rule, sched):
    whole = stream(make(rule, SCHEDULES[sched]))
    for stop in (0, 1, 13, 39):
        s = make(rule, SCHEDULES[sched])
        for t in range(stop):
            s.global_batch(t)
        state = json.loads(json.dumps(s.state_dict()))
        assert state["format"] == 3 and state["kind"] == "sampler" and state["composition"] == rule.name
        again = make(rule, SCHEDULES[sched])
        again.load_state_dict(state)
        assert again.state_dict() == state
        assert stream(again, stop) == whole[stop:]


def test_the_toy_block_exact_rule_keeps_each_block_within_one_of_its_target():
    s = make(BlockExact, SCHEDULES["cooldown"])
    for lo in range(0, STEPS, BlockExact.block):
        hi = lo + BlockExact.block
        got = s.cumulative_counts_array(hi) - s.cumulative_counts_array(lo)
        want = s.cumulative_target_array(hi) - s.cumulative_target_array(lo)
        assert np.abs(got - want).max() <= 1.0 + 1e-9
    # and it is a different stream from "exact" (the residuals really restart)
    assert stream(make(BlockExact, SCHEDULES["cooldown"])) != stream(make("exact", SCHEDULES["cooldown"]))


def test_registering_a_class_by_name_is_the_one_step(monkeypatch):
    with pytest.raises(cm.ConfigError) as e:
        make("block_exact", 1.0)
    assert e.value.field == "composition"
    monkeypatch.setitem(COMPOSITIONS, "block_exact", BlockExact)
    assert composition_class("block_exact") is BlockExact
    assert stream(make("block_exact", 1.0)) == stream(make(BlockExact, 1.0))


def test_a_state_of_another_composition_is_refused():
    s = make(BlockExact, 1.0)
    s.global_batch(0)
    with pytest.raises(cm.ConfigError) as e:
        make("exact", 1.0).load_state_dict(s.state_dict())
    assert e.value.field == "state_dict.composition"


@pytest.mark.parametrize("bad", ["exactly", 3, Composition, object])
def test_an_unknown_composition_is_one_error(bad):
    with pytest.raises(cm.ConfigError) as e:
        make(bad, 1.0)
    assert e.value.field == "composition"


def test_token_deficit_list_and_array_paths_agree():
    """The packer's fast path (lists) and array path pick the same domains and keep the same Z."""
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.3, 0.2])
    arr, lst = TokenDeficit(3), TokenDeficit(3).target.tolist()
    real_a, real_l = np.zeros(3), [0.0, 0.0, 0.0]
    for _ in range(200):
        d = arr.choose(p, real_a, True)
        assert d == TokenDeficit.choose_lists(lst, real_l)
        n = int(rng.integers(1, 9))
        real_a[d] += n
        real_l[d] += n
        arr.place(p, n)
        TokenDeficit.place_lists(lst, p.tolist(), n)
        assert arr.target.tolist() == lst
        assert abs(float((arr.target - real_a).sum())) < 1e-9  # Σ (Z − Y) = 0 at every placement


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_a_dropped_sampler_is_freed_without_the_cyclic_gc(rule):
    """No sampler ↔ composition reference cycle: a cycle leaves every dropped sampler (checkpoints,
    cached batch) to the cyclic GC, which measurably slowed streams when many samplers were built."""
    import gc
    import weakref

    s = make(rule, SCHEDULES["cooldown"])
    s.global_batch(3)
    ref = weakref.ref(s)
    enabled = gc.isenabled()
    gc.disable()
    try:
        del s
        assert ref() is None
    finally:
        if enabled:
            gc.enable()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_a_sampler_pickles_with_its_composition_link(rule):
    """Spawned DataLoader workers receive the sampler by pickle: the weak link to the composition's
    target builder must survive it, mid-run too (a weakref alone does not pickle)."""
    import pickle

    s = make(rule, SCHEDULES["cooldown"])
    s.global_batch(3)
    copy = pickle.loads(pickle.dumps(s))
    for step in (4, 0, 7):
        for a, b in zip(copy.global_batch(step), s.global_batch(step), strict=True):
            np.testing.assert_array_equal(a, b)
    assert copy.cumulative_counts(5) == s.cumulative_counts(5)


def test_a_registered_composition_is_accepted_by_configs_and_an_unknown_one_is_named(monkeypatch):
    """Configs check the registry, not a fixed list: a new composition is one class + one entry."""
    from coolmix.errors import ConfigError
    from coolmix.mixconfig import plan_config_from_dict
    from coolmix.train import load_config

    monkeypatch.setitem(COMPOSITIONS, BlockExact.name, BlockExact)
    base = {"data": {"name": "bible", "langs": ["en", "sw"]}, "balance": {"composition": BlockExact.name}}
    assert load_config(base).balance.composition == BlockExact.name
    plan = {
        "mixture": {"sizes": {"en": 10, "sw": 2}},
        "schedule": {"kind": "constant", "tau": 5},
        "run": {"total_steps": 4, "batch_size": 2, "composition": BlockExact.name},
    }
    assert plan_config_from_dict(plan).run.composition == BlockExact.name
    with pytest.raises(ConfigError) as e:
        load_config({**base, "balance": {"composition": "nope"}})
    assert e.value.field == "balance.composition" and BlockExact.name in e.value.why
    monkeypatch.delitem(COMPOSITIONS, BlockExact.name)
    with pytest.raises(ConfigError):
        load_config(base)
