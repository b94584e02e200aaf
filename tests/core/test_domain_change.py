"""Resume with a domain added or removed by name (``load_state_dict(..., allow_domain_change=True)``).

What holds from the resume step t0 on (MixtureSampler.load_state_dict's docstring): every common domain
continues its own item order where it stopped, an added one starts at draw 0; counts follow the new
mixture from t0 ("exact": C(t) − C(t0) within 1 of X(t) − X(t0)); a state saved afterwards resumes
exactly. Without the opt-in the load is one error naming the added and removed domains.
"""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import coolmix as cm

OLD = {"en": 600, "it": 80, "sw": 9, "zh": 30}
NEW = {"en": 600, "it": 80, "yo": 12}  # sw and zh removed, yo added
STEPS, BATCH = 30, 8
SCHED = cm.Cooldown(hot=5, cold=1, at=0.5)


def make(sizes, composition="exact", schedule=SCHED, seed=5):
    return cm.MixtureSampler(sizes, schedule, STEPS, BATCH, seed=seed, composition=composition)


def saved(sizes, t0, composition="exact", **kw):
    s = make(sizes, composition, **kw)
    for t in range(t0):
        s.global_batch(t)
    return s, json.loads(json.dumps(s.state_dict()))


def items_by_domain(s, lo, hi):
    """Per domain name: the items of batches lo..hi−1 (sorted: a batch's slot order is shuffled)."""
    out = {n: [] for n in s.names}
    for t in range(lo, hi):
        d, i = s.global_batch(t)
        for k, n in enumerate(s.names):
            out[n] += i[d == k].tolist()
    return {n: sorted(v) for n, v in out.items()}


def test_without_the_opt_in_it_is_one_error_naming_the_domains():
    _, state = saved(OLD, 7)
    s = make(NEW)
    with pytest.raises(cm.ConfigError) as e:
        s.load_state_dict(state)
    assert e.value.field == "state_dict.domains"
    assert "added: yo" in str(e.value) and "removed: sw, zh" in str(e.value) and "\n" not in str(e.value)
    assert s.step == 0


@pytest.mark.parametrize("composition", ["exact", "iid", "seekable"])
def test_common_domains_continue_their_order_and_an_added_one_starts_at_zero(composition):
    old, state = saved(OLD, 11, composition)
    s = make(NEW, composition)
    s.load_state_dict(state, allow_domain_change=True)
    assert s.step == 11 and s.cursors == {"en": old.cursors["en"], "it": old.cursors["it"], "yo": 0}
    got = items_by_domain(s, 11, STEPS)
    end = s.cursors
    for i, n in enumerate(s.names):
        start = state["cursors"].get(n, 0)
        want = sorted(s._domain_items(i, start, end[n] - start).tolist())
        assert got[n] == want, n
    # the same draws as the old sampler would have made of a common domain (its order is keyed by name)
    en = old.names.index("en")
    start = state["cursors"]["en"]
    assert sorted(old._domain_items(en, start, end["en"] - start).tolist()) == got["en"]


def test_exact_counts_follow_the_new_mixture_from_the_resume_step():
    _, state = saved(OLD, 9)
    s = make(NEW)
    s.load_state_dict(state, allow_domain_change=True)
    c0, x0 = s.cumulative_counts_array(9), s.cumulative_target_array(9)
    for t in range(9, STEPS + 1):
        drift = (s.cumulative_counts_array(t) - c0) - (s.cumulative_target_array(t) - x0)
        assert np.abs(drift).max() <= 1.0 + 1e-9, t


def test_seekable_counts_follow_the_new_mixture_within_its_bound():
    _, state = saved(OLD, 9, "seekable", schedule=cm.Constant(cm.Temperature(3)))
    s = make(NEW, "seekable", schedule=cm.Constant(cm.Temperature(3)))
    s.load_state_dict(state, allow_domain_change=True)
    c0, x0 = s.cumulative_counts_array(9), s.cumulative_target_array(9)
    p = np.array(list(s.probs_at(9).values()))
    # coolmix.seekable's bound on the arrivals restarted at X(t0), plus 1/2: the rounding at t0 itself
    bound = (1 + (len(p) - 2) * p) / 2 + 0.5
    for t in range(9, STEPS + 1):
        drift = (s.cumulative_counts_array(t) - c0) - (s.cumulative_target_array(t) - x0)
        assert (np.abs(drift) <= bound + 1e-9).all(), t


