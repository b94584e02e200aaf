"""Plan configs: building, every class of bad input as one ConfigError, the shipped presets, fuzzing."""

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coolmix as cm
from coolmix.config import apply_overrides
from coolmix.mixconfig import MixtureConfig, PlanConfig, RunConfig, load_plan_config, plan_config_from_dict

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "configs" / "plan").rglob("*.toml"))

BASE = {
    "mixture": {"sizes": {"en": 2733, "it": 162, "zh": 39, "sw": 1}, "unit": "examples"},
    "schedule": {"kind": "cooldown", "hot": 5, "cold": 1, "at": 0.5},
    "run": {"total_steps": 100, "batch_size": 16, "world_size": 4, "max_epochs": 50},
}


def with_(path: str, value):
    """BASE with one dotted path replaced (value ``...`` deletes it)."""
    data = json.loads(json.dumps(BASE))
    *head, last = path.split(".")
    node = data
    for k in head:
        node = node[k]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


def test_builds_typed_frozen_config():
    cfg = plan_config_from_dict(BASE)
    assert isinstance(cfg.mixture, MixtureConfig) and isinstance(cfg.run, RunConfig)
    assert cfg.mixture.sizes == {"en": 2733, "it": 162, "zh": 39, "sw": 1}
    assert all(type(v) is int for v in cfg.mixture.sizes.values())  # whole numbers stay ints
    assert isinstance(cfg.schedule, cm.Schedule) and cfg.schedule.tau_at(50, 100) == 1.0
    assert cfg.run.seed == 0 and cfg.run.composition == "exact" and cfg.run.world_size == 4
    with pytest.raises(AttributeError):
        cfg.run.seed = 3  # frozen
    again = plan_config_from_dict(cfg.to_dict())  # the resolved config round-trips
    assert again.to_dict() == cfg.to_dict() and again.schedule.to_dict() == cfg.schedule.to_dict()


def test_bare_dist_table_is_a_constant_schedule_and_bare_tau_works():
    cfg = plan_config_from_dict(
        with_("schedule", {"dist": {"kind": "unimax", "budget": 1600, "max_epochs": 4}})
    )
    assert cfg.schedule.to_dict()["dist"]["kind"] == "unimax"
    assert plan_config_from_dict(with_("schedule", 5)).schedule.tau_at(0, 10) == 5.0


def test_plan_from_config_uses_every_field():
    data = with_("mixture.tokens_per_example", 64)
    plan = plan_config_from_dict(data).plan()
    assert plan.total_steps == 100 and plan.batch_size == 16 and plan.max_epochs == 50
    assert plan.tokens["sw"] == pytest.approx(plan.samples["sw"] * 64)


# -- every class of bad input is one ConfigError naming the field ------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (with_("mixture.sizes", {"en": 0, "sw": 1}), "mixture.sizes.en"),
        (with_("mixture.sizes", {"en": -5, "sw": 1}), "mixture.sizes.en"),
        (with_("mixture.sizes", {"en": math.nan, "sw": 1}), "mixture.sizes.en"),
        (with_("mixture.sizes", {"en": "inf", "sw": 1}), "mixture.sizes.en"),
        (with_("mixture.sizes", {"en": "big", "sw": 1}), "mixture.sizes.en"),
        (with_("mixture.sizes", {}), "mixture.sizes"),
        (with_("mixture.sizes", [1, 2]), "mixture.sizes"),
        (with_("mixture.unit", "words"), "mixture.unit"),
        (with_("mixture.tokens_per_example", -1), "mixture.tokens_per_example"),
        (with_("mixture.tokens_per_example", {"en": 1, "xx": 2}), "mixture.tokens_per_example.xx"),
        (with_("mixture.tokens_per_example", {"en": 1}), "mixture.tokens_per_example"),
        (with_("mixture.colour", "red"), "mixture.colour"),
        (with_("schedule", {"kind": "temperature", "tau": 0}), "schedule.tau"),
        (with_("schedule", {"kind": "temperature", "tau": -2}), "schedule.tau"),
        (with_("schedule.hot", -1), "schedule.hot"),
        (with_("schedule.at", 1.5), "schedule.at"),
        (with_("schedule.at", 0.0), "schedule.at"),
        (with_("schedule.kind", "warmup"), "schedule.kind"),
        (
            with_(
                "schedule", {"kind": "constant", "dist": {"kind": "explicit", "weights": {"en": 0, "sw": 0}}}
            ),
            "schedule.dist.weights",
        ),
        (
            with_("schedule", {"kind": "constant", "dist": {"kind": "explicit", "weights": {"xx": 1}}}),
            "schedule.dist.weights",
        ),
        (with_("schedule", {"kind": "order_matters", "high": ["en", "xx"]}), "schedule.high"),
        (
            with_("schedule", {"kind": "stages", "starts": [0, 0.6, 0.3], "dists": [5, 3, 1]}),
            "schedule.starts[2]",
        ),
        (
            with_("schedule", {"kind": "anneal", "start": 5, "end": 1, "begin": 0.8, "finish": 0.2}),
            "schedule.finish",
        ),
        (with_("run.total_steps", 0), "run.total_steps"),
        (with_("run.total_steps", -10), "run.total_steps"),
        (with_("run.total_steps", "100"), "run.total_steps"),
        (with_("run.total_steps", ...), "run.total_steps"),
        (with_("run.batch_size", 2), "run.batch_size"),  # smaller than world_size=4
        (with_("run.batch_size", 18), "run.batch_size"),  # not divisible by 4
        (with_("run.batch_size", 2**40), "run.batch_size"),
        (with_("run.world_size", 0), "run.world_size"),
        (with_("run.seed", -1), "run.seed"),
        (with_("run.composition", "random"), "run.composition"),
        (with_("run.max_epochs", 0), "run.max_epochs"),
        (with_("run.totl_steps", 5), "run.totl_steps"),
        (with_("model", {"n_layer": 2}), "model"),
        (with_("mixture", ...), "mixture"),
        (with_("schedule", ...), "schedule"),
    ],
)
def test_every_invalid_config_is_one_config_error(data, field):
    with pytest.raises(cm.ConfigError) as info:
        plan_config_from_dict(data)
    assert info.value.field == field, str(info.value)
    assert str(info.value).startswith(f"{field}=") and "\n" not in str(info.value)


