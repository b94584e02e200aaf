"""`coolmix ablation`: verdicts re-judged on the runs common to every setting, and which moved."""

from __future__ import annotations

import json

import pytest
from tests.reproduce.test_claims_rules import lm_runs

from coolmix.cli.__main__ import main
from coolmix.reproduce.ablation import common_runs, lr_profile, verdict_table
from coolmix.reproduce.results import Runs, runs_to_json

WIN = {"cooldown": (4.35, 5.28, 5.35, 5.88), "increasing": (4.36, 5.40, 5.50, 6.10)}
LOSE = {"cooldown": WIN["increasing"], "increasing": WIN["cooldown"]}


def folder(tmp_path, name, table, seeds=3, schedule="cosine"):
    d = tmp_path / name
    d.mkdir()
    meta = {"preset": "lr-ablation", "overrides": [f"optim.schedule={schedule}"]}
    rows = runs_to_json(Runs(lm_runs(table, seeds)))
    (d / "metrics.json").write_text(json.dumps({"meta": meta, "runs": rows, "theory": {}}))
    return d


def test_a_verdict_that_moves_with_the_setting_is_marked_and_one_that_stays_is_not(tmp_path):
    a = folder(tmp_path, "a", WIN)
    b = folder(tmp_path, "b", LOSE, schedule="inverse_sqrt")
    c = folder(tmp_path, "c", WIN, schedule="constant")
    moved = verdict_table({"cosine": a, "inverse_sqrt": b})
    e6 = next(line for line in moved.splitlines() if line.startswith("| E6 "))
    assert "**PASS**" in e6 and "**FAIL**" in e6 and e6.endswith("| yes |")
    same = verdict_table({"cosine": a, "constant": c})
    assert next(line for line in same.splitlines() if line.startswith("| E6 ")).endswith("| no |")
    assert "0.81 / 0.24 (×3.39)" in moved and "0.48 / 0.26 (×1.84)" in moved  # exact LR profiles


def test_claims_are_rejudged_on_the_runs_common_to_every_folder():
    five = Runs(lm_runs(WIN, seeds=5))
    three = Runs(lm_runs(WIN, seeds=3))
    got = common_runs({"five": five, "three": three})
    assert sorted({r.seed for r in got["five"].runs}) == [0, 1, 2]
    assert len(got["five"].runs) == len(got["three"].runs) == 6


def test_lr_profile_is_nan_for_an_unknown_preset():
    b, a = lr_profile({"preset": "nope"})
    assert b != b and a != a


def test_cli_needs_two_labelled_folders_and_says_so_in_one_line(tmp_path, capsys):
    a = folder(tmp_path, "a", WIN)
    assert main(["ablation", "--label", f"a={a}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "label" in err[0]
    out = tmp_path / "t.md"
    assert main(["ablation", "--label", f"a={a}", "--label", f"b={a}", "--out", str(out)]) == 0
    assert "| E6 " in out.read_text()


def test_trend_needs_monotone_means_and_separated_ends():
    from coolmix.reproduce.ablation import trend
    from coolmix.reproduce.stats import Interval

    def iv(m, h=0.05):
        return Interval(m, m - h, m + h, 3, 0.1)

    assert trend([iv(0.1), iv(0.3), iv(0.5)]) == "rises"
    assert trend([iv(0.5), iv(0.3), iv(0.1)]) == "falls"
    assert trend([iv(0.1), iv(0.5), iv(0.3)]) == "no clear trend"  # not monotone
    assert trend([iv(0.10, 0.2), iv(0.15, 0.2), iv(0.2, 0.2)]) == "no clear trend"  # ends overlap
    assert trend([iv(0.1), None, iv(0.5)]) == "–"  # a size without the figure: no direction claimed


def test_scale_figures_give_e8_gaps_per_lrl_against_the_dev_chosen_static():
    from coolmix.reproduce.ablation import figure_rows

    statics = {"tau1": (4.0, 6.0, 6.5, 7.0), "tau5": (4.3, 5.2, 5.6, 6.3), "tau100": (4.4, 5.1, 5.4, 6.4)}
    small = Runs(lm_runs({**statics, "cooldown": (4.2, 5.3, 5.5, 6.0)}))
    big = Runs(lm_runs({**statics, "cooldown": (4.2, 5.0, 5.3, 6.0)}))
    rows = dict(figure_rows({"small": small, "big": big}))
    it = rows["E8 gap on it: Cooldown − best static τ (dev-chosen)"]
    assert [x.mean for x in it] == pytest.approx([0.2, -0.1], abs=0.01)  # τ=100 is it's best static: 5.1
    sw = rows["E8 gap on sw: Cooldown − best static τ (dev-chosen)"]
    assert [x.mean for x in sw] == pytest.approx([-0.3, -0.3], abs=0.01)  # τ=5 (6.3) is sw's best static
    kept = rows["retained HRL penalty (E5's scale-free figure)"]
    assert [x.mean for x in kept] == pytest.approx([0.2 / 0.3] * 2, abs=0.05)


def test_folders_are_compared_on_the_same_test_items():
    from dataclasses import replace

    runs = lm_runs(WIN)
    items = {
        "n": {},
        "loss": {x: [9.0] for x in ("en", "it", "zh", "sw")},
        "tokens": {x: [1] for x in ("en", "it", "zh", "sw")},
    }
    whole = Runs([replace(r, final={**r.final, "test_items": items}) for r in runs])
    assert whole.whole_test("lm") and whole.runs[0].test("en") == 9.0
    got = common_runs({"items": whole, "headline": Runs(runs)})
    assert not got["items"].whole_test("lm")  # one folder without per-item scores: both use the slice
    assert got["items"].runs[0].test("en") == got["headline"].runs[0].test("en") != 9.0
    assert common_runs({"a": whole, "b": whole})["a"].runs[0].test("en") == 9.0
