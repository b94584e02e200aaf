"""Each class of hostile input from issue 8, through the real entry point: one line and exit 2, or a
sound result; never a traceback, never advice computed from NaN, never a run started on bad flags."""

from __future__ import annotations

import json
import time

import pytest

from coolmix.cli.__main__ import main

PLAN = """\
[mixture]
sizes = { en = 2733, it = 162, zh = 39, sw = 1 }
[schedule]
kind = "cooldown"
hot = 5
cold = 1
at = 0.5
[run]
total_steps = 20
batch_size = 8
"""

_ROW = {
    "examples": 12, "tokens": 120, "share": 0.75, "target_share": 0.7, "target_examples": 11.2,
    "epochs": 0.12, "max_repeats": 1,
}  # fmt: skip
GOOD = json.dumps({"step": 4, "ledger": {"en": _ROW, "sw": {**_ROW, "examples": 4, "share": 0.25}}})

# the damaged metrics files a crash, a full disk or a hand edit leaves (issue 8: 12 of 18 failed)
DAMAGE = {
    "empty": "",
    "blank lines": "\n \n\t\n",
    "garbage": "this is not json",
    "truncated last line": GOOD[: len(GOOD) // 2],
    "NUL bytes (zeroed file)": "\x00" * 64,
    "NUL-prefixed record": "\x00" * 8 + GOOD,
    "a JSON list": "[1, 2, 3]",
    "a JSON number": "42",
    "null": "null",
    "ledger null": json.dumps({"step": 1, "ledger": None}),
    "domain row null": json.dumps({"step": 1, "ledger": {"en": None, "sw": _ROW}}),
    "nested null": json.dumps({"step": 1, "ledger": {"en": {**_ROW, "examples": None}, "sw": _ROW}}),
    "missing keys": json.dumps({"step": 1, "ledger": {"en": {"examples": 3}, "sw": _ROW}}),
    "NaN string": json.dumps({"step": 1, "ledger": {"en": {**_ROW, "share": "NaN"}, "sw": _ROW}}),
    "NaN literal": GOOD.replace("0.75", "NaN"),
    "Infinity literal": GOOD.replace("0.75", "Infinity"),
    "wrong types": json.dumps({"step": "x", "ledger": {"en": {**_ROW, "examples": "many"}, "sw": _ROW}}),
    "negative count": json.dumps({"step": 1, "ledger": {"en": {**_ROW, "examples": -5}, "sw": _ROW}}),
    "no step": json.dumps({"ledger": {"en": _ROW, "sw": _ROW}}),
    "ledger is a list": json.dumps({"step": 1, "ledger": [1, 2]}),
    "huge number (1e400)": GOOD.replace("120", "1e400"),
}  # fmt: skip


def one_line(capsys, code: int, *needles: str) -> str:
    """Assert exit 2 with exactly one stderr line, no traceback; return the line."""
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("coolmix"), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def plan_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(PLAN)
    return path


# -- config files ------------------------------------------------------------------------------------


def test_plan_config_that_is_not_utf8_is_one_line(capsys, tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_bytes(PLAN.replace("cooldown", "c\xf6oldown").encode("latin-1"))
    one_line(capsys, main(["plan", str(cfg), "--no-plot"]), "config=", "not UTF-8")


def test_train_config_that_is_not_utf8_is_one_line(capsys, tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_bytes(b'[data]\nname = "bible"\n# caf\xe9\n')
    one_line(capsys, main(["train", str(cfg), "--out", str(tmp_path / "run")]), "config=", "not UTF-8")


def test_yaml_alias_bomb_is_refused_in_well_under_a_second(capsys, tmp_path):
    """Nine levels of ten aliases: 10**9 values once expanded; it used to run a minute, then MemoryError."""
    cfg = tmp_path / "bomb.yaml"
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    cfg.write_text("\n".join(lines) + "\nmixture: *a8\n")
    t0 = time.perf_counter()
    code = main(["plan", str(cfg), "--no-plot"])
    assert time.perf_counter() - t0 < 1.0
    one_line(capsys, code, "config=", "alias bomb")


@pytest.mark.parametrize("which", ["config", "out"])
def test_path_component_longer_than_255_bytes_is_one_line(capsys, tmp_path, plan_file, which):
    long = "x" * 256
    cfg = tmp_path / f"{long}.toml" if which == "config" else plan_file
    out = tmp_path / long if which == "out" else tmp_path / "o"
    one_line(capsys, main(["plan", str(cfg), "--out", str(out), "--no-plot"]), f"{which}=", "255")


def test_config_that_is_a_directory_or_missing_is_one_line(capsys, tmp_path):
    (tmp_path / "d.toml").mkdir()
    one_line(capsys, main(["plan", str(tmp_path / "d.toml")]), "config=", "is a directory")
    one_line(capsys, main(["plan", str(tmp_path / "none.toml")]), "config=", "file not found")


# -- ledger on damaged metrics -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_ledger_reads_the_valid_records_around_any_damage(capsys, tmp_path, kind):
    (tmp_path / "metrics.jsonl").write_text(GOOD + "\n" + DAMAGE[kind] + "\n")
    assert main(["ledger", str(tmp_path), "--no-plot"]) == 0
    out, err = capsys.readouterr()
    assert "exposure ledger after step 4" in out and "75.00%" in out and "nan" not in out.lower()
    warnings = err.strip().splitlines()
    blank = not DAMAGE[kind].strip()
    assert warnings == [] if blank else len(warnings) == 1 and "line 2" in warnings[0], err


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_ledger_with_nothing_usable_is_one_line(capsys, tmp_path, kind):
    (tmp_path / "metrics.jsonl").write_text(DAMAGE[kind])
    line = one_line(capsys, main(["ledger", str(tmp_path), "--no-plot"]), "run_dir=")
    assert "ledger" in line


def test_ledger_keeps_records_before_a_crash_truncated_last_line(capsys, tmp_path):
    later = GOOD.replace('"step": 4', '"step": 8')
    (tmp_path / "metrics.jsonl").write_text(GOOD + "\n" + later + "\n" + later[:30])
    assert main(["ledger", str(tmp_path), "--no-plot"]) == 0
    out, err = capsys.readouterr()
    assert "after step 8" in out
    assert "line 3: truncated" in err


def test_ledger_on_non_utf8_bytes_skips_the_line(capsys, tmp_path):
    (tmp_path / "metrics.jsonl").write_bytes(GOOD.encode() + b"\n\xff\xfe{\n")
    assert main(["ledger", str(tmp_path), "--no-plot"]) == 0
    assert "not UTF-8" in capsys.readouterr().err


# -- report on damaged saved results ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "garbage", "null", "[1, 2]", '{"a": 1}', "[", "\x00"])
def test_report_on_a_damaged_runs_json_is_one_line(capsys, tmp_path, text):
    (tmp_path / "runs.json").write_text(text)
    one_line(capsys, main(["report", str(tmp_path)]), "runs.json")


@pytest.mark.parametrize("name", ["theory.json", "preset.json"])
def test_report_on_a_null_theory_or_preset_is_one_line(capsys, tmp_path, name):
    (tmp_path / name).write_text("null")
    one_line(capsys, main(["report", str(tmp_path)]), name)


# -- plan --moments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moments", "field"),
    [
        ("en=nan,it=1,zh=1,sw=1", "moments.en=nan"),
        ("en=1,it=-2,zh=1,sw=1", "moments.it=-2.0"),
        ("en=1,it=1,zh=inf,sw=1", "moments.zh=inf"),
        ("en=1,it=1,zh=1,sw=abc", "moments.sw='abc'"),
        ("en=1,it=1,zh=1,sw=1e308", "moments="),  # finite, but the gap overflows
        ("en=1,it=1,zh=1", "moments='sw'"),
    ],
)
def test_meaningless_moments_are_refused_naming_the_domain(capsys, tmp_path, plan_file, moments, field):
    out = tmp_path / "o"
    code = main(["plan", str(plan_file), "--out", str(out), "--no-plot", "--moments", moments])
    one_line(capsys, code, field)


@pytest.mark.parametrize(
    "lines",
    [
        ["{trunc"],
        ["\x00\x00"],
        [json.dumps({"step": 1, "variance": None})],
        [json.dumps({"step": 1, "variance": {"s": {"en": "nan", "it": 1, "zh": 1, "sw": 1}}})],
        [json.dumps({"step": 1, "variance": {"s": {"en": -1, "it": 1, "zh": 1, "sw": 1}}})],
    ],
)
def test_moments_from_a_run_with_bad_metrics_is_one_line(capsys, tmp_path, plan_file, lines):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("\n".join(lines))
    code = main(["plan", str(plan_file), "--out", str(tmp_path / "o"), "--no-plot", "--moments", str(run)])
    one_line(capsys, code, "moments")


def test_moments_from_a_run_use_its_newest_good_record(capsys, tmp_path, plan_file):
    run = tmp_path / "run"
    run.mkdir()
    good = {"step": 1, "variance": {"s": {"en": 1, "it": 1, "zh": 1, "sw": 1}}}
    (run / "metrics.jsonl").write_text(json.dumps(good) + "\n{truncated")
    code = main(["plan", str(plan_file), "--out", str(tmp_path / "o"), "--no-plot", "--moments", str(run)])
    assert code == 0
    assert "upsampling (temperature sampling)" in capsys.readouterr().out


# -- reproduce: bad flags never start a run -----------------------------------------------------------


@pytest.fixture
def no_runs(monkeypatch):
    import coolmix.reproduce.pipeline as pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("reproduce started although a flag was bad")

    monkeypatch.setattr(pipeline, "reproduce", refuse)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--workers", "-3"], "workers=-3"),
        (["--workers", "100000"], "workers=100000"),
        (["--seeds", "a,b"], "seeds="),
        (["--seeds", "0,-1"], "seeds=-1"),
        (["--seeds", "0,,1"], "seeds="),
        (["--set", "run.total_steps=abc"], "run.total_steps='abc'"),
        (["--set", "run.batch_size=-4"], "run.batch_size=-4"),
        (["--set", "run.total_steps"], "override="),
        (["--preset", "nosuch"], "preset='nosuch'"),
        (["--only", "zz"], "only='zz'"),
        (["--out", "r" * 300], "out="),
    ],
)
def test_reproduce_with_a_bad_flag_is_one_line_and_starts_nothing(capsys, tmp_path, no_runs, argv, needle):
    argv = ["reproduce", "--out", str(tmp_path / "r"), *argv]
    one_line(capsys, main(argv), needle)
    assert not (tmp_path / "r").exists()


# -- kind swap through --set ----------------------------------------------------------------------------


def test_set_schedule_kind_drops_the_old_kinds_keys_and_says_so(capsys, tmp_path, plan_file):
    argv = ["plan", str(plan_file), "--out", str(tmp_path / "o"), "--no-plot", "--json"]
    assert main([*argv, "--set", "schedule.kind=unimax_dynamic", "--set", "schedule.max_epochs=4"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["schedule"]["kind"] == "unimax_dynamic"
    assert err.strip().splitlines() == [
        "coolmix: warning: schedule.kind: 'cooldown' -> 'unimax_dynamic' dropped hot, cold, at "
        "('unimax_dynamic' takes after, max_epochs)"
    ]