def test_config_that_fails_only_when_planned_is_still_a_config_error():
    bad = with_("mixture", {"sizes": {"en": 100, "sw": 10}, "unit": "tokens", "tokens_per_example": 1024})
    with pytest.raises(cm.ConfigError, match=r"^mixture.sizes.en=100.0: smaller than one example"):
        plan_config_from_dict(bad).plan()
    with pytest.raises(cm.ConfigError, match=r"^mixture.sizes.en=1.18\d*e\+21: too large"):
        plan_config_from_dict(with_("mixture.sizes", {"en": 2**70, "sw": 1})).plan()
    weights = {"kind": "constant", "dist": {"kind": "explicit", "weights": {"en": 0.0, "sw": 1.0}}}
    cfg = plan_config_from_dict(with_("schedule", weights))
    assert cfg.plan(simulate=False).epochs["en"] == 0.0
    zero = with_("schedule", {"kind": "stages", "starts": [0, 80, 0.5], "dists": [1, 2, 3]})
    with pytest.raises(cm.ConfigError, match=r"^schedule\.(stages\.)?starts\[2\]=0.5: phases out of order"):
        plan_config_from_dict(zero).plan()


# -- files and overrides -----------------------------------------------------------------------------


def test_toml_yaml_and_json_files_build_the_same_config(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text(
        '[mixture]\nsizes = {en = 2733, it = 162, zh = 39, sw = 1}\nunit = "examples"\n'
        '[schedule]\nkind = "cooldown"\nhot = 5\ncold = 1\nat = 0.5\n'
        "[run]\ntotal_steps = 100\nbatch_size = 16\nworld_size = 4\nmax_epochs = 50\n"
    )
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(BASE, sort_keys=False))
    (tmp_path / "p.json").write_text(json.dumps(BASE))
    dicts = [load_plan_config(tmp_path / f"p.{ext}").to_dict() for ext in ("toml", "yaml", "json")]
    assert dicts[0] == dicts[1] == dicts[2]


def test_overrides_apply_before_validation(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(BASE))
    cfg = load_plan_config(path, ["run.total_steps=1000", "schedule.at=0.25", "mixture.sizes.sw=7"])
    assert cfg.run.total_steps == 1000 and cfg.schedule.to_dict()["at"] == 0.25
    assert cfg.mixture.sizes["sw"] == 7
    with pytest.raises(cm.ConfigError, match=r"^run.total_steps=-5: must be an integer >= 1"):
        load_plan_config(path, ["run.total_steps=-5"])
    with pytest.raises(cm.ConfigError, match=r"^override='run.total_steps': expected key.path=value"):
        load_plan_config(path, ["run.total_steps"])


