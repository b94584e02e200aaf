"""Weight producers of the reproduction: each method's [balance] table drives the real sampler,
and the runner expands methods into runs with the calibration the module docstring states."""

import itertools

import pytest

import coolmix as cm
from coolmix.reproduce.methods import (
    DOREMI_REFERENCE_TAU,
    METHODS,
    Setting,
    balance_for,
    high_resource,
    method_sections,
    unimax_epochs,
)
from coolmix.reproduce.runner import by_priority, chain_depth, expand
from coolmix.reproduce.specs import PRESETS, half_width

SIZES = {"en": 1000, "it": 100, "sw": 10}


def sampler_for(method, steps=100, batch=10, sizes=SIZES):
    bal = balance_for(method, sizes, steps, batch, high_resource(sizes))
    return cm.MixtureSampler(sizes, bal["sample"], total_steps=steps, batch_size=batch, seed=0)


class Done:
    """A finished run as the runner hands it to a method's ``resolve``."""

    def __init__(self, seed, dir, record):
        self.seed, self.dir, self.record = seed, dir, record


@pytest.mark.parametrize("method", [k for k, m in METHODS.items() if m.kind == "train" and k != "adaptive"])
def test_every_method_builds_a_schedule(method, tmp_path):
    # every trained method's config (its dependencies' results filled in) drives the real sampler
    m = METHODS[method]
    needs = {d: (f"lm/{d}/s0",) for d in m.needs}
    setting = Setting(SIZES, 100, 10, high_resource(SIZES), {"d_model": 8}, needs)
    cfg = m.sections(setting)
    fake = {"doremi_weights": {"en": 0.2, "it": 0.3, "sw": 0.5}, "doremi": {}}
    if m.resolve is not None:
        m.resolve(cfg, {d: [Done(0, tmp_path / d, fake)] for d in m.needs})
    s = cm.MixtureSampler(SIZES, cfg["balance"]["sample"], total_steps=100, batch_size=10, seed=0)
    for t in range(100):
        s.batch(t)
    assert sum(s.cursors.values()) == 1000


def test_order_matters_switch():
    s = sampler_for("order_matters")
    assert s.probs_at(49) == {"en": 1.0, "it": 0.0, "sw": 0.0}
    assert s.probs_at(50) == pytest.approx(cm.temperature_probs(SIZES, tau=5))
    for t in range(50):
        s.batch(t)
    assert s.cursors == {"en": 500, "it": 0, "sw": 0}


def test_unimax_static_allocation_and_dynamic_drop():
    bal = {"sample": {"kind": "unimax", "budget": 1000.0, "max_epochs": 4.0}}  # `unimax_static` at N = 4
    probs = cm.schedule_from_dict(bal["sample"]).probs_at(0, SIZES, 100)
    # budget 1000: sw capped at 40, it gets min(480, 400) = 400, en the remaining 560
    assert probs == pytest.approx({"en": 0.56, "it": 0.4, "sw": 0.04})
    s = sampler_for("unimax")
    n_cap = unimax_epochs(SIZES, 1000)
    for t in range(100):
        s.batch(t)
    assert n_cap * 10 <= s.cursors["sw"] <= n_cap * 10 + 10  # dropped within a batch of N epochs


def test_unimax_cap_comes_from_the_budget():
    # N = the scarcest language's epochs under τ=5 at this budget: UniMax repeats it as much as τ=5
    big = {"en": 24000, "it": 3000, "zh": 800, "sw": 60}
    budget = 300 * 32
    n_cap = unimax_epochs(big, budget)
    assert n_cap == pytest.approx(budget * cm.temperature_probs(big, tau=5)["sw"] / 60, abs=0.05)
    # the cap binds late in training (not after 4% of it), and it scales with the budget
    s = sampler_for("unimax", steps=300, batch=32, sizes=big)
    dropped = next(t for t in range(300) if s.batch(t) is not None and s.probs_at(t + 1)["sw"] == 0)
    assert 0.4 * 300 < dropped < 300
    assert unimax_epochs(big, 2 * budget) == pytest.approx(2 * n_cap, abs=0.15)
    # and static UniMax is neither uniform nor τ=5
    st = cm.schedule_from_dict(balance_for("unimax_static", big, 300, 32, ("en",))["sample"])
    p = st.probs_at(0, big, 300)
    assert p["sw"] == pytest.approx(n_cap * 60 / budget, rel=1e-6)
    assert p["en"] == pytest.approx(p["it"]) == pytest.approx(p["zh"])


def test_scalarization_and_cooldown_tables():
    assert balance_for("scal5", SIZES, 10, 2, ("en",)) == {"sample": 1.0, "target": 5.0}
    cd = cm.schedule_from_dict(balance_for("cooldown", SIZES, 10, 2, ("en",))["sample"])
    assert (cd.tau_at(4, 10), cd.tau_at(5, 10)) == (5.0, 1.0)
    inc = cm.schedule_from_dict(balance_for("increasing", SIZES, 10, 2, ("en",))["sample"])
    assert (inc.tau_at(4, 10), inc.tau_at(5, 10)) == (1.0, 5.0)
    dense = cm.schedule_from_dict(balance_for("dense2", SIZES, 100, 2, ("en",))["sample"])
    taus = [dense.tau_at(t, 100) for t in range(100)]
    assert len(set(taus)) == 10 and taus[0] == 5.0 and taus[-1] == pytest.approx(1.0)


