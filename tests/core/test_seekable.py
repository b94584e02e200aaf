"""composition="seekable": cold seek equals the sequential stream, the proved count bound, passes,
resume, ranks, mid-run changes, refusals, a golden stream, and seek work independent of t."""

import json
import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import coolmix as cm
from coolmix import seekable
from coolmix.schedules._static import Cooldown
from coolmix.testing import (
    assert_rank_slices_partition,
    assert_resumes_from_every_step,
    mc4_mixture,
    mc4_schedules,
)

MC4 = mc4_mixture()
SCHEDULES = {**mc4_schedules(), "dense": cm.Dense(phases=4)}
STEPS, BATCH = 200, 7


def make(schedule, steps=STEPS, batch=BATCH, sizes=MC4, seed=5):
    return cm.MixtureSampler(sizes, schedule, steps, batch, seed=seed, composition="seekable")


def as_lists(batch):
    return tuple(x.tolist() for x in batch)


def sequential(sampler, steps):
    return [as_lists(sampler.global_batch(t)) for t in range(steps)]


@pytest.fixture(scope="module")
def reference():
    return {n: sequential(make(s), STEPS) for n, s in SCHEDULES.items()}


def bound(sampler, t):
    """(1 + (k−2)·max p_i)/2, the max over the steps that meet [t − k/(2B), t + k/(2B)]."""
    k, B = len(sampler.names), sampler.batch_size
    reach = math.ceil(k / (2 * B))
    steps = range(max(0, t - reach - 1), t + reach + 1)
    p = np.max([sampler.probs_array(s) for s in steps], axis=0)
    return (1 + (k - 2) * p) / 2


# -- seek ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCHEDULES))
@settings(max_examples=8, derandomize=True)
@given(order=st.lists(st.integers(0, STEPS - 1), min_size=1, max_size=10))
def test_cold_seek_equals_the_sequential_stream(reference, name, order):
    s = make(SCHEDULES[name])
    for t in order:
        assert as_lists(s.batch(t)) == reference[name][t], t
        assert s.step == t + 1
        assert s.cursors == s.cumulative_counts(t + 1)
    assert s._walker.step == 0  # no count walk: every batch is a pure function of its step


def test_seek_far_is_closed_form_and_calls_no_schedule(monkeypatch):
    """Piecewise-constant: the target table costs #phases probs calls once, then a seek costs none."""
    calls = []
    original = Cooldown.probs
    monkeypatch.setattr(Cooldown, "probs", lambda self, t, ctx: calls.append(t) or original(self, t, ctx))
    s = make(cm.Cooldown(at=500), steps=10**9, batch=256)
    s.batch(3)
    built = len(calls)
    assert built <= 3
    for t in (10**6, 10**9 - 1, 499, 500, 12_345_678):
        d, _ = s.batch(t)
        assert len(d) == 256 and s.step == t + 1
    assert len(calls) == built
    assert s.cumulative_counts_array(10**9).sum() == 256 * 10**9


def test_continuous_schedule_builds_the_prefix_once(monkeypatch):
    """Anneal: O(t) rows of p the first time past t (vectorised), then at most BLOCK + a window."""
    s = make(SCHEDULES["anneal"], steps=5000, batch=64)
    sched = SCHEDULES["anneal"]
    rows, scalar = [], []
    original_rows, original = type(sched).probs_rows, type(sched).probs

    def counted_rows(self, a, b, ctx):
        rows.append(b - a)
        return original_rows(self, a, b, ctx)

    monkeypatch.setattr(type(sched), "probs_rows", counted_rows)
    monkeypatch.setattr(type(sched), "probs", lambda self, t, ctx: scalar.append(t) or original(self, t, ctx))
    s.batch(4000)
    assert 4000 <= sum(rows) <= 4000 + 2 * seekable.BLOCK
    assert len(rows) <= 4000 // (1024 * seekable.BLOCK) + 4  # chunks, not one call per step
    for t in np.random.default_rng(0).integers(0, 4000, size=20):
        rows.clear()
        s.batch(int(t))
        assert sum(rows) <= seekable.BLOCK + 16


def test_vectorised_anneal_rows_match_the_per_step_probs():
    ctx = cm.schedules.Context(("a", "b", "c"), np.array([1000.0, 30.0, 1.0]), 500, ())
    for shape in ("linear", "cosine", "exponential"):
        sched = cm.Anneal(start=7, end=1, shape=shape, begin=0.1, finish=0.8)
        rows = sched.probs_rows(0, 500, ctx)
        ref = np.array([sched.probs(t, ctx) for t in range(500)])
        np.testing.assert_allclose(rows, ref, rtol=1e-12, atol=1e-15)


def test_sample_at_is_the_global_batch_at_step_and_slot(reference):
    s = make(SCHEDULES["cooldown"])
    g = np.random.default_rng(3).integers(0, STEPS * BATCH, size=(4, 30))
    d, i = s.sample_at(g)
    for gi, di, ii in zip(g.ravel(), d.ravel(), i.ravel(), strict=True):
        step, slot = divmod(int(gi), BATCH)
        assert (di, ii) == (reference["cooldown"][step][0][slot], reference["cooldown"][step][1][slot])
    assert s.step == 0


