"""MixtureSampler: exact composition, without-replacement passes, resume, ranks, elasticity, edge cases."""

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import coolmix as cm
from coolmix.counts import exact_counts_small
from coolmix.sampler import exact_counts

SIZES = {"a": 1000, "b": 100, "c": 10}  # sizes reveal the domain
MC4 = {"en": 2733, "it": 162, "zh": 39, "sw": 1}

sizes_st = st.lists(st.integers(1, 500), min_size=1, max_size=8).map(
    lambda xs: {f"d{i}": x for i, x in enumerate(xs)}
)
sched_st = st.sampled_from(
    [
        cm.Constant(cm.Temperature(1)),
        cm.Cooldown(hot=5, cold=1, at=0.5),
        cm.Constant(cm.Uniform()),
        cm.Anneal(start=10, end=1, shape="cosine"),
        cm.Dense(phases=4),
    ]
)


def stream(sampler, steps, start=0):
    return [tuple(map(np.ndarray.tolist, sampler.global_batch(t))) for t in range(start, steps)]


def test_batch_shapes_and_ranges():
    s = cm.MixtureSampler(SIZES, 5.0, total_steps=50, batch_size=32, seed=1)
    for t in range(50):
        d, i = s.batch(t)
        assert d.dtype == np.int64 and i.dtype == np.int64 and len(d) == len(i) == 32
        n = np.array(list(SIZES.values()))[d]
        assert np.all((i >= 0) & (i < n))


@given(sizes_st, sched_st, st.integers(1, 64), st.integers(0, 2**31))
def test_exact_cumulative_counts_within_one_of_target(sizes, sched, batch, seed):
    """At every batch boundary each domain's count is within 1 of Σ_t B·p_i(t)."""
    steps = 40
    s = cm.MixtureSampler(sizes, sched, total_steps=steps, batch_size=batch, seed=seed)
    names = list(sizes)
    realised = np.zeros(len(names))
    target = np.zeros(len(names))
    for t in range(steps):
        d, _ = s.batch(t)
        realised += np.bincount(d, minlength=len(names))
        target += batch * np.array(list(s.probs_at(t).values()))
        assert np.all(np.abs(realised - target) < 1 + 1e-9), (t, realised, target)
    assert realised.tolist() == [s.cursors[n] for n in names]
    assert s.cumulative_target(steps) == pytest.approx(dict(zip(names, target, strict=True)))


def test_exact_counts_zero_probability_domain_gets_nothing():
    counts, _ = exact_counts(np.array([0.5, 0.5, 0.0]), 3, np.array([0.2, -0.9, 0.7]))
    assert counts.tolist()[2] == 0 and counts.sum() == 3


