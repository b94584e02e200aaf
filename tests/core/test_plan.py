"""make_plan: hand-computed exposures, units, phases, warnings, realised counts, curve, CSV/PNG;
and the shipped checks in coolmix.testing."""

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import coolmix as cm
from coolmix import testing
from coolmix.cli._plan_files import plot_plan, write_csv
from coolmix.plan import Plan, make_plan
from coolmix.schedules import Context

# Li et al. 2025 Table 2, in tokens; 1024-token sequences
MC4 = {"en": 2_733_000_000_000, "it": 162_000_000_000, "zh": 39_000_000_000, "sw": 1_000_000_000}
TPE = 1024
SIZES = {"a": 900, "b": 90, "c": 10}  # examples; sizes reveal the domain


def mc4_plan(schedule, **kw) -> Plan:
    kw.setdefault("simulate", False)
    return make_plan(MC4, schedule, 100_000, 512, tokens_per_example=TPE, unit="tokens", **kw)


# -- hand computations ----------------------------------------------------------------------------


def test_cooldown_on_mc4_matches_hand_computation():
    """Phase 0 (τ=5, first half): epochs_sw = 0.5·T·B·p_sw(5)·tpe / size_sw; phase 1 (τ=1):
    every language gets the same epochs, 0.5·T·B·tpe / Σ sizes."""
    T, B = 100_000, 512
    plan = mc4_plan(cm.Cooldown(hot=5, cold=1, at=0.5))
    assert [(ph.start, ph.end, ph.label) for ph in plan.phases] == [(0, 50_000, "τ=5"), (50_000, T, "τ=1")]
    p5 = cm.temperature_probs(MC4, tau=5)
    hot, cold = plan.phases
    assert hot.epochs["sw"] == pytest.approx(0.5 * T * B * p5["sw"] * TPE / MC4["sw"], rel=1e-6)
    assert hot.epochs["sw"] == pytest.approx(2.4466, abs=1e-4)
    for n in MC4:
        assert hot.samples[n] == pytest.approx(0.5 * T * B * p5[n], rel=1e-6)
        assert hot.tokens[n] == pytest.approx(hot.samples[n] * TPE)
        assert cold.epochs[n] == pytest.approx(0.5 * T * B * TPE / sum(MC4.values()), rel=1e-5)
        assert cold.cumulative_epochs[n] == pytest.approx(hot.epochs[n] + cold.epochs[n])
        assert plan.epochs[n] == pytest.approx(cold.cumulative_epochs[n])
    assert sum(plan.samples.values()) == pytest.approx(T * B)
    assert plan.examples["sw"] == 1_000_000_000 // TPE  # whole 1024-token sequences
    assert plan.tokens_unit == "tokens" and plan.piecewise and plan.stride == 1


def test_static_tau5_on_mc4_repeats_swahili_about_five_times():
    """paper.md §4.3: at τ=5 SW gets 9.3% of ~52B tokens ≈ 4.9B tokens ≈ 5 epochs."""
    plan = mc4_plan(5.0)
    assert len(plan.phases) == 1 and plan.phases[0].label == "τ=5"
    assert plan.target_share["sw"] == pytest.approx(0.093, abs=5e-4)
    assert plan.tokens["sw"] == pytest.approx(4.89e9, rel=1e-2)
    assert plan.epochs["sw"] == pytest.approx(4.89, abs=0.01)


def test_example_sizes_with_tokens_per_example():
    plan = make_plan(SIZES, 1.0, total_steps=10, batch_size=100, tokens_per_example=32, simulate=False)
    assert plan.samples == pytest.approx({"a": 900, "b": 90, "c": 10})
    assert plan.tokens == pytest.approx({"a": 900 * 32, "b": 90 * 32, "c": 10 * 32})
    assert plan.epochs == pytest.approx({"a": 1.0, "b": 1.0, "c": 1.0})  # samples / size
    assert plan.examples == SIZES and plan.tokens_unit == "tokens"


def test_examples_without_tokens_have_no_token_column():
    plan = make_plan(SIZES, 1.0, total_steps=10, batch_size=100, simulate=False)
    assert plan.tokens is None and plan.tokens_unit is None and plan.phases[0].tokens is None


