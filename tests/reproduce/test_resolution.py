"""The test-set resolution: a paired bootstrap over test items that measures what it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coolmix.reproduce.resolution import paired_bootstrap, resolution_lines, resolve
from coolmix.reproduce.results import Run, Runs
from coolmix.train.item_scores import chrf_stats

SIZES = {"en": 10000, "it": 1000, "sw": 20}


def _run(
    method: str, seed: int, loss: dict[str, np.ndarray], tokens: dict[str, np.ndarray] | None = None
) -> Run:
    tokens = tokens or {k: np.full(len(v), 10) for k, v in loss.items()}
    items = {
        "n": {k: len(v) for k, v in loss.items()},
        "loss": {k: [float(x) for x in v] for k, v in loss.items()},
        "tokens": {k: [int(x) for x in t] for k, t in tokens.items()},
    }
    final = {
        "step": 10,
        "sizes": SIZES,
        "test": {"loss": {k: float(np.mean(v)) for k, v in loss.items()}},
        "test_items": items,
    }
    return Run("lm", method, "main", seed, Path(f"runs/lm/{method}-s{seed}-x"), final, ())


def _losses(
    rng: np.random.Generator, n: int, shift: float = 0.0, noise: float = 0.0
) -> dict[str, np.ndarray]:
    return {k: 4.0 + shift + noise * rng.standard_normal(n) for k in SIZES}


def test_a_constant_shift_is_measured_exactly_with_no_test_noise():
    base = _losses(np.random.default_rng(0), 50, noise=0.5)
    a = _run("cooldown", 0, {k: v + 0.25 for k, v in base.items()})
    b = _run("tau1", 0, base)
    delta, se = paired_bootstrap(a, b, ["en", "sw"], "loss")
    assert delta == pytest.approx(0.25, abs=1e-9)
    assert se == pytest.approx(0.0, abs=1e-9)  # paired: the same items in both runs cancel


def test_the_standard_error_is_the_item_spread_over_root_n():
    rng = np.random.default_rng(1)
    for n in (100, 400):
        base = _losses(rng, n)
        noise = rng.standard_normal(n)
        a = _run("cooldown", 0, {k: v + noise for k, v in base.items()})
        _, se = paired_bootstrap(a, _run("tau1", 0, base), ["en"], "loss", draws=2000)
        assert se == pytest.approx(np.std(noise) / np.sqrt(n), rel=0.08)  # the bootstrap's SE of a mean


def test_tokens_weight_items_as_the_headline_loss_does():
    loss = {k: np.array([1.0, 3.0]) for k in SIZES}
    b = _run("tau1", 0, {k: np.zeros(2) for k in SIZES})
    a = _run("cooldown", 0, loss, {k: np.array([3, 1]) for k in SIZES})
    delta, _ = paired_bootstrap(a, b, ["en"], "loss")
    assert delta == pytest.approx((1.0 * 3 + 3.0 * 1) / 4)


def test_a_margin_below_the_resolution_is_said_and_a_clear_gap_is_resolved():
    rng = np.random.default_rng(2)
    noisy = []
    for s in (0, 1, 2):
        base = _losses(rng, 12, noise=3.0)  # 12 very noisy items: resolution ≫ the 3.4% margin
        noisy += [
            _run("tau1", s, base),
            _run("cooldown", s, {k: v + rng.normal(0, 3.0, 12) for k, v in base.items()}),
        ]
    rows = resolve(Runs(noisy), "lm")
    assert rows and all(r.margin < r.half_width for r in rows)
    assert all(r.cells()[-1] == "margin below resolution" for r in rows)
    clean = []
    for s in (0, 1, 2):
        base = _losses(rng, 500, noise=0.1)
        clean += [_run("tau1", s, base), _run("cooldown", s, {k: v + 1.0 for k, v in base.items()})]
    rows = resolve(Runs(clean), "lm")
    assert all(r.cells()[-1] == "resolved" and r.mean == pytest.approx(1.0) for r in rows)
    assert [r.group for r in rows] == ["HRL", "LRL", "it", "sw"]  # en is the HRL here
    text = "\n".join(resolution_lines(Runs(clean)))
    assert text == "\n".join(resolution_lines(Runs(clean)))  # fixed bootstrap seeds: byte-stable
    assert "0 of 4 margins are below the resolution" in text


def test_runs_without_item_scores_give_no_section_and_mismatched_test_sets_are_refused():
    plain = _run("tau1", 0, _losses(np.random.default_rng(3), 5))
    bare = Run("lm", "cooldown", "main", 0, Path("runs/lm/cooldown-s0-x"), {"step": 1, "sizes": SIZES}, ())
    assert resolution_lines(Runs([plain, bare])) == []
    short = _run("cooldown", 0, _losses(np.random.default_rng(3), 4))
    with pytest.raises(ValueError, match="different test sets"):
        paired_bootstrap(short, plain, ["en"], "loss")


def test_chrf_rows_are_resampled_as_corpus_chrf():
    hyps = ["the cat sat on the mat", "a dog ran", "the mat", "cat"]
    refs = ["the cat sat on a mat", "the dog ran", "a mat", "the cat"]
    stats = chrf_stats(hyps, refs)
    items = {"n": {"es": 4}, "chrf": {"es": stats}, "loss": {"es": [1.0] * 4}, "tokens": {"es": [1] * 4}}
    final = {"step": 1, "sizes": {"es": 100, "ga": 5}, "test_items": items}
    a = Run("mt", "cooldown", "main", 0, Path("a"), final, ())
    delta, se = paired_bootstrap(a, a, ["es"], "chrf")
    assert delta == 0.0 and se == 0.0


def test_claims_score_every_test_item_only_when_every_run_of_the_experiment_has_them():
    rng = np.random.default_rng(4)
    a, b = _run("tau1", 0, _losses(rng, 40, noise=1.0)), _run("cooldown", 0, _losses(rng, 40, noise=1.0))
    for r in (a, b):  # the headline slice's number differs from the whole test set's
        r.final["test"]["loss"].update({k: 9.0 for k in SIZES})
    whole = Runs([a, b])
    for r in whole.runs:  # every item (token-weighted), not the headline number stored in "test"
        items = r.final["test_items"]
        expect = float(np.average(items["loss"]["sw"], weights=items["tokens"]["sw"]))
        assert r.test("sw") == pytest.approx(expect) and whole.whole_test("lm")
    headline = {**b.final, "test": {"loss": {k: 9.0 for k in SIZES}}}
    del headline["test_items"]
    mixed = Runs([a, Run("lm", "cooldown", "main", 0, b.dir, headline, ())])
    assert not mixed.whole_test("lm")  # one run without items: nobody uses them
    assert [r.test("sw") for r in mixed.runs] == [9.0, 9.0]


def test_a_metric_the_items_do_not_hold_is_a_missing_split_not_a_traceback():
    from coolmix.reproduce.results import MissingSplit

    run = Runs([_run("tau1", 0, _losses(np.random.default_rng(5), 4))]).runs[0]  # loss items, no chrF
    assert run.whole_test
    with pytest.raises(MissingSplit, match="chrf"):
        run.test("en", "chrf")
