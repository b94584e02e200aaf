"""Overfitting detector on synthetic curves with a known turning point."""

import json

import numpy as np
import pytest

from coolmix.diagnostics import OverfitDetector, detect_from_jsonl
from coolmix.errors import ConfigError


def u_curve(n=40, turn=15, noise=0.0, seed=0):
    """Loss falling to a minimum at eval `turn`, then rising linearly, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    x = np.arange(n)
    base = np.where(x <= turn, 3.0 - 1.5 * x / turn, 1.5 + 0.05 * (x - turn))
    return base + noise * rng.standard_normal(n)


def test_flags_clean_turning_point_at_the_right_eval():
    d = OverfitDetector(margin=0.02, patience=3, min_evals=3)
    for i, v in enumerate(u_curve()):
        d.update(i * 100, {"sw": v, "en": 3.0 - 0.01 * i}, epochs={"sw": i * 2.0, "en": i * 0.01})
    f = d.flagged["sw"]
    assert f.best_step == 1500 and f.epochs_at_best == 30.0
    # 1.5·1.02 = 1.53 is first exceeded at turn+1 (1.55); 3 evals above -> flagged at turn+3
    assert f.step == 1800
    assert "en" not in d.flagged  # still falling


def test_noise_robust_with_smoothing():
    flags = []
    for seed in range(10):
        d = OverfitDetector(margin=0.03, patience=3, smoothing=0.5)
        for i, v in enumerate(u_curve(noise=0.03, seed=seed)):
            d.update(i, {"sw": v})
        flags.append(d.flagged.get("sw"))
    assert all(f is not None for f in flags)
    assert all(12 <= f.best_step <= 18 for f in flags)


def test_no_flag_on_monotone_decreasing_noisy_curve():
    rng = np.random.default_rng(1)
    d = OverfitDetector(margin=0.03, patience=3, smoothing=0.5)
    for i in range(60):
        d.update(i, {"en": 3.0 * np.exp(-i / 30) + 0.02 * rng.standard_normal()})
    assert d.flagged == {}


def test_flagged_once_and_any_all():
    d = OverfitDetector(margin=0.0, patience=1, min_evals=2)
    assert d.update(0, {"a": 1.0, "b": 1.0}) == []
    assert [f.domain for f in d.update(1, {"a": 2.0, "b": 0.5})] == ["a"]
    assert d.update(2, {"a": 3.0, "b": 0.4}) == []
    assert d.is_flagged(["a", "b"], "any") and not d.is_flagged(["a", "b"], "all")


def test_state_round_trip_continues_identically():
    curve = u_curve(noise=0.02)
    a = OverfitDetector(patience=2, smoothing=0.3)
    for i, v in enumerate(curve[:10]):
        a.update(i, {"sw": v})
    b = OverfitDetector(patience=2, smoothing=0.3)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for i, v in enumerate(curve[10:], 10):
        a.update(i, {"sw": v})
        b.update(i, {"sw": v})
    assert a.flagged == b.flagged and a.flagged


def test_from_jsonl(tmp_path):
    p = tmp_path / "metrics.jsonl"
    with p.open("w") as f:
        for i, v in enumerate(u_curve()):
            f.write(json.dumps({"step": i * 10, "dev_loss": {"sw": v}, "epochs": {"sw": i}}) + "\n")
            f.write(json.dumps({"event": "not an eval"}) + "\n")
    flags = detect_from_jsonl(p, OverfitDetector(patience=3))
    assert flags["sw"].best_step == 150


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"margin": -1}, "margin"), ({"patience": 0}, "patience"), ({"smoothing": 1.0}, "smoothing")],
)
def test_bad_settings(kw, field):
    with pytest.raises(ConfigError) as e:
        OverfitDetector(**kw)
    assert e.value.field == field
