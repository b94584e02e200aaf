"""`coolmix plan`: tables, warnings, CSV/PNG/TOML outputs, --json, --set, YAML."""

import csv
import json
from pathlib import Path

import pytest
import yaml

from coolmix.cli.__main__ import main
from coolmix.mixconfig import load_plan_config

ROOT = Path(__file__).resolve().parents[2]
MC4_COOLDOWN = ROOT / "configs" / "plan" / "mc4_cooldown.toml"
SHORT = ["--set", "run.total_steps=2000"]  # keeps the simulated replay short


def test_plan_prints_tables_and_writes_csv_png_and_resolved_toml(capsys, tmp_path):
    out = tmp_path / "out"
    assert main(["plan", str(MC4_COOLDOWN), "--out", str(out), *SHORT]) == 0
    text = capsys.readouterr().out
    assert "mc4_cooldown — cooldown(hot=5, cold=1, at=0.5)" in text
    assert "2,000 steps × 512 = 1,024,000 examples" in text
    for needle in ("whole run", "per phase", "τ=5", "τ=1", "size (tokens)", "realised share", "2.73T"):
        assert needle in text, needle
    assert "warning: sw: p·B = 0.17 < 1 in phase 1 (steps 1,000–1,999, τ=1)" in text
    assert {p.name for p in out.iterdir()} == {"plan.csv", "plan.png", "plan.toml"}
    rows = list(csv.DictReader((out / "plan.csv").open()))
    assert len(rows) == 3 * 4 and rows[-1]["phase"] == "all" and rows[-1]["domain"] == "sw"
    assert (out / "plan.png").read_bytes()[:4] == b"\x89PNG"
    resolved = load_plan_config(out / "plan.toml")  # the resolved config reloads to the same plan
    assert (
        resolved.run.total_steps == 2000
        and resolved.to_dict() == load_plan_config(MC4_COOLDOWN, ["run.total_steps=2000"]).to_dict()
    )


def test_json_output_and_no_plot(capsys, tmp_path):
    out = tmp_path / "out"
    assert main(["plan", str(MC4_COOLDOWN), "--out", str(out), "--json", "--no-plot", *SHORT]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_steps"] == 2000 and data["schedule"]["kind"] == "cooldown"
    assert [p["tau_start"] for p in data["phases"]] == [5.0, 1.0]
    assert data["realised"]["sw"] + data["realised"]["en"] + data["realised"]["it"] + data["realised"][
        "zh"
    ] == (2000 * 512)
    assert data["phases"][0]["epochs"]["sw"] == pytest.approx(
        0.5 * 2000 * 512 * 0.0933 * 1024 / 1e9, rel=2e-3
    )
    assert not (out / "plan.png").exists() and (out / "plan.csv").exists()


def test_set_overrides_change_the_plan(capsys, tmp_path):
    argv = ["plan", str(MC4_COOLDOWN), "--out", str(tmp_path), "--json", "--no-plot", *SHORT]
    assert main([*argv, "--set", "schedule.at=0.25", "--set", "run.max_epochs=0.001"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["start"] for p in data["phases"]] == [0, 500]
    assert any(w.startswith("sw: ") and "exceed max_epochs=0.001" in w for w in data["warnings"])


def test_yaml_config_and_continuous_schedule(capsys, tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "name": "anneal",
                "mixture": {"sizes": {"a": 900, "b": 90, "c": 10}, "unit": "examples"},
                "schedule": {"kind": "anneal", "start": 10, "end": 1, "shape": "exponential"},
                "run": {"total_steps": 80, "batch_size": 4, "composition": "iid"},
            }
        )
    )
    assert main(["plan", str(cfg), "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "anneal — anneal(" in text and "iid composition" in text and "τ=10→" in text
    assert (tmp_path / "o" / "plan.png").exists()