def test_unreadable_files_are_config_errors(tmp_path):
    with pytest.raises(cm.ConfigError, match=r"^config=.*file not found"):
        load_plan_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[mixture\nsizes = 3")
    with pytest.raises(cm.ConfigError, match=r"^config=.*cannot parse"):
        load_plan_config(bad)
    recursive = tmp_path / "r.yaml"
    recursive.write_text("mixture: &x [*x]\n")
    with pytest.raises(cm.ConfigError, match=r"^config=.*recursive"):
        load_plan_config(recursive)


# -- the shipped presets ------------------------------------------------------------------------------


def test_every_preset_under_configs_plan_builds_and_plans():
    assert {p.name for p in PRESETS} >= {
        "mc4_tau1.toml",
        "mc4_tau5.toml",
        "mc4_tau100.toml",
        "mc4_cooldown.toml",
        "mc4_unimax.toml",
        "opus100_cooldown.toml",
    }
    for path in PRESETS:
        text = path.read_text()
        rel = path.relative_to(ROOT).as_posix()
        assert text.startswith("#") and f"coolmix plan {rel}" in text and "--set" in text, rel
        cfg = load_plan_config(path)
        plan = cfg.plan(max_simulated_steps=500)
        assert plan.simulated_steps == 500 and plan.max_deviation <= 1, rel
        assert sum(plan.samples.values()) == pytest.approx(cfg.run.total_steps * cfg.run.batch_size)


def test_presets_reproduce_the_paper_setup():
    def plan(name):
        return load_plan_config(ROOT / "configs" / "plan" / name).plan(simulate=False)

    cooldown = plan("mc4_cooldown.toml")
    assert cooldown.total_steps == 100_000 and [ph.label for ph in cooldown.phases] == ["τ=5", "τ=1"]
    assert cooldown.tokens_unit == "tokens" and cooldown.tokens_per_example["sw"] == 1024
    assert cooldown.epochs["sw"] == pytest.approx(2.455, abs=0.01)
    assert not any("max_epochs" in w for w in cooldown.warnings)
    assert plan("mc4_tau5.toml").epochs["sw"] == pytest.approx(4.89, abs=0.01)
    assert any(w.startswith("sw: 12.") for w in plan("mc4_tau100.toml").warnings)  # ≈12.6 epochs > 4
    assert plan("mc4_tau1.toml").target_share["sw"] == pytest.approx(1 / 2935, rel=1e-3)
    unimax = plan("mc4_unimax.toml")
    assert unimax.epochs["sw"] == pytest.approx(4.0) and unimax.warnings == ()
    opus = plan("opus100_cooldown.toml")
    assert len(opus.names) == 9 and opus.total_steps == 60_000
    assert [ph.start for ph in opus.phases] == [0, 30_000]
    assert opus.phases[0].probs_start["ug"] == pytest.approx(0.081, abs=1e-3)  # paper.md §1.5


# -- fuzzing: any input is a valid object or one ConfigError --------------------------------------------

KEYS = [
    "mixture", "schedule", "run", "sizes", "unit", "tokens_per_example", "kind", "hot", "cold", "at",
    "tau", "alpha", "dist", "starts", "dists", "start", "end", "shape", "begin", "finish", "high",
    "then", "max_epochs", "after", "on", "weights", "budget", "phases", "total_steps", "batch_size",
    "seed", "world_size", "composition", "en", "sw", "name",
]  # fmt: skip
KINDS = [*cm.SCHEDULES, *cm.DISTRIBUTIONS, "cosine", "linear", "exact", "iid", "tokens", "examples"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(KINDS),
    st.sampled_from(["inf", "nan", "", "uniform", "proportional", "en"]),
    st.text(max_size=5),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=3)), children, max_size=5),
    ),
    max_leaves=12,
)


def _mutate(data, path, value):
    node = data
    for k in path[:-1]:
        node = node[k] if isinstance(node, dict) and isinstance(node.get(k), dict) else None
        if node is None:
            return data
    node[path[-1]] = value
    return data


PATHS = [
    ("mixture",), ("mixture", "sizes"), ("mixture", "sizes", "sw"), ("mixture", "unit"),
    ("mixture", "tokens_per_example"), ("schedule",), ("schedule", "kind"), ("schedule", "hot"),
    ("schedule", "at"), ("schedule", "dist"), ("schedule", "starts"), ("schedule", "dists"),
    ("schedule", "high"), ("schedule", "max_epochs"), ("run",), ("run", "total_steps"),
    ("run", "batch_size"), ("run", "world_size"), ("run", "seed"), ("run", "composition"),
    ("run", "max_epochs"),
]  # fmt: skip
small = st.integers(1, 400)
mutations = st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(values, small)), min_size=1, max_size=3)


