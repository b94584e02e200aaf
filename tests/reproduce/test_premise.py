"""Cooldown's premise split: per-LRL "did τ=5 overfit it?" lines, and E5m/E8m restricted to them."""

from __future__ import annotations

import numpy as np
from tests.reproduce.test_claims_rules import curve_run, decay

from coolmix.reproduce.claims import evaluate_claims
from coolmix.reproduce.premise import premise
from coolmix.reproduce.results import Runs

SIZES = {"en": 12000, "it": 710, "sw": 30}


def flat(v):
    return lambda st: np.full(len(st), v)


def table_runs(sw_overfits=(True, True, True), it_test_cooldown=5.60, sw_test_cooldown=5.70):
    """en/it/sw LM runs: τ=5's sw dev loss turns up in the seeds flagged in ``sw_overfits``; it never
    overfits. Cooldown loses on it to τ=100 (test) and wins on sw against τ=5."""
    runs = []
    for s, overfit in enumerate(sw_overfits):
        sw5 = decay(7, 5.8, 40, 120, 0.6) if overfit else decay(7, 5.8, 40)
        curves = {
            "tau1": ({"en": flat(4.30), "it": flat(5.50), "sw": flat(6.60)}, None),
            "tau5": ({"en": flat(4.60), "it": decay(7, 5.40, 60), "sw": sw5}, None),
            "tau100": ({"en": flat(4.90), "it": flat(5.30), "sw": decay(7, 6.2, 40, 100, 0.9)}, None),
            "cooldown": (
                {"en": flat(4.40), "it": flat(5.45), "sw": flat(5.75)},
                {"en": 4.40, "it": it_test_cooldown, "sw": sw_test_cooldown},
            ),
            "doremi": ({"en": flat(4.50), "it": flat(5.60), "sw": flat(6.10)}, None),
        }
        for m, (c, test) in curves.items():
            r = curve_run("lm", m, s, SIZES, c, test)
            if m == "tau100":  # τ=100 is best on it's test split
                r.final["test"]["loss"]["it"] = 5.30 + 0.001 * s
            if m == "tau5":
                r.final["test"]["loss"]["sw"] = float(r.final["dev"]["loss"]["sw"]) + 0.3
            runs.append(r)
    return Runs(runs)


def verdicts(runs):
    return {v.claim: v for v in evaluate_claims(runs, {})}


def test_premise_holds_only_where_tau5_overfits_in_every_seed():
    p = premise(table_runs(), "lm")
    assert set(p) == {"it", "sw"}  # the LRLs
    assert p["sw"].holds and p["sw"].flagged == 3 and p["sw"].steps
    assert not p["it"].holds and p["it"].flagged == 0
    assert "premise holds" in p["sw"].text() and "premise absent" in p["it"].text()
    mixed = premise(table_runs(sw_overfits=(True, False, True)), "lm")["sw"]
    assert mixed.flagged == 2 and not mixed.holds and "premise mixed" in mixed.text()


def test_e8_as_stated_fails_on_it_while_the_mechanism_passes_on_sw():
    v = verdicts(table_runs())
    assert v["E8"].verdict == "FAIL"  # it: Cooldown worse than τ=100, and it never overfit
    assert v["E8m"].verdict == "PASS" and v["E8m"].kind == "mechanism"
    assert all("sw" in c.label for c in v["E8m"].primary)
    notes = " ".join(v["E8"].notes)
    assert "it: τ=5 overfits it (dev) in 0/3 seeds" in notes
    assert "disagreement with Table 4" in notes  # the paper's it was also under one epoch


def test_mechanism_fails_when_cooldown_loses_where_the_premise_holds():
    v = verdicts(table_runs(sw_test_cooldown=7.5))
    assert v["E8m"].verdict == "FAIL"
    assert v["E5m"].verdict == "FAIL"


def test_mechanism_is_not_run_when_the_premise_holds_nowhere():
    v = verdicts(table_runs(sw_overfits=(True, False, True)))
    assert v["E8m"].verdict == "NOT RUN" and "mechanism is not tested" in v["E8m"].evidence
    assert v["E5m"].verdict == "NOT RUN"