def test_per_domain_tokens_per_example_converts_each_domain():
    sizes = {"long": 10_000, "short": 1_000}  # tokens
    plan = make_plan(sizes, 1.0, 4, 10, tokens_per_example={"long": 100, "short": 10}, unit="tokens")
    assert plan.examples == {"long": 100, "short": 100}  # the sampler sees 100 examples each
    assert plan.samples == pytest.approx({"long": 20, "short": 20})  # p on example counts
    assert plan.epochs == pytest.approx({"long": 0.2, "short": 0.2})
    assert plan.tokens == pytest.approx({"long": 2000, "short": 200})
    assert any("differs across domains" in n for n in plan.notes)


def test_tokens_without_tokens_per_example_warns_and_plans_per_token():
    plan = make_plan({"a": 1000, "b": 10}, 1.0, 10, 101, unit="tokens", simulate=False)
    assert any("tokens_per_example is missing" in w for w in plan.warnings)
    assert plan.examples == {"a": 1000, "b": 10} and plan.tokens_unit == "tokens"
    assert plan.epochs["b"] == pytest.approx(10 * 101 * (10 / 1010) / 10)


def test_character_sizes_count_characters():
    plan = make_plan({"a": 5000, "b": 500}, 1.0, 10, 11, tokens_per_example=50, unit="characters")
    assert plan.examples == {"a": 100, "b": 10} and plan.tokens_unit == "characters"
    assert plan.tokens["b"] == pytest.approx(plan.samples["b"] * 50)


# -- phases ----------------------------------------------------------------------------------------


def test_continuous_schedule_is_reported_in_equal_segments_and_summed_exactly():
    sched = cm.Anneal(start=10, end=1, shape="cosine")
    plan = make_plan(SIZES, sched, total_steps=400, batch_size=8, segments=4)
    assert [(ph.start, ph.end) for ph in plan.phases] == [(0, 100), (100, 200), (200, 300), (300, 400)]
    assert not plan.piecewise and plan.stride == 1
    ctx = Context.of(plan.examples, 400)
    brute = sum(8 * sched.probs(t, ctx) for t in range(400))
    assert list(plan.samples.values()) == pytest.approx(brute.tolist(), rel=1e-12)
    ph = plan.phases[1]
    assert ph.probs_start == pytest.approx(sched.probs_at(100, SIZES, 400))
    assert ph.probs_end == pytest.approx(sched.probs_at(199, SIZES, 400))
    assert ph.tau_start > ph.tau_end and "→" in ph.label


def test_long_continuous_schedule_is_integrated_on_a_stride():
    plan = make_plan(SIZES, cm.Anneal(), total_steps=100_000, batch_size=4, simulate=False)
    assert plan.stride == 5 and any("stride of 5" in n for n in plan.notes)
    assert sum(plan.samples.values()) == pytest.approx(100_000 * 4)


def test_order_matters_has_a_zero_phase_without_warning():
    sched = cm.OrderMatters(high=("a",), at=0.5, then=cm.Temperature(1))
    plan = make_plan(SIZES, sched, total_steps=10, batch_size=100)
    assert plan.phases[0].samples == pytest.approx({"a": 500, "b": 0, "c": 0})
    assert plan.phases[1].samples == pytest.approx({"a": 450, "b": 45, "c": 5})
    assert plan.warnings == ()


def test_unimax_dynamic_drops_a_domain_after_its_cap():
    """Exposure-driven: the fluid plan and the real sampler both stop drawing `a` near 2 epochs."""
    sizes = testing.tiny_mixture()  # a: 1, b: 10, c: 100
    plan = make_plan(sizes, cm.UniMaxDynamic(max_epochs=2), total_steps=60, batch_size=3)
    assert not plan.piecewise and len(plan.phases) == 4
    assert plan.realised["a"] == 2 and plan.realised["b"] == 20
    assert plan.epochs["a"] == pytest.approx(2.0) and plan.epochs["b"] == pytest.approx(2.0)
    assert plan.max_deviation <= 1