@pytest.mark.parametrize("composition", ["exact", "iid", "seekable"])
def test_a_state_saved_after_the_change_resumes_exactly(composition):
    _, state = saved(OLD, 6, composition)
    s = make(NEW, composition)
    s.load_state_dict(state, allow_domain_change=True)
    for t in range(6, 15):
        s.global_batch(t)
    later = json.loads(json.dumps(s.state_dict()))
    assert later["rebased"]["step"] == 6
    whole = [tuple(a.tolist() for a in s.global_batch(t)) for t in range(15, STEPS)]
    again = make(NEW, composition)
    again.load_state_dict(later)  # same domains as the saved state: no opt-in needed
    assert [tuple(a.tolist() for a in again.global_batch(t)) for t in range(15, STEPS)] == whole
    assert again.state_dict()["rebased"] == later["rebased"]


def test_steps_before_the_change_are_not_served():
    _, state = saved(OLD, 6)
    s = make(NEW)
    s.load_state_dict(state, allow_domain_change=True)
    for ask in (lambda: s.global_batch(5), lambda: s.cumulative_counts(3), lambda: s.sample_at(5 * BATCH)):
        with pytest.raises(cm.ConfigError):
            ask()
    s.global_batch(6)


def test_a_common_domain_with_another_item_count_is_refused():
    _, state = saved(OLD, 4)
    with pytest.raises(cm.ConfigError) as e:
        make({"en": 601, "it": 80, "yo": 12}).load_state_dict(state, allow_domain_change=True)
    assert e.value.field == "state_dict.mixture"


def test_an_exposure_driven_schedule_refuses_a_domain_change():
    sched = cm.UniMaxDynamic(max_epochs=2.0)
    _, state = saved(OLD, 4, schedule=sched)
    with pytest.raises(cm.ConfigError) as e:
        make(NEW, schedule=sched).load_state_dict(state, allow_domain_change=True)
    assert e.value.field == "allow_domain_change"


def test_an_exposure_driven_schedule_after_the_change_is_refused():
    """Its p reads counts since step 0, which the new domains do not have."""
    _, state = saved(OLD, 4)
    s = make(NEW)
    s.load_state_dict(state, allow_domain_change=True)
    with pytest.raises(cm.ConfigError) as e:
        s.set_schedule(cm.UniMaxDynamic(max_epochs=2.0))
    assert e.value.field == "schedule"
    s.set_schedule(cm.Constant(cm.Uniform()))  # any other schedule is fine


def test_no_domain_in_common_is_refused():
    _, state = saved(OLD, 4)
    with pytest.raises(cm.ConfigError) as e:
        make({"fr": 10, "de": 20}).load_state_dict(state, allow_domain_change=True)
    assert e.value.field == "state_dict.domains"


def test_a_rebased_state_with_broken_totals_is_refused():
    _, state = saved(OLD, 6)
    s = make(NEW)
    s.load_state_dict(state, allow_domain_change=True)
    s.global_batch(6)
    later = json.loads(json.dumps(s.state_dict()))
    later["rebased"]["cursors"]["en"] += 1
    with pytest.raises(cm.ConfigError) as e:
        make(NEW).load_state_dict(later)
    assert e.value.field == "state_dict.cursors"


NAMES = ["en", "it", "sw", "zh", "yo", "fr"]


@given(
    old=st.sets(st.sampled_from(NAMES), min_size=1, max_size=5),
    new=st.sets(st.sampled_from(NAMES), min_size=1, max_size=5),
    t0=st.integers(0, STEPS - 1),
    composition=st.sampled_from(["exact", "iid", "seekable"]),
)
def test_any_change_keeps_the_common_cursors_and_resumes_exactly(old, new, t0, composition):
    if not old & new:
        return
    size = {n: 5 + 37 * i for i, n in enumerate(NAMES)}
    a_sizes = {n: size[n] for n in NAMES if n in old}
    b_sizes = {n: size[n] for n in NAMES if n in new}
    a, state = saved(a_sizes, t0, composition)
    b = make(b_sizes, composition)
    b.load_state_dict(state, allow_domain_change=True)
    assert b.cursors == {n: a.cursors.get(n, 0) for n in b_sizes}
    mid = (t0 + STEPS) // 2
    for t in range(t0, mid):
        d, _ = b.global_batch(t)
        assert len(d) == BATCH
    later = json.loads(json.dumps(b.state_dict()))
    rest = [tuple(x.tolist() for x in b.global_batch(t)) for t in range(mid, STEPS)]
    c = make(b_sizes, composition)
    c.load_state_dict(later)
    assert [tuple(x.tolist() for x in c.global_batch(t)) for t in range(mid, STEPS)] == rest