def _plan_or_config_error(data) -> None:
    try:
        cfg = plan_config_from_dict(data)
    except cm.ConfigError:
        return
    assert isinstance(cfg, PlanConfig)
    with contextlib.suppress(cm.ConfigError):
        cfg.plan(max_simulated_steps=20, segments=2)


@settings(derandomize=True, max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations)
def test_fuzz_mutated_configs_build_and_plan_or_raise_config_error(muts):
    data = json.loads(json.dumps(BASE))
    for path, value in muts:
        data = _mutate(data, list(path), value)
    _plan_or_config_error(data)


@settings(derandomize=True, max_examples=150, deadline=None)
@given(values)
def test_fuzz_random_documents_build_or_raise_config_error(data):
    with contextlib.suppress(cm.ConfigError):
        plan_config_from_dict(data)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    st.one_of(
        values,
        st.fixed_dictionaries({"kind": st.sampled_from(KINDS)}, optional={k: values for k in KEYS[7:28]}),
    )
)
def test_fuzz_schedule_from_dict_gives_a_schedule_or_config_error(d):
    try:
        sched = cm.schedule_from_dict(d)
    except cm.ConfigError:
        return
    try:
        p = sched.probs_at(3, {"en": 90, "sw": 10}, total_steps=10)
    except cm.ConfigError:
        return
    assert math.isclose(sum(p.values()), 1.0) and all(v >= 0 for v in p.values())


@settings(derandomize=True, max_examples=150, deadline=None)
@given(
    sizes=st.one_of(values, st.dictionaries(st.sampled_from(["en", "sw", ""]), scalars, max_size=3)),
    schedule=st.one_of(values, st.sampled_from([1.0, 5.0, "inf", {"kind": "cooldown"}])),
    total_steps=st.one_of(scalars, small),
    batch_size=st.one_of(st.integers(-2, 64), st.floats(), st.none()),
    seed=st.one_of(st.integers(-2, 2**40), st.floats(), st.text(max_size=2)),
    composition=st.sampled_from(["exact", "iid", "", "EXACT", None]),
)
def test_fuzz_sampler_constructor_gives_a_sampler_or_config_error(
    sizes, schedule, total_steps, batch_size, seed, composition
):
    try:
        s = cm.MixtureSampler(sizes, schedule, total_steps, batch_size, seed, composition)
    except cm.ConfigError:
        return
    try:
        d, i = s.global_batch(0)
    except cm.ConfigError:
        return
    assert len(d) == len(i) == batch_size


@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.text(max_size=60), st.sampled_from([".toml", ".yaml", ".json"]))
def test_fuzz_config_file_text_loads_or_raises_config_error(text, suffix):
    fd, name = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        with contextlib.suppress(cm.ConfigError):
            load_plan_config(name)
    finally:
        os.unlink(name)


def test_apply_overrides_keeps_the_source_untouched():
    out = apply_overrides(BASE, ["run.seed=3"])
    assert out["run"]["seed"] == 3 and "seed" not in BASE["run"]


# -- issue 8: hostile files, fields named as written, kind swaps ----------------------------------------


def test_schedule_errors_name_the_key_the_user_wrote():
    """Cooldown is built as a two-phase Stages; its errors used to name ``schedule.stages.starts[1]``."""
    for value in (0, -1, 1.0, "x"):
        with pytest.raises(cm.ConfigError) as info:
            plan_config_from_dict(with_("schedule.at", value))
        assert info.value.field == "schedule.at", str(info.value)
    for key in ("hot", "cold"):
        with pytest.raises(cm.ConfigError) as info:
            plan_config_from_dict(with_(f"schedule.{key}", 0))
        assert info.value.field == f"schedule.{key}", str(info.value)


def test_max_train_that_scales_ratios_past_the_data_is_blamed_on_max_train():
    from coolmix.data.corpus import CorpusSpec
    from coolmix.data.splits import make_corpus

    spec = CorpusSpec("bible", ("en", "sw"), ratios={"en": 3, "sw": 1}, max_train=10**30)
    splits = {
        s: {lang: [(i, f"{lang}{i}") for i in range(5)] for lang in spec.langs}
        for s in ("train", "dev", "test")
    }
    with pytest.raises(cm.ConfigError) as info:
        make_corpus(spec, "lm", splits, {}, exact=True)
    assert info.value.field == "max_train" and "ratios.en" in info.value.why, str(info.value)


