"""Verdicts for the paper's empirical claims (paper.md §7) and the theory checks.

Each empirical claim has one primary comparison, defined in `CLAIMS` (often a conjunction of
a few paired comparisons, each of which must pass) and judged by the one rule in
`stats.decide` against the margins in `compare.MARGINS`; secondary comparisons are shown but do
not vote. Tables and verdicts use the test split; dev is used only to select (e.g. "the best
static τ"). The theory items T1–T6 are checks (`checks.py`), counted apart from the claims.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.diagnostics.overfit import OverfitDetector
from coolmix.reproduce.checks import evaluate_checks, variance_entries
from coolmix.reproduce.compare import (
    MT_GATE_CHRF,
    Comparison,
    Missing,
    Verdict,
    best_method,
    compare,
    need,
    per_seed,
)
from coolmix.reproduce.results import MissingSplit, Run, Runs, hrl_lrl
from coolmix.reproduce.stats import Interval, combine, decide

__all__ = ["CLAIMS", "Verdict", "evaluate_claims", "label", "mt_gate"]

OVERFIT = {"margin": 0.005, "patience": 2, "min_evals": 3, "smoothing": 0.3}  # same as adaptive Cooldown
STATICS = ("tau1", "tau5", "tau100")
DIRECTION = ("late_upsample", "tau_warmup")

CLAIMS: dict[str, tuple[str, str]] = {
    "E1": (
        "Sampling reaches a given dev loss in fewer steps than equal-weight scalarization; the gap grows with τ",
        "for each τ ∈ {2, 3, 5}: steps until the LRL's dev loss first reaches a loss every run of the "
        "pair reaches, sampling − scalarization < 0",
    ),
    "E2": (
        "With enough steps, sampling and scalarization reach about the same loss",
        "for each τ ∈ {2, 3, 5}: the LRL's final test loss, sampling vs scalarization, within ± the loss margin",
    ),
    "E3": (
        "Mini-batch gradient norms vary more under scalarization than under sampling (paper: 2.25 vs 0.62)",
        "at every measured checkpoint and τ: log(Var‖g‖ scalarization / Var‖g‖ sampling) > 0 (95% "
        "bootstrap interval over the simulated mini-batches of that checkpoint, not over seeds)",
    ),
    "E4": (
        "High static τ overfits the LRL (dev loss turns up) while the HRL still improves; τ=1 underfits it",
        "for each LRL: (a) its dev-loss rise after its minimum (final − min) is larger at τ=5 than at τ=1; "
        "(b) at τ=5 the HRL mean dev loss still falls after that minimum; (c) τ=5's best dev loss < τ=1's",
    ),
    "E5": (
        "Cooldown keeps HRLs near τ=1 and LRLs near the best static τ, matching or beating it overall",
        "test split, LM (and MT if it passes its chrF gate): Cooldown no worse than τ=1 on the HRL mean, "
        "and no worse than the best static τ (chosen on dev) on the LRL mean and on the all-language mean",
    ),
    "E6": (
        "A decreasing schedule (5→1) beats an increasing one (1→5) on LRLs with similar HRLs",
        "LM test split: 5→1 better than 1→5 on the LRL mean loss, and no worse on the HRL mean loss",
    ),
    "E7": (
        "A single switch beats dense, gradually decreasing schedules",
        "LM test split: Cooldown better than Dense 1 and better than Dense 2 on the all-language mean loss",
    ),
    "E8": (
        "LM: Cooldown beats τ=1/5/100, UniMax and Order Matters on the LRLs and is on par with DoReMi",
        "LM test split: on each LRL, Cooldown better than the best static τ on that LRL (chosen on dev); "
        "and no worse than DoReMi on the LRL mean",
    ),
    "E9": (
        "Beyond the paper: upsampling the scarce data early (Cooldown, 5→1) beats upsampling it late "
        "(late upsampling, Blakeney et al. 2024; τ warm-up 1→5, Wang et al. 2020)",
        "LM test split: Cooldown better than late_upsample and better than tau_warmup on the LRL mean loss",
    ),
}
"""Claim id → (statement, primary comparison). E9 is ours, reported apart from the paper's claims."""


def label(method: str) -> str:
    """A method's display label (its key when the method table does not know it)."""
    from coolmix.reproduce.methods import METHODS

    return METHODS[method].label if method in METHODS else method