@given(st.integers(1, 40), st.integers(1, 300), st.integers(0, 1000))
def test_without_replacement_passes(n, draws, seed):
    """After k passes' worth of draws every item was used floor(k) or ceil(k) times."""
    s = cm.MixtureSampler({"x": n}, 1.0, total_steps=draws, batch_size=1, seed=seed)
    items = np.concatenate([s.batch(t)[1] for t in range(draws)])
    uses = np.bincount(items, minlength=n)
    assert uses.min() == draws // n and uses.max() == math.ceil(draws / n)
    # every complete pass is a permutation of [0, n)
    for p in range(draws // n):
        assert sorted(items[p * n : (p + 1) * n].tolist()) == list(range(n))


def test_passes_use_fresh_permutations():
    s = cm.MixtureSampler({"x": 50}, 1.0, total_steps=2, batch_size=50, seed=0)
    p0, p1 = s.batch(0)[1], s.batch(1)[1]
    assert sorted(p0) == sorted(p1) == list(range(50)) and p0.tolist() != p1.tolist()


def test_domain_smaller_than_batch():
    s = cm.MixtureSampler({"big": 10_000, "tiny": 3}, math.inf, total_steps=4, batch_size=64, seed=0)
    d, i = s.batch(0)
    tiny = i[d == 1]
    assert len(tiny) == 32 and np.bincount(tiny, minlength=3).tolist() in (
        [11, 11, 10],
        [11, 10, 11],
        [10, 11, 11],
    )


def test_deterministic_and_seed_dependent():
    a = stream(cm.MixtureSampler(MC4, cm.Cooldown(), 20, 16, seed=3), 20)
    b = stream(cm.MixtureSampler(MC4, cm.Cooldown(), 20, 16, seed=3), 20)
    c = stream(cm.MixtureSampler(MC4, cm.Cooldown(), 20, 16, seed=4), 20)
    assert a == b and a != c


@pytest.mark.parametrize("composition", ["exact", "iid"])
@given(stop=st.integers(0, 30), sched=sched_st)
def test_resume_from_any_step_via_json(composition, stop, sched):
    steps = 30
    full = stream(cm.MixtureSampler(MC4, sched, steps, 12, seed=7, composition=composition), steps)
    s = cm.MixtureSampler(MC4, sched, steps, 12, seed=7, composition=composition)
    for t in range(stop):
        s.batch(t)
    state = json.loads(json.dumps(s.state_dict()))
    resumed = cm.MixtureSampler(MC4, sched, steps, 12, seed=7, composition=composition)
    resumed.load_state_dict(state)
    assert resumed.step == stop
    assert stream(resumed, steps, start=stop) == full[stop:]


def test_state_is_small_and_independent_of_sizes():
    small = cm.MixtureSampler({"a": 10, "b": 5}, 5.0, 10, 8, seed=0)
    huge = cm.MixtureSampler({"a": 10**12, "b": 5 * 10**11}, 5.0, 10, 8, seed=0)
    for s in (small, huge):
        for t in range(10):
            s.batch(t)
    assert len(json.dumps(huge.state_dict())) < 450  # format 3's envelope (kind, domains) is ~60 of it
    assert set(small.state_dict()) == set(huge.state_dict())


def test_huge_domains_sample_in_range():
    sizes = {"en": 2733 * 10**9, "sw": 10**9}
    s = cm.MixtureSampler(sizes, 5.0, total_steps=10, batch_size=4096, seed=0)
    d, i = s.batch(3)
    assert np.all(i[d == 0] < sizes["en"]) and np.all(i[d == 1] < sizes["sw"]) and i.max() > 10**9
    assert len(set(i[d == 0].tolist())) == int((d == 0).sum())  # no repeats within a pass


@given(st.sampled_from([1, 2, 4, 8]), st.integers(0, 19))
def test_rank_slices_partition_the_global_batch(world, step):
    s = cm.MixtureSampler(MC4, cm.Cooldown(), 20, 16, seed=0)
    gd, gi = s.global_batch(step)
    parts = [s.batch(step, rank=r, world_size=world) for r in range(world)]
    assert np.concatenate([p[0] for p in parts]).tolist() == gd.tolist()
    assert np.concatenate([p[1] for p in parts]).tolist() == gi.tolist()


def test_elastic_resume_on_a_different_world_size():
    """Run 2 ranks to step 7, resume with 4 ranks: the global stream is unchanged."""
    full = stream(cm.MixtureSampler(MC4, cm.Cooldown(), 16, 8, seed=2), 16)
    ranks = [cm.MixtureSampler(MC4, cm.Cooldown(), 16, 8, seed=2) for _ in range(2)]
    seen = []
    for t in range(7):
        seen.append([ranks[r].batch(t, rank=r, world_size=2) for r in range(2)])
    state = ranks[0].state_dict()
    assert state == ranks[1].state_dict()
    new = [cm.MixtureSampler(MC4, cm.Cooldown(), 16, 8, seed=2) for _ in range(4)]
    for s in new:
        s.load_state_dict(state)
    for t in range(7, 16):
        parts = [new[r].batch(t, rank=r, world_size=4) for r in range(4)]
        assert np.concatenate([p[0] for p in parts]).tolist() == full[t][0]
        assert np.concatenate([p[1] for p in parts]).tolist() == full[t][1]
    for t in range(7):
        assert np.concatenate([p[0] for p in seen[t]]).tolist() == full[t][0]


def test_schedule_change_mid_run_neither_replays_nor_skips():
    """Each batch's items of a domain are exactly the next block of that domain's pass sequence."""
    s = cm.MixtureSampler(SIZES, 5.0, total_steps=60, batch_size=16, seed=9)
    cursor = dict.fromkeys(SIZES, 0)
    for t in range(60):
        if t == 30:
            s.set_schedule(cm.Constant(cm.Uniform()))
        d, i = s.batch(t)
        for k, n in enumerate(SIZES):
            got = sorted(i[d == k].tolist())
            expected = s._domain_items(k, cursor[n], len(got)).tolist() if got else []
            assert got == sorted(expected)
            cursor[n] += len(got)
    assert cursor == s.cursors


def test_adaptive_event_is_part_of_the_state():
    sched = cm.Adaptive(hot=cm.Constant(cm.Temperature(5)), cold=cm.Constant(cm.Temperature(1)))
    s = cm.MixtureSampler(MC4, sched, 40, 16, seed=0)
    for t in range(10):
        s.batch(t)
    assert s.tau_at(10) == 5.0
    s.record_event("cooldown", reason="test")
    assert s.tau_at(9) == 5.0 and s.tau_at(10) == 1.0
    for t in range(10, 20):
        s.batch(t)
    state = json.loads(json.dumps(s.state_dict()))
    r = cm.MixtureSampler(MC4, sched, 40, 16, seed=0)
    r.load_state_dict(state)
    assert r.events == s.events
    assert stream(r, 40, 20) == stream(s, 40, 20)
    with pytest.raises(cm.ConfigError) as e:
        s.record_event("cooldown", step=3)
    assert e.value.field == "event.step"


def test_zero_probability_phase_draws_nothing():
    s = cm.MixtureSampler(SIZES, cm.OrderMatters(high=("a",), at=0.5), total_steps=20, batch_size=8, seed=0)
    for t in range(10):
        assert set(s.batch(t)[0].tolist()) == {0}
    later = np.concatenate([s.batch(t)[0] for t in range(10, 20)])
    assert 1 in later.tolist()  # b (p ≈ 0.09) is back after the switch


def test_unimax_dynamic_stops_drawing_exhausted_domains():
    s = cm.MixtureSampler(SIZES, cm.UniMaxDynamic(max_epochs=2), total_steps=200, batch_size=6, seed=0)
    for t in range(200):
        s.batch(t)
    c = s.cursors
    assert 20 <= c["c"] <= 20 + 6 and 200 <= c["b"] <= 200 + 6  # dropped within one batch of the cap
    assert c["a"] == 200 * 6 - c["b"] - c["c"]


def test_iid_mode_matches_probabilities_on_average():
    s = cm.MixtureSampler(MC4, 5.0, total_steps=400, batch_size=256, seed=0, composition="iid")
    counts = np.zeros(4)
    per_batch_sw = []
    for t in range(400):
        d, _ = s.batch(t)
        b = np.bincount(d, minlength=4)
        counts += b
        per_batch_sw.append(b[3])
    p = np.array(list(cm.temperature_probs(MC4, tau=5).values()))
    expected = 400 * 256 * p
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))  # 5-sigma binomial band
    assert np.std(per_batch_sw) > 1.0  # iid batches vary in composition; exact ones do not