def test_slot_domains_in_arrival_order_have_the_batch_counts():
    s = make(SCHEDULES["stages"], batch=3)
    target = s._comp._epoch(0)[2]
    zero = np.zeros(4, dtype=np.int64)
    for t in range(0, STEPS, 7):
        dom = seekable.slot_domains(target, t, 0, zero)
        counts = s.cumulative_counts_array(t + 1) - s.cumulative_counts_array(t)
        assert np.bincount(dom, minlength=4).tolist() == counts.tolist()
        assert np.bincount(s.batch(t)[0], minlength=4).tolist() == counts.tolist()


def test_steps_beyond_the_float_range_are_refused():
    s = make(SCHEDULES["constant"], steps=10, batch=2**20)
    with pytest.raises(cm.ConfigError) as e:
        s.batch(2**28)
    assert e.value.field == "step"


def test_cumulative_target_of_a_continuous_schedule_is_the_sum():
    s = make(SCHEDULES["anneal"])
    x = sum(BATCH * s.probs_array(t) for t in range(150))
    assert s.cumulative_target_array(150) == pytest.approx(x, rel=1e-12)


# -- counts: the bound ------------------------------------------------------------------------------

sizes_st = st.lists(st.integers(1, 500), min_size=2, max_size=8).map(
    lambda xs: {f"d{i}": x for i, x in enumerate(xs)}
)
piecewise_st = st.sampled_from(
    [
        cm.Constant(cm.Temperature(1)),
        cm.Constant(cm.Uniform()),
        cm.Constant(cm.Temperature(5)),
        cm.Cooldown(hot=5, cold=1, at=0.5),
        cm.Stages(starts=(0, 0.25, 0.6), dists=(cm.Temperature(1), cm.Uniform(), cm.Temperature(2))),
    ]
)


@settings(max_examples=60, derandomize=True)
@given(sizes_st, piecewise_st, st.integers(1, 64), st.integers(0, 2**31))
def test_counts_are_valid_and_within_the_proved_bound(sizes, sched, batch, seed):
    """Counts >= 0 summing to B; |C_i(t) − X_i(t)| <= (1 + (k−2)·max p_i)/2 at every step."""
    steps = 40
    s = cm.MixtureSampler(
        sizes, sched, total_steps=steps, batch_size=batch, seed=seed, composition="seekable"
    )
    previous = np.zeros(len(sizes), dtype=np.int64)
    for t in range(steps + 1):
        c = s.cumulative_counts_array(t)
        assert c.sum() == t * batch and np.all(c >= previous), t
        x = s.cumulative_target_array(t)
        assert np.all(np.abs(c - x) <= bound(s, t) + 1e-9), (t, c, x)
        if t < steps:
            d, _ = s.batch(t)
            assert (
                np.bincount(d, minlength=len(sizes)).tolist()
                == (s.cumulative_counts_array(t + 1) - c).tolist()
            )
        previous = c


@settings(max_examples=60, derandomize=True)
@given(
    st.lists(st.integers(1, 10**6), min_size=2, max_size=3).map(
        lambda xs: {f"d{i}": x for i, x in enumerate(xs)}
    ),
    piecewise_st,
    st.integers(1, 64),
)
def test_within_one_item_for_up_to_three_domains(sizes, sched, batch):
    s = cm.MixtureSampler(sizes, sched, total_steps=60, batch_size=batch, composition="seekable")
    for t in range(61):
        gap = np.abs(s.cumulative_counts_array(t) - s.cumulative_target_array(t))
        assert np.all(gap < 1), (t, gap)


def test_the_bound_is_sharp():
    """Brute force over constant p: the worst |C − X| / ((1 + (k−2)p_i)/2) comes within 2% of 1."""
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(300):
        k, B = int(rng.integers(4, 7)), int(rng.integers(1, 9))
        p = rng.dirichlet(np.full(k, 0.3))
        target = seekable.PiecewiseTarget([0], p[None, :], B)
        X, _ = target.window(0, 40)
        for t in range(40):
            gap = np.abs(seekable.cursors_at(target, t) - X[t])
            worst = max(worst, float((gap / ((1 + (k - 2) * p) / 2)).max()))
    assert 0.98 < worst <= 1 + 1e-12


def test_four_domains_can_be_more_than_one_item_off():
    """The trade against "exact": with k = 4 and a dominant domain the gap exceeds 1 somewhere."""
    p = np.array([[0.91, 0.03, 0.03, 0.03]])
    target = seekable.PiecewiseTarget([0], p, 3)
    X, _ = target.window(0, 400)
    gaps = [np.abs(seekable.cursors_at(target, t) - X[t]).max() for t in range(400)]
    assert 1 < max(gaps) <= (1 + 2 * 0.91) / 2


# -- items, resume, ranks -------------------------------------------------------------------------