def evaluate_claims(runs: Runs, theory: Mapping[str, Any]) -> list[Verdict]:
    """The checks T1–T6, then every claim E1–E9 with its verdict (NOT RUN where data is missing)."""
    fns: dict[str, Callable[[], tuple[list[Comparison], list[Comparison], list[str]]]] = {
        "E1": lambda: _e1(runs),
        "E2": lambda: _e2(runs),
        "E3": lambda: _e3(theory),
        "E4": lambda: _e4(runs),
        "E5": lambda: _e5(runs),
        "E6": lambda: _e6(runs),
        "E7": lambda: _e7(runs),
        "E8": lambda: _e8(runs),
        "E9": lambda: _e9(runs),
    }
    out = evaluate_checks(theory)
    for key, fn in fns.items():
        text, rule = CLAIMS[key]
        kind = "beyond" if key == "E9" else "claim"
        try:
            primary, secondary, notes = fn()
        except (Missing, MissingSplit) as e:
            out.append(Verdict(key, "NOT RUN", str(e).strip("'\""), text, rule=rule, kind=kind))
            continue
        verdict = combine(c.outcome for c in primary)
        evidence = "; ".join(c.text() for c in primary)
        out.append(
            Verdict(key, verdict, evidence, text, tuple(primary), tuple(secondary), rule, kind, tuple(notes))
        )
    return out


def mt_gate(runs: Runs) -> tuple[bool | None, str]:
    """(passed, sentence): does the τ=1 MT run reach chrF ≥ `MT_GATE_CHRF` on its largest language?
    ``passed`` is None when MT was not run. Best over the τ=1 runs' dev evals and final test."""
    rs = runs.get("mt", "tau1")
    if not rs:
        return None, ""
    sizes = rs[0].sizes()
    largest = max(sizes, key=lambda k: sizes[k])
    vals = [
        float(rec[split]["chrf"][largest])
        for r in rs
        for rec in (*r.curve, r.final)
        for split in ("dev", "test")
        if largest in rec.get(split, {}).get("chrf", {})
    ]
    vals = [v for v in vals if math.isfinite(v)]
    if not vals:
        return False, f"MT gate: the τ=1 run has no chrF on {largest} (the largest language)"
    best = max(vals)
    ok = best >= MT_GATE_CHRF
    return ok, (
        f"MT gate: the τ=1 run's best chrF on {largest} (the largest language) is {best:.1f} "
        f"{'≥' if ok else '<'} {MT_GATE_CHRF:g}"
        + ("" if ok else "; MT is a pipeline check here, and every MT comparison is left out of the verdicts")
    )


# -- helpers ----------------------------------------------------------------------------------


def _metric(exp: str) -> tuple[str, bool]:
    """(metric, higher is better) of an experiment's headline comparison."""
    return ("chrf", True) if exp == "mt" else ("loss", False)


def _groups(run: Run) -> dict[str, list[str]]:
    high, low = hrl_lrl(run.sizes())
    return {"HRL": high, "LRL": low, "all": list(run.sizes())}


def _mean(langs: Sequence[str], split: str = "test", metric: str = "loss") -> Callable[[Run], float]:
    return lambda r: r.mean_score(langs, split, metric)


def _cmp(
    lbl: str,
    got: Mapping[str, Sequence[Run]],
    a: str,
    b: str,
    fn: Callable[[Run], float],
    kind: Any,
    exp: str,
) -> Comparison:
    """``a`` vs ``b`` on ``fn`` (higher-is-better and margin from the experiment's metric)."""
    metric, higher = _metric(exp)
    return compare(
        f"{lbl}: {label(a)} vs {label(b)}",
        per_seed(got[a], fn),
        per_seed(got[b], fn),
        kind,
        higher=higher,
        metric=metric,
        unit="chrF" if metric == "chrf" else "nats",
        names=(a, b),
    )


# -- convergence experiment (Fig. 4) ------------------------------------------------------------


def _first_reach(run: Run, lang: str, target: float) -> float:
    """First step at which the dev loss of ``lang`` reaches ``target``, linearly interpolated
    between the two evals around the crossing (so the value is not quantised to the eval grid)."""
    s, v = run.series(lang)
    hit = np.flatnonzero(v <= target + 1e-12)
    if not len(hit):
        return math.inf
    i = int(hit[0])
    if i == 0 or v[i - 1] == v[i]:
        return float(s[i])
    return float(s[i - 1] + (s[i] - s[i - 1]) * (v[i - 1] - target) / (v[i - 1] - v[i]))