def test_schedules_that_point_the_other_way():
    late = cm.schedule_from_dict(balance_for("late_upsample", SIZES, 100, 2, ("en",))["sample"])
    assert [late.tau_at(t, 100) for t in (0, 79, 80, 99)] == [1.0, 1.0, 5.0, 5.0]
    warm = cm.schedule_from_dict(balance_for("tau_warmup", SIZES, 100, 2, ("en",))["sample"])
    taus = [warm.tau_at(t, 100) for t in range(100)]
    assert taus[0] == pytest.approx(1.0) and taus[50] == pytest.approx(3.0)
    assert all(b >= a for a, b in itertools.pairwise(taus)) and taus[-1] > 4.9


def test_clip_variants_differ_only_in_clipping():
    plain = method_sections("scal5", SIZES, 10, 2, ("en",))
    clipped = method_sections("scal5_clip", SIZES, 10, 2, ("en",))
    assert clipped["balance"] == plain["balance"] and "optim" not in plain
    assert clipped["optim"] == {"clip": 1.0}


def test_convergence_base_turns_clipping_off_and_every_run_anneals():
    for p in PRESETS.values():
        for e in p.experiments:
            # cosine to 5% of the peak, or (mt-overfit) the paper's MT inverse-sqrt decay
            assert e.base["optim"]["schedule"] in ("cosine", "inverse_sqrt")
            assert e.base["optim"]["final_lr"] == 0.05
            if e.key == "convergence":
                assert e.base["optim"]["clip"] == 0.0


def test_doremi_expands_to_a_smaller_reference_and_proxy():
    exp = next(e for e in PRESETS["quick"].experiments if e.key == "lm")
    sizes = exp.base["data"]["train_sizes"]
    specs = [s for s in expand(exp, sizes) if s.seed == 0 and s.method.startswith("doremi")]
    ref, proxy, main = specs
    assert (ref.method, proxy.role, main.role) == ("doremi_ref", "proxy", "main")
    assert ref.config["balance"] == {"sample": DOREMI_REFERENCE_TAU}
    assert proxy.config["balance"] == {"sample": "inf"}  # uniform: every domain in every batch
    assert proxy.config["doremi"] == {"reference": ref.id, "eta": 1.0, "smoothing": 1e-3}
    assert proxy.needs == (ref.id,) and main.needs == (proxy.id,)
    for s in (ref, proxy):
        assert s.config["model"]["d_model"] < main.config["model"]["d_model"]
        assert s.config["model"]["d_ff"] < main.config["model"]["d_ff"]
    assert half_width(main.config["model"]) == ref.config["model"] == proxy.config["model"]


def test_runs_that_others_wait_on_are_scheduled_first():
    exp = next(e for e in PRESETS["quick"].experiments if e.key == "lm")
    specs = sorted(expand(exp, exp.base["data"]["train_sizes"]), key=lambda s: s.seed)
    depth = chain_depth(specs)
    assert depth["lm/doremi_ref/s0"] == 2 and depth["lm/doremi-proxy/s0"] == 1
    assert depth["lm/doremi/s0"] == 0 and depth["lm/tau1/s1"] == 0
    ready = [s for s in specs if not s.needs]
    order = [s.id for s in by_priority(ready, depth)]
    assert order[:2] == ["lm/doremi_ref/s0", "lm/doremi_ref/s1"]
    rest = [s.id for s in ready if not s.id.startswith("lm/doremi_ref")]
    assert order[2:] == rest  # ties keep the seed-major order


def test_quick_has_two_seeds_on_the_core_comparisons():
    quick = {e.key: e for e in PRESETS["quick"].experiments}
    for key, methods in (
        ("convergence", ("tau1", "tau2", "scal2", "tau5", "scal5")),
        ("lm", ("tau1", "tau5", "tau100", "cooldown", "increasing", "doremi")),
    ):
        for m in methods:
            assert len(quick[key].seeds_for(m)) >= 2, (key, m)
    full = {e.key: e for e in PRESETS["full-lm"].experiments}
    for m in ("tau1", "tau5", "cooldown", "doremi"):
        assert len(full["lm"].seeds_for(m)) == 5
    # what quick leaves out for time runs in full-lm, on 3 seeds
    for m in ("late_upsample", "tau_warmup", "dense1", "unimax", "order_matters", "adaptive"):
        assert len(full["lm"].seeds_for(m)) >= 3, m
    for m in ("tau3", "scal3", "tau5_clip", "scal5_clip"):
        assert len(full["convergence"].seeds_for(m)) >= 3, m


def test_high_resource_split():
    assert high_resource({"es": 30000, "it": 29000, "gl": 17000, "ga": 1800}) == ("es", "it", "gl")
