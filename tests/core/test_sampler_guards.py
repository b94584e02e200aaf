"""The sampler's guards: steps outside the run are refused (no seek spins forever), and a state
resumes only the run it was saved from (same total_steps, batch size and schedule)."""

from __future__ import annotations

import json

import pytest

import coolmix as cm

SIZES = {"en": 500, "it": 40, "sw": 3}
ANNEAL = cm.Anneal(start=5, end=1)


@pytest.mark.parametrize("composition", ["exact", "iid", "seekable"])
@pytest.mark.parametrize("schedule", [5.0, ANNEAL], ids=["tau5", "anneal"])
@pytest.mark.parametrize("step", [100, 2**40, 2**62, 10**9, -1, 1.5, "3", True, None])
def test_a_step_outside_the_run_is_refused_by_every_seek(composition, schedule, step):
    s = cm.MixtureSampler(SIZES, schedule, total_steps=100, batch_size=8, seed=0, composition=composition)
    for seek in (s.global_batch, s.batch):
        with pytest.raises(cm.ConfigError) as e:
            seek(step)
        assert e.value.field == "step"
    with pytest.raises(cm.ConfigError) as e:
        s.sample_at(step if isinstance(step, (str, float, type(None), bool)) else step * 8)
    assert e.value.field == "index"


@pytest.mark.parametrize("composition", ["exact", "iid", "seekable"])
def test_the_last_step_and_the_end_of_the_run_are_still_served(composition):
    s = cm.MixtureSampler(SIZES, ANNEAL, total_steps=100, batch_size=8, seed=0, composition=composition)
    assert len(s.global_batch(99)[0]) == 8
    assert s.sample_at(100 * 8 - 1) == (int(s.global_batch(99)[0][-1]), int(s.global_batch(99)[1][-1]))
    assert sum(s.cumulative_counts(100).values()) == 800
    with pytest.raises(cm.ConfigError):
        s.cumulative_counts(101)
    with pytest.raises(cm.ConfigError):
        s.sample_at(800)


def _saved(**kw):
    args = {"schedule": cm.Cooldown(at=0.5), "total_steps": 40, "batch_size": 8, "seed": 3} | kw
    s = cm.MixtureSampler(SIZES, **args)
    for t in range(5):
        s.batch(t)
    return json.loads(json.dumps(s.state_dict()))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total_steps": 80}, "state_dict.total_steps"),
        ({"batch_size": 16}, "state_dict.batch_size"),
        ({"seed": 4}, "state_dict.seed"),
        ({"schedule": cm.Cooldown(at=0.75)}, "state_dict.schedule"),
    ],
)
def test_a_resume_under_another_run_is_refused_naming_the_field(change, field):
    state = _saved()
    args = {"schedule": cm.Cooldown(at=0.5), "total_steps": 40, "batch_size": 8, "seed": 3} | change
    other = cm.MixtureSampler(SIZES, **args)
    with pytest.raises(cm.ConfigError) as e:
        other.load_state_dict(state)
    assert e.value.field == field
    assert other.step == 0  # untouched


def test_a_deliberate_schedule_change_goes_through_set_schedule():
    s = cm.MixtureSampler(SIZES, cm.Cooldown(at=0.5), total_steps=40, batch_size=8, seed=3)
    for t in range(5):
        s.batch(t)
    s.set_schedule(cm.Constant(cm.Uniform()))
    state = json.loads(json.dumps(s.state_dict()))
    expected = [s.global_batch(t)[0].tolist() for t in range(5, 40)]
    r = cm.MixtureSampler(SIZES, cm.Cooldown(at=0.5), total_steps=40, batch_size=8, seed=3)
    with pytest.raises(cm.ConfigError):
        r.load_state_dict(state)
    r.set_schedule(cm.Constant(cm.Uniform()))
    r.load_state_dict(state)
    assert [r.global_batch(t)[0].tolist() for t in range(5, 40)] == expected


def test_a_format_1_state_still_loads():
    state = _saved()  # format 3, written back in format 1's layout (tests/core/fixtures has real ones)
    for key in ("format", "kind", "domains", "rebased", "total_steps", "batch_size", "schedule"):
        del state[key]
    state["version"] = 1
    s = cm.MixtureSampler(SIZES, cm.Cooldown(at=0.5), total_steps=40, batch_size=8, seed=3)
    s.load_state_dict(state)
    assert s.step == 5


@pytest.mark.parametrize("fmt", [4, "3", True, None, 3.0, 0])
def test_an_unknown_format_is_refused(fmt):
    state = _saved()
    state["format"] = fmt
    s = cm.MixtureSampler(SIZES, cm.Cooldown(at=0.5), total_steps=40, batch_size=8, seed=3)
    with pytest.raises(cm.ConfigError) as e:
        s.load_state_dict(state)
    assert e.value.field == "state_dict.format"


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        (cm.Cooldown(at=50), "at"),
        (cm.Cooldown(at=40), "at"),
        (cm.Stages(starts=(0, 10, 40), dists=(cm.Temperature(1), cm.Uniform(), 3.0)), "starts[2]"),
        (cm.OrderMatters(high=("en",), at=45), "at"),
        (cm.Adaptive(hot=cm.Cooldown(at=60), cold=1), "hot.at"),
    ],
)
def test_a_boundary_at_or_past_the_end_of_the_run_is_an_error(schedule, field):
    """Cooldown(at=50) on a 40-step run would never cool down: refused, naming the knob."""
    with pytest.raises(cm.ConfigError) as e:
        cm.MixtureSampler(SIZES, schedule, total_steps=40, batch_size=4)
    assert e.value.field == field
    cm.MixtureSampler(SIZES, schedule, total_steps=61, batch_size=4)  # inside a longer run: fine