def test_phases_out_of_order_once_resolved_raise():
    sched = cm.Stages(starts=(0, 80, 0.5), dists=(cm.Temperature(1), cm.Temperature(2), cm.Temperature(3)))
    with pytest.raises(cm.ConfigError, match=r"^(schedule\.)?starts\[2\]=0.5: phases out of order"):
        make_plan(SIZES, sched, total_steps=100, batch_size=4)


# -- warnings --------------------------------------------------------------------------------------


def test_warns_when_p_times_batch_below_one_exact_and_iid():
    exact = make_plan({"a": 990, "b": 10}, 1.0, 100, 10)
    assert exact.warnings == ("b: p·B = 0.1 < 1 in every phase: absent from about 90% of those batches",)
    iid = make_plan({"a": 990, "b": 10}, 1.0, 100, 10, composition="iid")
    assert "absent from about 90% of those batches" in iid.warnings[0]  # (1 - 0.01)^10 = 0.904


def test_warns_per_phase_for_cooldown_on_mc4():
    plan = mc4_plan(cm.Cooldown())
    assert plan.warnings == (
        "sw: p·B = 0.17 < 1 in phase 1 (steps 50,000–99,999, τ=1): absent from about 83% of those batches",
    )


def test_warns_when_epochs_exceed_max_epochs_with_crossing_step():
    """Uniform over 2 domains, B=2: b (10 examples) gets 1 draw per step, so after step t it has
    t+1 draws = (t+1)/10 epochs, first > 4 at t = 40; a stays at 0.1 epochs."""
    plan = make_plan({"a": 1000, "b": 10}, "inf", 100, 2, max_epochs=4)
    assert plan.warnings == ("b: 10 epochs over the run exceed max_epochs=4 (crossed at step ≈40)",)
    assert plan.epochs == pytest.approx({"a": 0.1, "b": 10.0})
    assert mc4_plan(5.0, max_epochs=4).warnings[-1].startswith("sw: 4.89 epochs over the run exceed")
    assert not any("max_epochs" in w for w in mc4_plan(cm.Cooldown(), max_epochs=4).warnings)
    capped = make_plan(SIZES, cm.Constant(cm.UniMax(budget=1000, max_epochs=2)), 10, 100, max_epochs=2)
    assert capped.epochs["c"] == pytest.approx(2.0) and capped.warnings == ()  # at the cap is fine


def test_warns_for_a_domain_that_is_never_drawn():
    sched = cm.Constant(cm.Explicit({"a": 1.0, "b": 1.0, "c": 0.0}))
    plan = make_plan(SIZES, sched, 10, 10)
    assert "c: probability 0 for the whole run: never sampled" in plan.warnings
    assert plan.realised["c"] == 0


def test_warns_when_unimax_budget_is_not_the_run():
    ok = make_plan(SIZES, cm.Constant(cm.UniMax(budget=1000, max_epochs=2)), 10, 100)
    assert ok.warnings == () and ok.epochs["c"] == pytest.approx(2.0)
    off = make_plan(SIZES, cm.Constant(cm.UniMax(budget=5000, max_epochs=2)), 10, 100)
    assert any(w.startswith("unimax budget=5,000 examples but the run draws 1,000") for w in off.warnings)


@pytest.mark.parametrize("at", [100, 500])
def test_a_boundary_at_or_beyond_the_run_is_an_error_naming_at(at):
    """A Cooldown that never cools down is a mistake, not a warning (the sampler refuses it too)."""
    with pytest.raises(cm.ConfigError) as e:
        make_plan(SIZES, cm.Cooldown(at=at), total_steps=100, batch_size=10)
    assert e.value.field == "at" and "total_steps=100" in str(e.value)


# -- realised counts ---------------------------------------------------------------------------------


def test_realised_counts_track_the_target_within_one_item():
    plan = make_plan(SIZES, cm.Cooldown(), total_steps=200, batch_size=7, seed=3)
    assert plan.simulated_steps == 200 and sum(plan.realised.values()) == 200 * 7
    assert plan.max_deviation <= 1
    for ph in plan.phases:
        assert sum(ph.realised.values()) == ph.steps * 7
        assert all(abs(ph.realised[n] - ph.samples[n]) <= 2 for n in SIZES)
    sampler = cm.MixtureSampler(SIZES, cm.Cooldown(), 200, 7, seed=3)
    for t in range(200):
        sampler.global_batch(t)
    assert plan.realised == sampler.cursors  # the plan replays the real sampler