def _e1(runs: Runs) -> tuple[list[Comparison], list[Comparison], list[str]]:
    got = need(runs, "convergence", ["tau2", "scal2", "tau3", "scal3", "tau5", "scal5"])
    g = _groups(got["tau2"][0])
    primary, secondary, ratios = [], [], {}
    for t in ("2", "3", "5"):
        ts, sc = got[f"tau{t}"], got[f"scal{t}"]
        for lang in [*g["LRL"], *g["HRL"]]:
            target = max(r.best(lang)[0] for r in (*ts, *sc))  # a loss every run of the pair reaches
            a = per_seed(ts, lambda r, x=lang, y=target: _first_reach(r, x, y))
            b = per_seed(sc, lambda r, x=lang, y=target: _first_reach(r, x, y))
            c = compare(
                f"τ={t} {lang} steps to dev loss {target:.3f}: sampling vs scalarization",
                a,
                b,
                "better",
                higher=False,
                unit="steps",
                names=(f"tau{t}", f"scal{t}"),
            )
            (primary if lang in g["LRL"] else secondary).append(c)
            if lang in g["LRL"]:
                ratios[(t, lang)] = {s: b[s] / a[s] for s in a if s in b and a[s] > 0}
    for lang in g["LRL"]:
        secondary.append(
            compare(
                f"{lang} speed-up S/TS grows with τ: τ=5 vs τ=2",
                ratios[("5", lang)],
                ratios[("2", lang)],
                "better",
                higher=True,
                unit="×",
                names=("tau5", "tau2"),
            )
        )
    return primary, secondary, []


def _e2(runs: Runs) -> tuple[list[Comparison], list[Comparison], list[str]]:
    got = need(runs, "convergence", ["tau2", "scal2", "tau3", "scal3", "tau5", "scal5"])
    g = _groups(got["tau2"][0])
    primary, secondary = [], []
    for t in ("2", "3", "5"):
        for lang in [*g["LRL"], *g["HRL"]]:
            c = _cmp(f"τ={t} {lang} final test loss", got, f"tau{t}", f"scal{t}", _mean([lang]), "same", "lm")
            (primary if lang in g["LRL"] else secondary).append(c)
        for lang in g["LRL"]:
            best = _cmp(
                f"τ={t} {lang} best dev loss",
                got,
                f"tau{t}",
                f"scal{t}",
                lambda r, x=lang: r.best(x)[0],
                "same",
                "lm",
            )
            secondary.append(best)
    return primary, secondary, []


def _e3(theory: Mapping[str, Any]) -> tuple[list[Comparison], list[Comparison], list[str]]:
    entries = variance_entries(theory)
    if not entries:
        raise Missing("theory measurement 'variance' was not run")
    primary = []
    for where, v in entries:
        if any(k not in n for n in v["norms"].values() for k in ("s_var", "ts_var")):
            raise Missing(f"the variance measurement at {where} lacks s_var/ts_var")
        for t, n in v["norms"].items():
            iv = _log_ratio_interval(n)
            primary.append(
                Comparison(
                    f"{where}, τ={float(t):g}: Var‖g‖ scalarization {n['s_var']:.3g} vs sampling {n['ts_var']:.3g}",
                    f"scal{float(t):g}",
                    f"tau{float(t):g}",
                    "better",
                    True,
                    False,
                    "log ratio",
                    0.0,
                    iv,
                    decide(iv, "better", 0.0),
                    (),
                )
            )
    return (
        primary,
        [],
        ["the E3 interval covers the Monte-Carlo spread of simulated mini-batches at one checkpoint"],
    )


def _log_ratio_interval(norms: Mapping[str, Any], draws: int = 2000) -> Interval:
    """log(Var S / Var TS) with a percentile bootstrap over the stored mini-batch norm samples
    (seeded, so the report is deterministic); a point value when the samples are absent."""
    point = math.log(max(norms["s_var"], 1e-300) / max(norms["ts_var"], 1e-300))
    s, ts = np.asarray(norms.get("s_sample", [])), np.asarray(norms.get("ts_sample", []))
    if len(s) < 2 or len(ts) < 2:
        return Interval(point, point, point, 1, math.nan)
    rng = np.random.default_rng(0)
    vs = s[rng.integers(len(s), size=(draws, len(s)))].var(axis=1, ddof=1)
    vt = ts[rng.integers(len(ts), size=(draws, len(ts)))].var(axis=1, ddof=1)
    logs = np.log(np.maximum(vs, 1e-300) / np.maximum(vt, 1e-300))
    lo, hi = np.quantile(logs, [0.025, 0.975])
    return Interval(point, float(lo), float(hi), min(len(s), len(ts)), float(logs.std(ddof=1)))


