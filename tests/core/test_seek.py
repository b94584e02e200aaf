"""Seek: `batch(t)` at any step equals the sequential stream; bounded replay; the public counts API.

Every test compares against an independent sequential pass (steps 0, 1, 2, ... on a fresh
sampler), so a checkpoint that went stale, a walker restored from the wrong place or a
checkpoint thinned badly shows up as a differing batch.
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import coolmix as cm
from coolmix import sampler as sampler_module
from coolmix.testing import mc4_mixture, mc4_schedules

MC4 = mc4_mixture()
SCHEDULES = {**mc4_schedules(), "unimax_dynamic": cm.UniMaxDynamic(max_epochs=2)}
STEPS, BATCH = 300, 7


def sequential(schedule, composition="exact", steps=STEPS, events=()):
    s = cm.MixtureSampler(MC4, schedule, steps, BATCH, seed=5, composition=composition)
    for e in events:
        s.record_event(*e)
    return [tuple(x.tolist() for x in s.global_batch(t)) for t in range(steps)]


def fresh(schedule, composition="exact", steps=STEPS):
    return cm.MixtureSampler(MC4, schedule, steps, BATCH, seed=5, composition=composition)


@pytest.fixture(scope="module")
def reference():
    return {(n, c): sequential(s, c) for n, s in SCHEDULES.items() for c in ("exact", "iid")}


@pytest.mark.parametrize("composition", ["exact", "iid"])
@pytest.mark.parametrize("name", list(SCHEDULES))
@settings(max_examples=10)
@given(order=st.lists(st.integers(0, STEPS - 1), min_size=1, max_size=12))
def test_seek_in_any_order_equals_the_sequential_stream(reference, name, composition, order):
    s = fresh(SCHEDULES[name], composition)
    for t in order:
        assert tuple(x.tolist() for x in s.batch(t)) == reference[name, composition][t], t
        assert s.step == t + 1


@pytest.mark.parametrize("name", ["cooldown", "unimax_dynamic"])
def test_cumulative_counts_and_target_match_the_stream(reference, name):
    """C(t) = Σ_{s<t} bincount(batch s) and X(t) = Σ_{s<t} B·p(s) (p along the stream), within 1."""
    s = fresh(SCHEDULES[name])
    walk = fresh(SCHEDULES[name])
    counts, target = np.zeros(4, dtype=np.int64), np.zeros(4)
    for t in range(STEPS + 1):
        if t % 37 == 0 or t == STEPS:
            assert s.cumulative_counts_array(t).tolist() == counts.tolist()
            assert s.cumulative_target_array(t) == pytest.approx(target, abs=1e-9)
            assert np.all(np.abs(counts - target) <= 1 + 1e-9)
        if t < STEPS:
            p = walk.probs_array(t)  # as of now: p(t) sees the counts before t
            target += BATCH * p
            counts += np.bincount(np.array(reference[name, "exact"][t][0]), minlength=4)
            walk.global_batch(t)
    assert s.step == 0  # reading counts does not move the sampler
    assert s.cumulative_counts(STEPS) == dict(zip(MC4, counts.tolist(), strict=True))


def test_piecewise_target_is_closed_form_at_any_step():
    """Piecewise-constant schedules: X(t) from the phases, no walk, even at step 10**12."""
    s = cm.MixtureSampler(MC4, cm.Cooldown(at=500), total_steps=10**12, batch_size=256)
    hot = np.array(list(cm.temperature_probs(MC4, tau=5).values()))
    cold = np.array(list(cm.temperature_probs(MC4, tau=1).values()))
    t = 10**12
    assert s.cumulative_target_array(t) == pytest.approx(256 * (500 * hot + (t - 500) * cold), rel=1e-12)
    assert s._walker.step == 0  # closed form: nothing was replayed


def test_seek_replays_at_most_one_checkpoint_interval(monkeypatch):
    """Bounded work: after one pass, any batch(t) costs at most CHECKPOINT_EVERY count steps."""
    s = cm.MixtureSampler(MC4, cm.Anneal(start=5, end=1), total_steps=5000, batch_size=64, seed=1)
    s.cumulative_counts(5000)
    calls = []
    original = s._advance
    monkeypatch.setattr(s, "_advance", lambda: calls.append(1) or original())
    for t in np.random.default_rng(0).integers(0, 5000, size=40):
        calls.clear()
        s.batch(int(t))
        assert len(calls) <= sampler_module.CHECKPOINT_EVERY + 1


def test_thinned_checkpoints_stay_correct():
    ref = sequential(SCHEDULES["anneal"], steps=2000)
    s = fresh(SCHEDULES["anneal"], steps=2000)
    s._max_checkpoints = 6  # force several doublings of the spacing
    s.cumulative_counts(2000)
    assert len(s._checkpoints) <= 7 and s._every > sampler_module.CHECKPOINT_EVERY
    for t in (1999, 3, 1024, 777, 0, 1500):
        assert tuple(x.tolist() for x in s.batch(t)) == ref[t]


def test_event_recorded_after_a_walk_drops_stale_checkpoints():
    """Counts read ahead (checkpoints past step 100), then an event at 100: the stream is the one
    of a sampler that knew the event from the start."""
    sched = cm.Adaptive(hot=cm.Constant(cm.Temperature(5)), cold=cm.Constant(cm.Temperature(1)))
    ref = sequential(sched, events=[("cooldown", 100)])
    s = fresh(sched)
    s.cumulative_counts(STEPS)
    s.record_event("cooldown", 100)
    for t in (299, 99, 100, 150, 64, 256):
        assert tuple(x.tolist() for x in s.batch(t)) == ref[t]


def test_set_schedule_keeps_earlier_steps_as_produced():
    s = fresh(SCHEDULES["constant"])
    before = [tuple(x.tolist() for x in s.global_batch(t)) for t in range(120)]
    s.set_schedule(cm.Constant(cm.Uniform()))
    after = [tuple(x.tolist() for x in s.global_batch(t)) for t in range(120, 200)]
    assert [tuple(x.tolist() for x in s.batch(t)) for t in (5, 64, 119)] == [
        before[5],
        before[64],
        before[119],
    ]
    assert tuple(x.tolist() for x in s.batch(150)) == after[30]
    assert np.bincount(after[30][0], minlength=4).min() >= 1  # uniform: every domain, every batch


@pytest.mark.parametrize("name", ["cooldown", "unimax_dynamic"])
def test_seek_after_resume_before_and_after_the_loaded_step(reference, name):
    s = fresh(SCHEDULES[name])
    for t in range(130):
        s.batch(t)
    state = json.loads(json.dumps(s.state_dict()))
    r = fresh(SCHEDULES[name])
    r.load_state_dict(state)
    assert tuple(x.tolist() for x in r.batch(200)) == reference[name, "exact"][200]
    assert tuple(x.tolist() for x in r.batch(40)) == reference[name, "exact"][40]  # replayed from 0
    assert r.cumulative_counts(260) == fresh(SCHEDULES[name]).cumulative_counts(260)
    assert r.cumulative_target(260) == pytest.approx(fresh(SCHEDULES[name]).cumulative_target(260))


@pytest.mark.parametrize("composition", ["exact", "iid"])
def test_sample_at_is_the_global_batch_at_step_and_slot(reference, composition):
    s = fresh(SCHEDULES["cooldown"], composition)
    g = np.random.default_rng(3).integers(0, STEPS * BATCH, size=(5, 40))
    d, i = s.sample_at(g)
    assert d.shape == i.shape == g.shape
    for gi, di, ii in zip(g.ravel(), d.ravel(), i.ravel(), strict=True):
        step, slot = divmod(int(gi), BATCH)
        assert (di, ii) == (
            reference["cooldown", composition][step][0][slot],
            reference["cooldown", composition][step][1][slot],
        )
    assert s.sample_at(int(g[0, 0])) == (int(d[0, 0]), int(i[0, 0]))
    assert s.step == 0  # the index map is stateless


@pytest.mark.parametrize("bad", [-1, 2.5, True, np.array([1, -3]), 2**70, "7"])
def test_sample_at_rejects_bad_indices(bad):
    with pytest.raises(cm.ConfigError) as e:
        fresh(SCHEDULES["constant"]).sample_at(bad)
    assert e.value.field == "index"


@pytest.mark.parametrize("step", [-1, 1.5, 2**63, "3"])
def test_counts_api_rejects_bad_steps(step):
    s = fresh(SCHEDULES["constant"])
    for f in (s.cumulative_counts, s.cumulative_target, s.batch):
        with pytest.raises(cm.ConfigError) as e:
            f(step)
        assert e.value.field == "step"


def test_ledger_rebuilt_from_the_counts_api_matches_the_stream(reference):
    from coolmix.diagnostics.ledger import ExposureLedger

    s = fresh(SCHEDULES["cooldown"])
    led = ExposureLedger.from_sampler(s, 200)
    drawn = np.bincount(
        np.concatenate([reference["cooldown", "exact"][t][0] for t in range(200)]), minlength=4
    )
    assert led.examples.tolist() == drawn.tolist() and led.steps == 200
    assert led.target == pytest.approx(s.cumulative_target_array(200))