def test_exact_batches_have_stable_composition():
    s = cm.MixtureSampler(MC4, 5.0, total_steps=50, batch_size=256, seed=0)
    sw = [int((s.batch(t)[0] == 3).sum()) for t in range(50)]
    assert max(sw) - min(sw) <= 2  # floor or ceil of B·p ± a carried residual in (-1, 1)


def test_thousand_domains():
    sizes = {f"d{i}": int(1e6 / (i + 1)) for i in range(1500)}
    s = cm.MixtureSampler(sizes, 5.0, total_steps=10, batch_size=2048, seed=0)
    d, i = s.batch(0)
    assert len(d) == 2048 and d.max() < 1500
    assert np.all(i < np.array(list(sizes.values()))[d])


def test_random_access_to_an_earlier_step_recomputes_it():
    s = cm.MixtureSampler(MC4, cm.Cooldown(), 20, 8, seed=0)
    first = [tuple(map(np.ndarray.tolist, s.batch(t))) for t in range(10)]
    assert tuple(map(np.ndarray.tolist, s.batch(3))) == first[3]
    fresh = cm.MixtureSampler(MC4, cm.Cooldown(), 20, 8, seed=0)
    assert tuple(map(np.ndarray.tolist, fresh.batch(9))) == first[9]  # skip ahead


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sizes": {}}, "sizes"),
        ({"sizes": {"a": 1.5}}, "sizes.a"),
        ({"total_steps": 0}, "total_steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"composition": "stratified"}, "composition"),
        ({"schedule": {"kind": "cooldown", "at": 2.0}}, "at"),
        ({"schedule": cm.OrderMatters(high=("zz",))}, "high"),
    ],
)
def test_constructor_errors(kwargs, field):
    args = {"sizes": SIZES, "schedule": 1.0, "total_steps": 10, "batch_size": 8, "seed": 0, **kwargs}
    with pytest.raises(cm.ConfigError) as e:
        cm.MixtureSampler(**args)
    assert e.value.field == field