def test_the_test_split_never_moves_a_language_between_groups():
    """Premise groups come from dev curves only: wild test scores leave them unchanged."""
    base = premise(table_runs(), "lm")
    wild = table_runs()
    for r in wild.get("lm", "tau5"):
        for x in r.final["test"]["loss"]:
            r.final["test"]["loss"][x] = 100.0
    assert {k: p.holds for k, p in premise(wild, "lm").items()} == {k: p.holds for k, p in base.items()}


def test_retained_penalty_is_the_share_of_tau5s_hrl_penalty_cooldown_keeps():
    from tests.reproduce.test_claims_rules import lm_runs

    from coolmix.reproduce.premise import retained_penalty

    # HRL (en): τ=1 4.00, τ=5 4.40, Cooldown 4.10 → keeps 0.25 of the 0.40 penalty
    table = {"tau1": (4.00, 5.5, 5.5, 6.6), "tau5": (4.40, 5.4, 5.4, 5.9), "cooldown": (4.10, 5.4, 5.4, 5.8)}
    iv = retained_penalty(Runs(lm_runs(table)), "lm")
    assert abs(iv.mean - 0.25) < 0.03 and iv.lo < 0.25 < iv.hi and iv.n == 3
    worse = {**table, "cooldown": (4.36, 5.4, 5.4, 5.8)}
    assert abs(retained_penalty(Runs(lm_runs(worse)), "lm").mean - 0.9) < 0.03
    e5 = verdicts(Runs(lm_runs({**table, "tau100": (4.9, 5.3, 5.3, 6.2)})))["E5"]
    assert any(n.startswith("retained HRL penalty (lm): Cooldown keeps +0.2") for n in e5.notes)


def mt_tau5(chrf_turns: bool):
    """MT τ=5 runs whose ga dev loss turns up (the premise holds on the loss); ga dev chrF either keeps
    rising to the last eval or peaks halfway."""
    from tests.reproduce.test_claims_rules import STEPS

    runs = []
    for s in range(3):
        ga_loss = decay(7, 5.0, 40, 120, 0.6)
        r = curve_run("mt", "tau5", s, {"es": 30000, "ga": 250}, {"es": flat(3.0), "ga": ga_loss})
        for i, rec in enumerate(r.curve):
            x = STEPS[i] / STEPS[-1]
            ga = 20 * x if not chrf_turns else 20 - 30 * abs(x - 0.5)
            rec["dev"]["chrf"] = {"es": 20.0, "ga": float(ga)}
        runs.append(r)
    return Runs(runs)


def test_mt_premise_line_says_whether_the_scored_metric_turned_down_too():
    # the premise is read on dev loss; on MT the claims score chrF, which can keep improving after the
    # loss turns up, so the line says where τ=5's dev chrF peaked (dev only)
    rising = premise(mt_tau5(chrf_turns=False), "mt")["ga"]
    assert rising.holds and "chrF" in rising.text() and "at the last eval in 3/3 seeds" in rising.text()
    turning = premise(mt_tau5(chrf_turns=True), "mt")["ga"]
    assert turning.holds and "at the last eval in 0/3 seeds" in turning.text()
    assert "chrF" not in premise(table_runs(), "lm")["sw"].text()  # the LM scores the loss itself


def test_the_mt_dev_figure_draws_loss_and_chrf_rows(tmp_path):
    # the MT section's figure puts dev loss above dev chrF per language, where the two part ways
    from matplotlib.image import imread

    from coolmix.reproduce import plots

    runs = mt_tau5(chrf_turns=False)
    two = plots.fig_curves(runs, "mt", ["tau5"], tmp_path / "two.png", "t", ("loss", "chrf"))
    one = plots.fig_curves(runs, "mt", ["tau5"], tmp_path / "one.png", "t")
    assert two is not None and one is not None
    assert imread(two).shape[0] > 1.8 * imread(one).shape[0]  # one row per metric
    assert plots.fig_curves(runs, "mt", ["cooldown"], tmp_path / "n.png", "t") is None