def test_passes_use_every_item_floor_or_ceil_times():
    sizes = {"a": 1, "b": 10, "c": 37}
    s = make(cm.Constant(cm.Uniform()), steps=120, batch=8, sizes=sizes)
    uses = [dict() for _ in sizes]
    for t in range(120):
        d, i = s.batch(t)
        for di, ii in zip(d.tolist(), i.tolist(), strict=True):
            uses[di][ii] = uses[di].get(ii, 0) + 1
    for (name, n), used, drawn in zip(sizes.items(), uses, s.cursors.values(), strict=True):
        assert set(used) <= set(range(n)), name
        counts = [used.get(j, 0) for j in range(n)]
        assert set(counts) <= {drawn // n, -(-drawn // n)}, (name, counts)


@pytest.mark.parametrize("name", ["cooldown", "anneal", "order_matters"])
def test_resumes_from_every_step_and_ranks_partition(name):
    assert_resumes_from_every_step(lambda: make(SCHEDULES[name], steps=24, batch=8), steps=24)
    assert_rank_slices_partition(make(SCHEDULES[name], steps=24, batch=8), steps=24, world_sizes=(1, 2, 4, 8))


def test_state_from_another_composition_is_refused():
    exact = cm.MixtureSampler(MC4, 5.0, total_steps=10, batch_size=7, seed=5)
    exact.global_batch(0)
    with pytest.raises(cm.ConfigError) as e:
        make(5.0, steps=10).load_state_dict(exact.state_dict())
    assert e.value.field == "state_dict.composition"
    with pytest.raises(cm.ConfigError) as e:
        exact.load_state_dict(make(5.0, steps=10).state_dict())
    assert e.value.field == "state_dict.composition"


def test_exposure_driven_schedules_are_refused():
    with pytest.raises(cm.ConfigError) as e:
        make(cm.UniMaxDynamic(max_epochs=2))
    assert e.value.field == "composition" and "exposure" in str(e.value)
    s = make(SCHEDULES["constant"])
    with pytest.raises(cm.ConfigError) as e:
        s.set_schedule(cm.UniMaxDynamic(max_epochs=2))
    assert e.value.field == "composition"
    assert s.schedule == SCHEDULES["constant"]


# -- mid-run changes ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 2, 7])
def test_set_schedule_never_changes_earlier_batches(batch):
    """With B < k the batch before t0 reads segments after t0: the new epoch must not move it."""
    for t0 in range(1, 41, 3):
        s = make(SCHEDULES["cooldown"], steps=80, batch=batch)
        before = sequential(s, t0)
        s.set_schedule(cm.Constant(cm.Uniform()))
        after = [as_lists(s.global_batch(t)) for t in range(t0, 80)]
        assert [as_lists(s.batch(t)) for t in range(t0)] == before, t0
        assert [as_lists(s.batch(t)) for t in range(t0, 80)] == after
        c = [s.cumulative_counts_array(t) for t in range(81)]
        assert all(np.all(b - a >= 0) and (b - a).sum() == batch for a, b in pairwise(c))
        # uniform from t0: every domain reaches its share of the new steps, up to the carried bound
        assert np.all(np.abs(c[80] - c[t0] - batch * (80 - t0) / 4) <= 3)


def test_events_recorded_mid_run_resume_exactly():
    """Adaptive cooldown recorded at the produced step: resuming from any step reproduces the run."""
    sched = cm.Adaptive(hot=cm.Constant(cm.Temperature(5)), cold=cm.Constant(cm.Temperature(1)))
    at, steps = 9, 30

    def run(stop, state=None):
        s = make(sched, steps=steps, batch=3)
        start = 0
        if state is not None:
            s.load_state_dict(state)
            start = s.step
        out = []
        for t in range(start, stop):
            if t == at and not s.events:
                s.record_event("cooldown")
            out.append(as_lists(s.global_batch(t)))
        return s, out

    _, expected = run(steps)
    for k in range(steps + 1):
        first, _ = run(k)
        state = json.loads(json.dumps(first.state_dict()))
        _, got = run(steps, state)
        assert got == expected[k:], k
    full, _ = run(steps)
    assert [as_lists(full.batch(t)) for t in range(steps)] == expected  # earlier epochs kept


# -- golden ---------------------------------------------------------------------------------------

# fmt: off
GOLDEN = (
    [1, 2, 1, 0, 2, 2, 2, 1, 1, 0, 2, 2, 2, 0, 1, 2, 1, 2, 2, 0, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2],
    [9, 4, 5, 0, 18, 81, 29, 7, 2, 0, 15, 28, 83, 0, 0, 66, 3, 1, 32, 0, 37, 16, 56, 8, 21, 59, 14, 75,
     1, 85],
)
# fmt: on


def test_golden_first_batches():
    """The first 5 batches of a fixed small config, pinned: a change of the stream shows up here."""
    s = make(cm.Cooldown(hot=5, cold=1, at=3), steps=10, batch=6, sizes={"a": 1, "b": 10, "c": 100})
    d, i = zip(*(s.global_batch(t) for t in range(5)), strict=True)
    assert (np.concatenate(d).tolist(), np.concatenate(i).tolist()) == GOLDEN