def test_batch_not_divisible_by_world_size():
    s = cm.MixtureSampler(SIZES, 1.0, 10, 6, seed=0)
    with pytest.raises(cm.ConfigError) as e:
        s.batch(0, rank=0, world_size=4)
    assert e.value.field == "batch_size"
    with pytest.raises(cm.ConfigError) as e:
        s.batch(0, rank=4, world_size=4)
    assert e.value.field == "rank"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda st: st.update(mixture={"a": 1000, "b": 100}), "state_dict.mixture"),
        (lambda st: st.update(seed=99), "state_dict.seed"),
        (lambda st: st.update(version=7), "state_dict.version"),
        (lambda st: st["cursors"].pop("a"), "state_dict.cursors"),
        (lambda st: st["cursors"].update(a=-5), "state_dict.cursors.a"),
        (lambda st: st.update(residuals="garbage"), "state_dict.residuals"),
    ],
)
def test_corrupt_or_foreign_state_is_rejected(mutate, field):
    s = cm.MixtureSampler(SIZES, 1.0, 10, 8, seed=0)
    s.batch(0)
    state = json.loads(json.dumps(s.state_dict()))
    mutate(state)
    fresh = cm.MixtureSampler(SIZES, 1.0, 10, 8, seed=0)
    with pytest.raises(cm.ConfigError) as e:
        fresh.load_state_dict(state)
    assert e.value.field == field
    assert fresh.step == 0  # a rejected state leaves the sampler untouched


def test_import_coolmix_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, coolmix, coolmix.config, coolmix.sampler; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- hardened state and sizes (issue 8) --------------------------------------------------------------


def _state_after(steps=3):
    s = cm.MixtureSampler(SIZES, 1.0, 10, 8, seed=0)
    for t in range(steps):
        s.batch(t)
    return json.loads(json.dumps(s.state_dict()))


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda st: st.update(step=float("inf")), "state_dict.step"),
        (lambda st: st.update(step=2**64), "state_dict.step"),
        (lambda st: st.update(step=2**63 - 1), "state_dict.step"),
        (lambda st: st.update(step=3.0), "state_dict.step"),
        (lambda st: st["cursors"].update(a=float("inf")), "state_dict.cursors.a"),
        (lambda st: st["cursors"].update(a=2**64), "state_dict.cursors.a"),
        (lambda st: st["cursors"].update(a=2**63 - 1), "state_dict.cursors.a"),
        (lambda st: st["cursors"].update(a=st["cursors"]["a"] + 1), "state_dict.cursors"),
        (lambda st: st["residuals"].update(a=float("inf")), "state_dict.residuals.a"),
        (lambda st: st["residuals"].update(a=float("nan")), "state_dict.residuals.a"),
        (lambda st: st["residuals"].update(a=1e300, b=-1e300), "state_dict.residuals.a"),
        (lambda st: st["residuals"].update(a=0.5, b=0.5, c=0.5), "state_dict.residuals"),
        (lambda st: st.update(events=[{"step": 2**64, "name": "cooldown"}]), "state_dict.events[0].step"),
        (lambda st: st.update(events=[{"step": float("inf"), "name": "x"}]), "state_dict.events[0].step"),
        (lambda st: st.update(events=[{"step": -1, "name": "x"}]), "state_dict.events[0].step"),
        (lambda st: st.update(events="cooldown"), "state_dict.events"),
        (lambda st: st.update(unit="tokens"), "state_dict.unit"),
    ],
)
def test_hostile_state_is_one_line_config_error(mutate, field):
    state = _state_after()
    mutate(state)
    fresh = cm.MixtureSampler(SIZES, 1.0, 10, 8, seed=0)
    with pytest.raises(cm.ConfigError) as e:
        fresh.load_state_dict(state)
    assert e.value.field == field and "\n" not in str(e.value)
    assert fresh.step == 0 and fresh.cursors == dict.fromkeys(SIZES, 0)