def _rise(lang: str) -> Callable[[Run], float]:
    """Dev loss of ``lang`` at the last eval minus its minimum over the run (≥ 0)."""

    def fn(r: Run) -> float:
        best = r.best(lang)[0]  # MissingSplit without a curve
        return float(r.series(lang)[1][-1]) - best

    return fn


def _hrl_gain(lang: str, high: Sequence[str]) -> Callable[[Run], float]:
    """HRL mean dev loss at the step where ``lang`` was best, minus at the last eval (> 0: still falling)."""

    def fn(r: Run) -> float:
        step = r.best(lang)[1]
        at, last = [], []
        for h in high:
            s, v = r.series(h)
            at.append(float(v[np.flatnonzero(s == step)[0]]))
            last.append(float(v[-1]))
        return float(np.mean(at) - np.mean(last))

    return fn


def _flags(rs: Sequence[Run], lang: str) -> int:
    n = 0
    for r in rs:
        d = OverfitDetector(**OVERFIT)
        for rec in r.curve:
            if "dev" in rec:
                d.update(rec["step"], {lang: rec["dev"]["loss"][lang]})
        n += lang in d.flagged
    return n


def _e4(runs: Runs) -> tuple[list[Comparison], list[Comparison], list[str]]:
    got = need(runs, "convergence", ["tau1", "tau3", "tau5"])
    g = _groups(got["tau1"][0])
    primary, secondary, notes = [], [], []
    zeros = {r.seed: 0.0 for r in got["tau1"]}
    for lang in g["LRL"]:
        for m in ("tau5", "tau3"):
            into = primary if m == "tau5" else secondary
            rise = _rise(lang)
            into.append(
                compare(
                    f"{lang} dev-loss rise after its minimum: {label(m)} vs τ=1",
                    per_seed(got[m], rise),
                    per_seed(got["tau1"], rise),
                    "better",
                    higher=True,
                    unit="nats",
                    names=(m, "tau1"),
                )
            )
            into.append(
                compare(
                    f"HRL mean dev-loss fall after the {lang} minimum, {label(m)}",
                    per_seed(got[m], _hrl_gain(lang, g["HRL"])),
                    zeros,
                    "better",
                    higher=True,
                    unit="nats",
                    names=(m, "0"),
                )
            )
        primary.append(
            _cmp(f"{lang} best dev loss", got, "tau5", "tau1", lambda r, x=lang: r.best(x)[0], "better", "lm")
        )
        notes.append(
            f"overfitting detector (adaptive Cooldown's settings) flags {lang} in "
            + ", ".join(f"{_flags(got[m], lang)}/{len(got[m])} {label(m)}" for m in ("tau1", "tau3", "tau5"))
            + " runs"
        )
    return primary, secondary, notes


# -- LM / MT tables ------------------------------------------------------------------------------


def _e5_one(runs: Runs, exp: str) -> tuple[list[Comparison], list[Comparison]]:
    got = need(runs, exp, ["cooldown", *STATICS])
    metric, higher = _metric(exp)
    g = _groups(got["tau1"][0])
    primary, secondary = [], []
    if g["HRL"]:
        primary.append(
            _cmp(
                f"{exp} HRL mean test {metric}",
                got,
                "cooldown",
                "tau1",
                _mean(g["HRL"], "test", metric),
                "no_worse",
                exp,
            )
        )
    for grp in ("LRL", "all"):
        if not g[grp]:
            continue
        best = best_method(got, STATICS, _mean(g[grp], "dev", metric), higher)
        primary.append(
            _cmp(
                f"{exp} {'all-language' if grp == 'all' else grp} mean test {metric} (best static τ on dev)",
                got,
                "cooldown",
                best,
                _mean(g[grp], "test", metric),
                "no_worse",
                exp,
            )
        )
    for lang in g["all"]:
        best = best_method(got, STATICS, _mean([lang], "dev", metric), higher)
        secondary.append(
            _cmp(
                f"{exp} {lang} test {metric} (best static τ on dev)",
                got,
                "cooldown",
                best,
                _mean([lang], "test", metric),
                "no_worse",
                exp,
            )
        )
    return primary, secondary