def test_simulation_is_capped_and_says_so():
    plan = make_plan(SIZES, cm.Cooldown(), total_steps=100, batch_size=4, max_simulated_steps=30)
    assert plan.simulated_steps == 30 and sum(plan.realised.values()) == 120
    assert "realised counts simulated for the first 30 of 100 steps" in plan.notes
    assert plan.phases[0].realised is None and plan.phases[1].realised is None  # not covered
    assert sum(plan.realised_target.values()) == pytest.approx(120)
    assert make_plan(SIZES, 1.0, 10, 4, simulate=False).realised is None


# -- curve, CSV, PNG, JSON -----------------------------------------------------------------------------


def test_curve_probabilities_tau_and_cumulative_epochs():
    plan = make_plan(SIZES, cm.Cooldown(), total_steps=100, batch_size=10)
    c = plan.curve(points=11)
    assert c.steps.tolist() == [0, 10, 20, 30, 40, 50, 59, 69, 79, 89, 99]
    total = sum(c.probs[n] for n in SIZES)
    assert np.allclose(total, 1.0)
    assert c.tau.tolist() == [5.0] * 5 + [1.0] * 6
    assert c.epochs["c"][-1] == pytest.approx(plan.epochs["c"])
    assert c.epochs["c"][0] == pytest.approx(10 * plan.phases[0].probs_start["c"] / 10)
    assert np.all(np.diff(c.epochs["a"]) >= 0)
    with pytest.raises(cm.ConfigError, match=r"^points=1"):
        plan.curve(points=1)


def test_csv_png_and_json(tmp_path):
    plan = make_plan(SIZES, cm.Cooldown(), total_steps=50, batch_size=8, max_epochs=1)
    rows = list(csv.DictReader(write_csv(plan, tmp_path / "plan.csv").open()))
    assert len(rows) == (len(plan.phases) + 1) * 3
    assert [r["domain"] for r in rows[:3]] == ["a", "b", "c"]
    last = rows[-1]
    assert last["phase"] == "all" and float(last["epochs"]) == pytest.approx(plan.epochs["c"])
    assert float(rows[0]["tau_start"]) == 5.0
    png = plot_plan(plan, tmp_path / "plan.png", points=50)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(json.dumps(plan.to_dict(), allow_nan=False))
    assert data["phases"][0]["tau_start"] == 5.0 and data["max_epochs"] == 1.0
    uniform = make_plan(SIZES, "inf", 10, 3, simulate=False).to_dict()
    assert uniform["phases"][0]["tau_start"] == "inf" and uniform["realised"] is None


def test_importing_the_planner_imports_neither_torch_nor_matplotlib():
    code = (
        "import sys, coolmix.plan, coolmix.mixconfig, coolmix.testing;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'matplotlib'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- invalid arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sizes": {}}, "sizes"),
        ({"sizes": {"a": 0}}, "sizes.a"),
        ({"sizes": {"a": -3}}, "sizes.a"),
        ({"sizes": {"a": math.nan}}, "sizes.a"),
        ({"sizes": {"a": math.inf}}, "sizes.a"),
        ({"sizes": {"a": 2.5}}, "sizes.a"),
        ({"sizes": {"a": 100}, "unit": "tokens", "tokens_per_example": 1024}, "sizes.a"),
        ({"unit": "words"}, "unit"),
        ({"tokens_per_example": 0}, "tokens_per_example"),
        ({"tokens_per_example": math.nan}, "tokens_per_example"),
        ({"tokens_per_example": "many"}, "tokens_per_example"),
        ({"tokens_per_example": {"a": 1, "b": 1, "c": 1, "zz": 1}}, "tokens_per_example.zz"),
        ({"tokens_per_example": {"a": 1}}, "tokens_per_example"),
        ({"tokens_per_example": {"a": 1, "b": -1, "c": 1}}, "tokens_per_example.b"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"max_epochs": math.inf}, "max_epochs"),
        ({"total_steps": 0}, "total_steps"),
        ({"total_steps": 2.5}, "total_steps"),
        ({"batch_size": -1}, "batch_size"),
        ({"batch_size": 2**40}, "batch_size"),
        ({"sizes": {"a": 2**70}}, "sizes.a"),
        ({"sizes": {"a": 2.0**70}, "unit": "tokens", "tokens_per_example": 2}, "sizes.a"),
        ({"seed": -1}, "seed"),
        ({"composition": "random"}, "composition"),
        ({"segments": 0}, "segments"),
        ({"schedule": {"kind": "cooldown", "at": 1.5}}, "at"),
        ({"schedule": -1.0}, "schedule"),
        ({"schedule": cm.OrderMatters(high=("zz",))}, "high"),
    ],
)
def test_invalid_arguments_raise_config_error_naming_the_field(kwargs, field):
    args = {"sizes": SIZES, "schedule": 1.0, "total_steps": 10, "batch_size": 4, **kwargs}
    with pytest.raises(cm.ConfigError) as info:
        make_plan(**args)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}=") and "\n" not in str(info.value)