def test_extreme_but_admissible_residuals_never_break_a_batch():
    """Residuals at the edge of the accepted box (|r| <= K + 2, Σ r = 0): batches stay valid."""
    state = _state_after()
    state["residuals"] = {"a": 4.9, "b": -2.45, "c": -2.45}
    s = cm.MixtureSampler(SIZES, 1.0, 10, 8, seed=0)
    s.load_state_dict(state)
    sizes = np.array(list(SIZES.values()))
    for t in range(3, 10):
        d, i = s.batch(t)
        assert len(d) == 8 and d.min() >= 0 and np.all((i >= 0) & (i < sizes[d]))
    assert sum(s.cursors.values()) == 10 * 8


def test_sizes_are_exact_integers_up_to_2_62():
    big = 2**60 + 1  # not representable as a float64
    s = cm.MixtureSampler({"a": big, "b": 3}, 1.0, 4, 64, seed=0)
    assert s.state_dict()["mixture"] == {"a": big, "b": 3}
    d, i = s.batch(0)
    assert np.all(i[d == 0] < big) and np.all(i[d == 1] < 3)


@pytest.mark.parametrize("a", [2.0**60, 2**62 + 1, 10.5, float("inf")])
def test_inexact_or_oversized_sizes_are_rejected(a):
    with pytest.raises(cm.ConfigError) as e:
        cm.MixtureSampler({"a": a, "b": 3}, 1.0, 4, 8)
    assert e.value.field == "sizes.a"


def test_integral_float_sizes_are_accepted():
    s = cm.MixtureSampler({"a": 1000.0, "b": 10.0}, 1.0, 4, 8)
    assert s.state_dict()["mixture"] == {"a": 1000, "b": 10}


# -- units (issue 10 §2) ---------------------------------------------------------------------------------


def test_mixture_with_unit_is_accepted_and_kept():
    mix = cm.Mixture(MC4, unit="tokens")
    s = cm.MixtureSampler(mix, 5.0, 10, 16, seed=0)
    plain = cm.MixtureSampler(MC4, 5.0, 10, 16, seed=0)
    assert s.unit == "tokens" and plain.unit == "examples"
    assert stream(s, 10) == stream(plain, 10)  # the unit labels the sizes; the stream is the same
    state = json.loads(json.dumps(s.state_dict()))
    assert state["unit"] == "tokens"
    with pytest.raises(cm.ConfigError) as e:
        plain.load_state_dict(state)
    assert e.value.field == "state_dict.unit"
    with pytest.raises(cm.ConfigError) as e:
        cm.MixtureSampler(mix, 5.0, 10, 16, unit="examples")
    assert e.value.field == "unit"


def test_token_sizes_with_item_counts():
    """Probabilities from token sizes (any float), item indices from the item counts."""
    mix = cm.Mixture({"en": 2.5e6, "sw": 1.2e4}, unit="tokens")
    items = {"en": 900, "sw": 7}
    s = cm.MixtureSampler(mix, 1.0, 20, 32, seed=0, items=items)
    assert s.probs_at(0)["sw"] == pytest.approx(1.2e4 / (2.5e6 + 1.2e4))
    for t in range(20):
        d, i = s.batch(t)
        assert np.all(i[d == 0] < 900) and np.all(i[d == 1] < 7)
    with pytest.raises(cm.ConfigError) as e:
        cm.MixtureSampler(cm.Mixture({"en": 2.5e6, "sw": 1.25e4 + 0.5}, unit="tokens"), 1.0, 20, 32)
    assert e.value.field == "sizes.sw"
    with pytest.raises(cm.ConfigError) as e:
        cm.MixtureSampler(mix, 1.0, 20, 32, items={"en": 900})
    assert e.value.field == "items"


finite = st.floats(-3, 3, allow_nan=False)


@given(
    st.lists(st.tuples(st.integers(0, 5), finite), min_size=1, max_size=7),
    st.integers(1, 300),
)
def test_plain_python_count_step_is_bit_identical_to_numpy(rows, batch):
    """The K < 8 fast path of the count recursion returns exactly `exact_counts` (or defers)."""
    w = np.array([r[0] for r in rows], dtype=np.float64)
    if w.sum() == 0:
        w[0] = 1.0
    p = w / w.sum()
    r = np.array([r[1] for r in rows])
    r -= r.mean()
    fast = exact_counts_small(p.tolist(), batch, r.tolist())
    counts, residuals = exact_counts(p, batch, r)
    assert counts.sum() == batch and counts.min() >= 0
    if fast is not None:
        assert fast[0] == counts.tolist()
        assert fast[1] == residuals.tolist()  # bit-identical floats, not approximately equal