def test_non_utf8_directory_and_long_names_are_one_config_error(tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_bytes(b"[mixture]\nsizes = {en = 1}\n# \xe9t\xe9\n")
    with pytest.raises(cm.ConfigError, match=r"^config=.*: not UTF-8 text \(byte 0xe9 at offset 29\)$"):
        load_plan_config(bad)
    (tmp_path / "d.toml").mkdir()
    with pytest.raises(cm.ConfigError, match=r"^config=.*is a directory"):
        load_plan_config(tmp_path / "d.toml")
    with pytest.raises(cm.ConfigError, match=r"^config=.*300 bytes long; the limit is 255$"):
        load_plan_config(tmp_path / ("c" * 295 + ".toml"))
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(BASE).encode())  # a BOM is not an error
    assert load_plan_config(bom).run.total_steps == 100


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nmixture: *a{levels - 1}\n"


def test_yaml_alias_bomb_and_deep_nesting_are_refused_fast(tmp_path):
    import time

    from coolmix.config import MAX_DEPTH, MAX_NODES

    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(9))  # 10**9 values once expanded
    t0 = time.perf_counter()
    with pytest.raises(cm.ConfigError, match=r"^config=.*expands to more than 100,000 values"):
        load_plan_config(path)
    assert time.perf_counter() - t0 < 1.0
    path.write_text(_bomb(4))  # 10**4 values: shared anchors are fine below the cap
    assert MAX_NODES > 10**4
    with pytest.raises(cm.ConfigError, match=r"^schedule=None: missing \[schedule\] table"):
        load_plan_config(path)
    deep = tmp_path / "deep.json"
    deep.write_text(
        json.dumps({**BASE, "name": "x", "extra": [[[[[[]]]]]]}).replace(
            "[[[[[[]]]]]]", "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
        )
    )
    with pytest.raises(cm.ConfigError, match=rf"^config=.*nested deeper than {MAX_DEPTH} levels"):
        load_plan_config(deep)


def test_set_kind_drops_the_old_kinds_keys_with_a_warning(caplog):
    from coolmix.config import kind_fields

    assert kind_fields("cooldown") == {"hot", "cold", "at"} and kind_fields("nosuch") is None
    caplog.set_level("WARNING", logger="coolmix")
    data = apply_overrides(BASE, ["schedule.kind=anneal", "schedule.start=5"])
    assert "schedule.kind: 'cooldown' -> 'anneal' dropped hot, cold, at" in caplog.text
    assert data["schedule"] == {"kind": "anneal", "start": 5}
    assert plan_config_from_dict(data).schedule.to_dict()["kind"] == "anneal"
    caplog.clear()
    swapped = apply_overrides(BASE, ["schedule.kind=unimax_dynamic", "schedule.max_epochs=4"])
    assert "dropped hot, cold, at" in caplog.text
    assert plan_config_from_dict(swapped).schedule.to_dict()["kind"] == "unimax_dynamic"
    caplog.clear()  # same kind, or an unknown one (validation names it): no warning
    assert apply_overrides(BASE, ["schedule.kind=cooldown"])["schedule"]["hot"] == 5
    assert apply_overrides(BASE, ["schedule.kind=nosuch"])["schedule"]["hot"] == 5
    assert caplog.text == ""


def test_train_config_kind_swap_is_not_a_raw_type_error(caplog):
    from coolmix.train import load_config

    base = {
        "data": {"name": "bible", "langs": ["en", "sw"]},
        "balance": {"sample": {"kind": "cooldown", "hot": 5}},
    }
    caplog.set_level("WARNING", logger="coolmix")
    cfg = load_config(base, ["balance.sample.kind=unimax_dynamic", "balance.sample.max_epochs=4"])
    assert "dropped hot" in caplog.text
    assert cfg.balance.sample["kind"] == "unimax_dynamic"


def test_override_through_a_scalar_names_the_key():
    with pytest.raises(cm.ConfigError, match=r"^run.total_steps=100: is not a table, so run.total_steps.x"):
        apply_overrides(BASE, ["run.total_steps.x=3"])
    with pytest.raises(cm.ConfigError, match=r"^override='run..seed=3': empty key"):
        apply_overrides(BASE, ["run..seed=3"])


def test_an_integer_beyond_the_largest_float_is_one_config_error():
    with pytest.raises(cm.ConfigError, match=r"^mixture.sizes.en=.*too large for a number"):
        plan_config_from_dict(apply_overrides(BASE, ["mixture.sizes.en=" + "9" * 400]))
    for key in ("hot", "cold"):  # checked by check_tau / check_float, which used to raise OverflowError
        with pytest.raises(cm.ConfigError, match=rf"^schedule.{key}=.*too large"):
            plan_config_from_dict(apply_overrides(BASE, [f"schedule.{key}=" + "9" * 400]))


def test_config_error_with_an_unprintable_value_is_still_one_line():
    e = cm.ConfigError("x", 10**5000, "too big")
    assert str(e) == "x=<int too large to print>: too big"