# -- coolmix.testing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(testing.tiny_schedules()))
def test_shipped_checks_pass_on_every_tiny_schedule(name):
    sched = testing.tiny_schedules()[name]
    sizes = testing.tiny_mixture()
    assert sizes == {"a": 1, "b": 10, "c": 100}
    testing.check_schedule(sched, sizes, total_steps=40)

    def make():
        return cm.MixtureSampler(sizes, sched, total_steps=10, batch_size=6, seed=7)

    testing.assert_resumes_from_every_step(make, steps=10)
    testing.assert_rank_slices_partition(make(), steps=10, world_sizes=(1, 2, 3, 4, 6))
    counts = testing.assert_exact_counts(make(), steps=10)
    assert sum(counts.values()) == 60


class _ForgetfulSampler(cm.MixtureSampler):
    def load_state_dict(self, state):  # a resume bug: rounding residuals not restored
        super().load_state_dict({**state, "residuals": dict.fromkeys(state["residuals"], 0.0)})


class _LeakySchedule(cm.Stages):
    def probs(self, step, ctx):  # changes at step 3 without declaring a breakpoint
        p = super().probs(step, ctx)
        return p[::-1].copy() if step >= 3 else p


class _UnnormalisedSchedule(cm.Constant):
    def probs(self, step, ctx):
        return super().probs(step, ctx) * (1.1 if step == 2 else 1.0)


def test_shipped_checks_catch_broken_samplers_and_schedules():
    sizes = testing.tiny_mixture()
    with pytest.raises(AssertionError, match=r"resumed at step"):
        testing.assert_resumes_from_every_step(
            lambda: _ForgetfulSampler(sizes, 5.0, total_steps=12, batch_size=4, seed=1), steps=12
        )
    with pytest.raises(AssertionError, match=r"step 3: p changed between breakpoints"):
        testing.check_schedule(_LeakySchedule(), sizes, total_steps=10)
    with pytest.raises(AssertionError, match=r"step 2: probabilities sum to"):
        testing.check_schedule(_UnnormalisedSchedule(cm.Temperature(2.0)), sizes, total_steps=10)
    with pytest.raises(cm.ConfigError, match=r"^composition='iid'"):
        testing.assert_exact_counts(cm.MixtureSampler(sizes, 1.0, 5, 4, composition="iid"), steps=5)
    used = cm.MixtureSampler(sizes, 1.0, 5, 4)
    used.global_batch(0)
    with pytest.raises(cm.ConfigError, match=r"^sampler.step=1"):
        testing.assert_exact_counts(used, steps=5)


def test_planner_uses_only_the_samplers_public_api():
    """The planner reads counts through `cumulative_counts` / `cumulative_target`, never through
    the sampler's private state (cursors, contexts, the count step)."""
    import ast
    import inspect

    import coolmix.plan
    import coolmix.plan_steps

    for module in (coolmix.plan, coolmix.plan_steps):
        tree = ast.parse(inspect.getsource(module))
        private = [
            n.attr
            for n in ast.walk(tree)
            if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name)
            and n.value.id == "sampler"
            and n.attr.startswith("_")
        ]
        assert private == [], (module.__name__, private)