def _e5(runs: Runs) -> tuple[list[Comparison], list[Comparison], list[str]]:
    primary, secondary, notes, ran = [], [], [], []
    for exp in ("lm", "mt"):
        if exp == "mt":
            ok, sentence = mt_gate(runs)
            if ok is False:
                notes.append(sentence)
                continue
        try:
            p, s = _e5_one(runs, exp)
        except Missing as e:
            notes.append(str(e))
            continue
        ran.append(exp)
        primary += p
        secondary += s
    if not ran:
        raise Missing("neither the LM nor a gated MT table was run: " + "; ".join(notes))
    return primary, secondary, notes


def _e6(runs: Runs) -> tuple[list[Comparison], list[Comparison], list[str]]:
    got = need(runs, "lm", ["cooldown", "increasing"])
    g = _groups(got["cooldown"][0])
    primary = [
        _cmp("LRL mean test loss", got, "cooldown", "increasing", _mean(g["LRL"]), "better", "lm"),
        _cmp("HRL mean test loss", got, "cooldown", "increasing", _mean(g["HRL"]), "no_worse", "lm"),
    ]
    secondary = [
        _cmp(f"{x} test loss", got, "cooldown", "increasing", _mean([x]), "better", "lm") for x in g["LRL"]
    ]
    return primary, secondary, []


def _e7(runs: Runs) -> tuple[list[Comparison], list[Comparison], list[str]]:
    got = need(runs, "lm", ["cooldown", "dense1", "dense2"])
    g = _groups(got["cooldown"][0])
    primary = [
        _cmp("all-language mean test loss", got, "cooldown", m, _mean(g["all"]), "better", "lm")
        for m in ("dense1", "dense2")
    ]
    secondary = [
        _cmp(f"{x} test loss", got, "cooldown", m, _mean([x]), "better", "lm")
        for m in ("dense1", "dense2")
        for x in g["all"]
    ]
    return primary, secondary, []


def _e8(runs: Runs) -> tuple[list[Comparison], list[Comparison], list[str]]:
    got = need(runs, "lm", ["cooldown", *STATICS, "doremi"])
    g = _groups(got["tau1"][0])
    primary, secondary = [], []
    for lang in g["LRL"]:
        best = best_method(got, STATICS, _mean([lang], "dev"), higher=False)
        primary.append(
            _cmp(
                f"{lang} test loss (best static τ on dev)",
                got,
                "cooldown",
                best,
                _mean([lang]),
                "better",
                "lm",
            )
        )
    primary.append(_cmp("LRL mean test loss", got, "cooldown", "doremi", _mean(g["LRL"]), "no_worse", "lm"))
    others = [m for m in ("unimax", "order_matters") if runs.get("lm", m)]
    got.update({m: runs.get("lm", m) for m in others})
    for m in (*STATICS, *others):
        secondary += [
            _cmp(f"{x} test loss", got, "cooldown", m, _mean([x]), "better", "lm") for x in g["LRL"]
        ]
    secondary += [
        _cmp(f"{x} test loss", got, "cooldown", "doremi", _mean([x]), "no_worse", "lm") for x in g["all"]
    ]
    secondary.append(_cmp("HRL mean test loss", got, "cooldown", "tau1", _mean(g["HRL"]), "no_worse", "lm"))
    return primary, secondary, []


def _e9(runs: Runs) -> tuple[list[Comparison], list[Comparison], list[str]]:
    got = need(runs, "lm", ["cooldown", *DIRECTION])
    g = _groups(got["cooldown"][0])
    primary = [
        _cmp("LRL mean test loss", got, "cooldown", m, _mean(g["LRL"]), "better", "lm") for m in DIRECTION
    ]
    secondary = []
    for m in DIRECTION:
        secondary.append(
            _cmp("LRL mean dev loss", got, "cooldown", m, _mean(g["LRL"], "dev"), "better", "lm")
        )
        secondary.append(
            _cmp("all-language mean test loss", got, "cooldown", m, _mean(g["all"]), "better", "lm")
        )
        secondary.append(_cmp("HRL mean test loss", got, "cooldown", m, _mean(g["HRL"]), "no_worse", "lm"))
    return primary, secondary, []
