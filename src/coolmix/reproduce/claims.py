"""Verdicts for the paper's testable claims (paper.md §7), each with the numbers behind it.

PASS: our result agrees. FAIL: it disagrees. PARTIAL: it agrees on part of the claim.
NOT RUN: the experiment behind it was not run (the reason is given). Differences smaller than
the seed spread (several seeds) or than a fixed tolerance (one seed) are ties.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from coolmix.diagnostics.overfit import OverfitDetector
from coolmix.reproduce.results import Run, Runs, mean_std
from coolmix.train.evaluate import resource_buckets

__all__ = ["CLAIMS", "Verdict", "evaluate_claims"]

OVERFIT = {"margin": 0.005, "patience": 2, "min_evals": 3, "smoothing": 0.3}  # same as adaptive Cooldown
LOSS_TOL = 0.02  # nats: one-seed tie tolerance for dev losses
CHRF_TOL = 0.5  # chrF points: one-seed tie tolerance

CLAIMS = {
    "T1": "Theorem 1: full-batch GD on the scalarized and the temperature objective give identical trajectories",
    "T2": "Both single-sample estimators are unbiased for the same full gradient",
    "T3": "Theorem 2: scalarization has the larger gradient variance (the gap is Σ p_τ(w−1)s_i; equal s_i assumed)",
    "T4": "Lemma 2.1: F(τ) = Σ p_τ²/p_1 ≥ 1, and equals 1 + χ²(p_τ‖p_1)",
    "T5": "Theorem 3: F(τ) is non-decreasing for τ ≥ 1 with limit mean(n)·mean(1/n)",
    "T6": "Fig. 2: F grows with both the skew α of Zipf sizes and τ; flat at α = 0",
    "E1": "Sampling reaches a given dev loss in fewer steps than equal-weight scalarization; the gap grows with τ",
    "E2": "With enough steps, sampling and scalarization reach about the same dev loss",
    "E3": "Mini-batch gradient norms vary more under scalarization than under sampling (paper: 2.25 vs 0.62)",
    "E4": "High static τ overfits the LRL (dev loss turns up) while the HRL still improves; τ=1 underfits it",
    "E5": "Cooldown keeps HRLs near τ=1 and LRLs near the best static τ, matching or beating it overall",
    "E6": "A decreasing schedule (5→1) beats an increasing one (1→5) on LRLs with similar HRLs",
    "E7": "A single switch beats dense, gradually decreasing schedules",
    "E8": "LM: Cooldown beats τ=1/5/100, UniMax and Order Matters on the LRLs and is on par with DoReMi",
}


@dataclass(frozen=True)
class Verdict:
    claim: str
    verdict: str  # PASS | FAIL | PARTIAL | NOT RUN
    evidence: str
    text: str = ""


def _tie(a: Sequence[float], b: Sequence[float], tol: float) -> bool:
    """A difference within the larger seed spread (several seeds) or within ``tol`` (one seed)."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    spread = max(sa, sb) if len(a) > 1 and len(b) > 1 else tol
    return abs(ma - mb) <= spread


def _fmt(values: Sequence[float], digits: int = 3) -> str:
    m, s = mean_std(values)
    return f"{m:.{digits}f}" if len(values) < 2 else f"{m:.{digits}f}±{s:.{digits}f}"


def _langs(runs: Sequence[Run]) -> list[str]:
    return list(runs[0].final["dev"]["loss"]) if runs else []


def _split(sizes: Mapping[str, float]) -> tuple[list[str], list[str]]:
    """(HRLs, LRLs) by `resource_buckets`: ≥ 90% of the largest size is high, < 40% is low."""
    b = buckets(sizes)
    return [k for k in sizes if b[k] == "high"], [k for k in sizes if b[k] == "low"]


def buckets(sizes: Mapping[str, float]) -> dict[str, str]:
    """high / mid / low resource by training size (`resource_buckets`: ≥ 90% / ≥ 40% of the largest)."""
    return dict(resource_buckets({k: int(v) for k, v in sizes.items()}))


def _sizes(run: Run) -> dict[str, float]:
    return run.sizes()


def evaluate_claims(runs: Runs, theory: Mapping[str, Any]) -> list[Verdict]:
    """Every claim T1–T6, E1–E8 with a verdict (NOT RUN where its experiment is missing)."""
    checks: dict[str, Callable[[], Verdict]] = {
        "T1": lambda: _t1(theory),
        "T2": lambda: _t2(theory),
        "T3": lambda: _t3(theory),
        "T4": lambda: _t4(theory),
        "T5": lambda: _t5(theory),
        "T6": lambda: _t6(theory),
        "E1": lambda: _e1(runs),
        "E2": lambda: _e2(runs),
        "E3": lambda: _e3(theory),
        "E4": lambda: _e4(runs),
        "E5": lambda: _e5(runs),
        "E6": lambda: _e6(runs),
        "E7": lambda: _e7(runs),
        "E8": lambda: _e8(runs),
    }
    out = []
    for key, fn in checks.items():
        try:
            v = fn()
        except _Missing as e:
            v = Verdict(key, "NOT RUN", str(e))
        out.append(Verdict(key, v.verdict, v.evidence, CLAIMS[key]))
    return out


class _Missing(Exception):
    """The experiment behind a claim is not in this output folder."""


def _need(runs: Runs, exp: str, methods: Sequence[str]) -> dict[str, list[Run]]:
    got = {m: runs.get(exp, m) for m in methods}
    missing = [m for m, r in got.items() if not r]
    if missing:
        raise _Missing(f"experiment '{exp}' lacks runs {missing} (not in this preset or not finished)")
    return got


def _theory(theory: Mapping[str, Any], key: str) -> Any:
    if key not in theory or theory[key] is None:
        raise _Missing(f"theory measurement '{key}' was not run")
    return theory[key]


# -- theory -----------------------------------------------------------------------------------


def _t1(theory: Mapping[str, Any]) -> Verdict:
    t = _theory(theory, "theorem1")
    ok = t["max_abs_param_diff"] < 1e-6 and t["control_max_abs_param_diff"] > 1e3 * t["max_abs_param_diff"]
    return Verdict(
        "T1",
        "PASS" if ok else "FAIL",
        f"small GPT (float64 weights) on Bible text, {t['steps']} full-batch GD steps at lr {t['lr']}, τ=5, sizes "
        f"{t['sizes']}: max |Δθ| = {t['max_abs_param_diff']:.2e} (parameters up to "
        f"{t['param_scale']:.2f}); objectives {t['loss_ts']:.6f} vs {t['loss_s']:.6f}",
    )


def _t2(theory: Mapping[str, Any]) -> Verdict:
    u = _theory(theory, "variance")["unbiased"]
    ok = u["rel_dist_ts_exact"] < 3 * u["se_ts"] and u["rel_dist_s_exact"] < 3 * u["se_s"]
    return Verdict(
        "T2",
        "PASS" if ok else "FAIL",
        f"{u['draws']} single-sample draws each at τ=5: ‖mean g_TS − ḡ‖/‖ḡ‖ = {u['rel_dist_ts_exact']:.4f} "
        f"(standard error {u['se_ts']:.4f}); ‖mean g_S − ḡ‖/‖ḡ‖ = {u['rel_dist_s_exact']:.4f} (standard error "
        f"{u['se_s']:.4f}); both within 3 standard errors: {ok}",
    )


def _t3(theory: Mapping[str, Any]) -> Verdict:
    v = _theory(theory, "variance")
    rows = []
    signs = []
    for t, m in v["moments"].items():
        signs.append(m["gap"] > 0)
        rows.append(f"τ={float(t):g}: gap {m['gap']:.3g} (equal-s prediction {m['gap_equal_s']:.3g})")
    s = v["s"]
    ratio = max(s.values()) / max(min(s.values()), 1e-30)
    s_txt = ", ".join(f"{k} {x:.3g}" for k, x in s.items())
    equal = ratio < 2.0
    verdict = "PASS" if all(signs) else ("PARTIAL" if any(signs) else "FAIL")
    return Verdict(
        "T3",
        verdict,
        f"per-domain gradient second moments s_i: {s_txt} (max/min {ratio:.2f}: the equal-s assumption "
        f"{'roughly holds' if equal else 'does not hold'}); " + "; ".join(rows),
    )


def _t4(theory: Mapping[str, Any]) -> Verdict:
    f = _theory(theory, "inflation")
    ok = f["all_ge_1"] and f["all_chi2"]
    return Verdict(
        "T4",
        "PASS" if ok else "FAIL",
        f"checked on {len(f['mixtures'])} mixtures × 13 τ values: F ≥ 1: {f['all_ge_1']}, "
        f"F = 1 + χ²: {f['all_chi2']}",
    )


def _t5(theory: Mapping[str, Any]) -> Verdict:
    f = _theory(theory, "inflation")
    ok = f["all_monotone"] and f["all_limit"]
    ref = "; ".join(f"{k}: {v}" for k, v in f["reference"].items())
    return Verdict(
        "T5",
        "PASS" if ok else "FAIL",
        f"non-decreasing on every mixture: {f['all_monotone']}; limit matches mean(n)·mean(1/n): "
        f"{f['all_limit']}; {ref}",
    )


def _t6(theory: Mapping[str, Any]) -> Verdict:
    z = _theory(theory, "fig2")
    rows = z["F"]
    flat0 = all(abs(x - 1) < 1e-9 for x in rows[0])
    in_tau = all(all(b >= a - 1e-12 for a, b in pairwise(r)) for r in rows)
    in_alpha = all(
        all(rows[i + 1][j] >= rows[i][j] - 1e-12 for j in range(len(z["taus"]))) for i in range(len(rows) - 1)
    )
    ok = flat0 and in_tau and in_alpha
    last = ", ".join(f"{x:.2f}" for x in rows[-1])
    return Verdict(
        "T6",
        "PASS" if ok else "FAIL",
        f"K={z['k']}: flat at α=0: {flat0}; increasing in τ: {in_tau}; in α: {in_alpha}; "
        f"α={z['alphas'][-1]}: F(τ={z['taus']}) = {last}",
    )


def _e3(theory: Mapping[str, Any]) -> Verdict:
    v = _theory(theory, "variance")
    rows, ok = [], []
    for t, n in v["norms"].items():
        ok.append(n["s_var"] > n["ts_var"])
        rows.append(f"τ={float(t):g}: Var‖g‖ scalarization {n['s_var']:.3g} vs sampling {n['ts_var']:.3g}")
    verdict = "PASS" if all(ok) else ("PARTIAL" if any(ok) else "FAIL")
    return Verdict(
        "E3",
        verdict,
        f"batch {v['batch']} at the τ=1 checkpoint of `{_experiment_of(v)}`: " + "; ".join(rows),
    )


def _experiment_of(variance: Mapping[str, Any]) -> str:
    """The experiment whose τ=1 run the variance was measured on (from its run directory)."""
    from pathlib import Path

    return Path(variance.get("run", "?/?")).parent.name


# -- convergence experiment (Fig. 4) ------------------------------------------------------------


def _first_reach(run: Run, lang: str, target: float) -> float:
    s, v = run.series(lang)
    hit = np.flatnonzero(v <= target + 1e-12)
    return float(s[hit[0]]) if len(hit) else math.inf


def _e1(runs: Runs) -> Verdict:
    got = _need(runs, "convergence", ["tau2", "scal2", "tau3", "scal3", "tau5", "scal5"])
    langs = _langs(got["tau2"])
    sizes = _sizes(got["tau2"][0])
    _, low = _split(sizes)
    rows, faster, ratios = [], [], []
    for t in ("2", "3", "5"):
        ts, sc = got[f"tau{t}"], got[f"scal{t}"]
        parts = []
        for lang in langs:
            target = max(r.best(lang)[0] for r in (*ts, *sc))  # a loss every run of both reaches
            st = np.mean([_first_reach(r, lang, target) for r in ts])
            ss = np.mean([_first_reach(r, lang, target) for r in sc])
            faster.append(st <= ss)
            if lang in low:
                ratios.append(ss / st if st > 0 else math.inf)
            parts.append(f"{lang} {target:.3f} in {st:.0f} vs {ss:.0f} steps")
        rows.append(f"τ={t}: " + ", ".join(parts))
    grows = all(b >= a for a, b in pairwise(ratios))
    n_fast = sum(faster)
    verdict = (
        "PASS" if n_fast == len(faster) and grows else ("PARTIAL" if n_fast >= len(faster) / 2 else "FAIL")
    )
    return Verdict(
        "E1",
        verdict,
        "steps to reach a dev loss both reach (sampling vs scalarization): "
        + "; ".join(rows)
        + f". LRL speed-up S/TS by τ: {', '.join(f'{r:.2f}' for r in ratios)} (grows: {grows})",
    )


def _e2(runs: Runs) -> Verdict:
    got = _need(runs, "convergence", ["tau2", "scal2", "tau3", "scal3", "tau5", "scal5"])
    langs = _langs(got["tau2"])
    rows, ties = [], []
    for t in ("2", "3", "5"):
        parts = []
        for lang in langs:
            a = [r.best(lang)[0] for r in got[f"tau{t}"]]
            b = [r.best(lang)[0] for r in got[f"scal{t}"]]
            tie = _tie(a, b, LOSS_TOL * 2.5)
            ties.append(tie)
            parts.append(f"{lang} {_fmt(a)} vs {_fmt(b)}{' (tie)' if tie else ''}")
        rows.append(f"τ={t}: " + ", ".join(parts))
    verdict = "PASS" if all(ties) else ("PARTIAL" if any(ties) else "FAIL")
    return Verdict(
        "E2",
        verdict,
        "best dev loss, sampling vs scalarization (tie within 0.05 nats or the seed "
        "spread): " + "; ".join(rows),
    )


def _overfits(run: Run, lang: str) -> tuple[bool, float]:
    d = OverfitDetector(**OVERFIT)
    for rec in run.curve:
        if "dev" in rec:
            d.update(rec["step"], {lang: rec["dev"]["loss"][lang]})
    f = d.flagged.get(lang)
    return (f is not None, f.best_step if f else math.nan)


def _e4(runs: Runs) -> Verdict:
    got = _need(runs, "convergence", ["tau1", "tau3", "tau5"])
    sizes = _sizes(got["tau1"][0])
    high, low = _split(sizes)
    parts, ok = [], []
    for m in ("tau3", "tau5"):
        for r in got[m]:
            for lang in low:
                flagged, _ = _overfits(r, lang)
                best_step = r.best(lang)[1]
                hrl_best = max(r.best(h)[1] for h in high)
                cond = flagged and hrl_best > best_step
                ok.append(cond)
                rise = r.dev(lang) - r.best(lang)[0]
                parts.append(
                    f"{m} s{r.seed}: {lang} min at step {best_step:.0f}, then +{rise:.3f}; HRL still "
                    f"improving until step {hrl_best:.0f} ({'overfit' if cond else 'no overfit detected'})"
                )
    base = []
    for r in got["tau1"]:
        for lang in low:
            flagged, _ = _overfits(r, lang)
            best5 = min(x.best(lang)[0] for x in got["tau5"])
            under = r.best(lang)[0] > best5 + LOSS_TOL
            base.append((not flagged) and under)
            parts.append(
                f"tau1 s{r.seed}: {lang} best {r.best(lang)[0]:.3f} vs τ=5 best {best5:.3f} "
                f"({'underfit, no rise' if (not flagged and under) else 'not underfit or rises'})"
            )
    alls = ok + base
    verdict = "PASS" if all(alls) else ("PARTIAL" if any(alls) else "FAIL")
    return Verdict("E4", verdict, "; ".join(parts))


# -- tables ---------------------------------------------------------------------------------------


def _metric(exp: str) -> tuple[str, bool, float]:
    """(metric, higher is better, tie tolerance) for an experiment's headline comparison."""
    return ("chrf", True, CHRF_TOL) if exp == "mt" else ("loss", False, LOSS_TOL)


def _values(rs: Sequence[Run], lang: str, exp: str) -> list[float]:
    metric, _, _ = _metric(exp)
    return [r.test(lang, metric) if exp == "mt" else r.dev(lang, metric) for r in rs]


def _better_or_tie(a: Sequence[float], b: Sequence[float], higher: bool, tol: float) -> bool:
    if _tie(a, b, tol):
        return True
    return (np.mean(a) > np.mean(b)) == higher


def _e5_one(runs: Runs, exp: str) -> tuple[list[bool], list[str]]:
    statics = ["tau1", "tau5", "tau100"]
    got = _need(runs, exp, ["cooldown", *statics])
    metric, higher, tol = _metric(exp)
    sizes = _sizes(got["tau1"][0])
    high, low = _split(sizes)
    cd = got["cooldown"]
    oks, parts = [], []
    sign = 1 if higher else -1

    def group(rs: Sequence[Run], langs: Sequence[str]) -> list[float]:
        return [float(np.mean([_values([r], x, exp)[0] for x in langs])) for r in rs]

    # HRLs against τ=1; LRLs and the all-language mean against the best static τ for that group
    for label, langs, ref in (
        ("HRL", high, "tau1"),
        ("LRL", low, None),
        ("all-language mean", list(sizes), None),
    ):
        ref = ref or max(statics, key=lambda m, langs=langs: sign * np.mean(group(got[m], langs)))
        a, b = group(cd, langs), group(got[ref], langs)
        ok = _better_or_tie(a, b, higher, tol)
        oks.append(ok)
        parts.append(
            f"{exp}: {label} {metric} Cooldown {_fmt(a)} vs {ref} {_fmt(b)} ({'ok' if ok else 'worse'})"
        )
    return oks, parts


def _e5(runs: Runs) -> Verdict:
    oks, parts = [], []
    ran = []
    for exp in ("mt", "lm"):
        try:
            o, p = _e5_one(runs, exp)
        except _Missing:
            continue
        ran.append(exp)
        oks += o
        parts += p
    if not ran:
        raise _Missing("neither the MT nor the LM table was run")
    verdict = "PASS" if all(oks) else ("PARTIAL" if any(oks) else "FAIL")
    return Verdict("E5", verdict, "; ".join(parts))


def _lrl_hrl(rs: Sequence[Run], high: Sequence[str], low: Sequence[str]) -> tuple[list[float], list[float]]:
    return (
        [float(np.mean([r.dev(x) for x in low])) for r in rs],
        [float(np.mean([r.dev(x) for x in high])) for r in rs],
    )


def _e6(runs: Runs) -> Verdict:
    got = _need(runs, "lm", ["cooldown", "increasing"])
    high, low = _split(_sizes(got["cooldown"][0]))
    l_cd, h_cd = _lrl_hrl(got["cooldown"], high, low)
    l_in, h_in = _lrl_hrl(got["increasing"], high, low)
    lrl_ok = np.mean(l_cd) < np.mean(l_in) and not _tie(l_cd, l_in, LOSS_TOL)
    hrl_ok = _tie(h_cd, h_in, LOSS_TOL * 2.5) or np.mean(h_cd) < np.mean(h_in)
    verdict = "PASS" if lrl_ok and hrl_ok else ("PARTIAL" if lrl_ok or hrl_ok else "FAIL")
    return Verdict(
        "E6",
        verdict,
        f"LRL mean dev loss 5→1 {_fmt(l_cd)} vs 1→5 {_fmt(l_in)}; HRL {_fmt(h_cd)} vs {_fmt(h_in)}",
    )


def _e7(runs: Runs) -> Verdict:
    got = _need(runs, "lm", ["cooldown", "dense1", "dense2"])
    langs = _langs(got["cooldown"])

    def mean_all(rs: Sequence[Run]) -> list[float]:
        return [float(np.mean([r.dev(x) for x in langs])) for r in rs]

    cd = mean_all(got["cooldown"])
    wins = []
    parts = [f"mean dev loss over languages: Cooldown {_fmt(cd)}"]
    for m in ("dense1", "dense2"):
        d = mean_all(got[m])
        win = np.mean(cd) < np.mean(d) and not _tie(cd, d, LOSS_TOL)
        wins.append(win)
        parts.append(f"{m} {_fmt(d)}{'' if win else ' (Cooldown not better)'}")
    verdict = "PASS" if all(wins) else ("PARTIAL" if any(wins) else "FAIL")
    return Verdict("E7", verdict, ", ".join(parts))


def _e8(runs: Runs) -> Verdict:
    others = ["tau1", "tau5", "tau100", "unimax", "order_matters"]
    got = _need(runs, "lm", ["cooldown", *others])
    _, low = _split(_sizes(got["tau1"][0]))
    parts, oks = [], []
    for lang in low:
        cd = [r.dev(lang) for r in got["cooldown"]]
        beaten = []
        for m in others:
            o = [r.dev(lang) for r in got[m]]
            ok = np.mean(cd) <= np.mean(o) or _tie(cd, o, LOSS_TOL)
            oks.append(ok)
            if not ok:
                beaten.append(f"{m} {_fmt(o)}")
        parts.append(
            f"{lang}: Cooldown {_fmt(cd)}"
            + (f", better: {', '.join(beaten)}" if beaten else ", best or tied")
        )
    dr = runs.get("lm", "doremi")
    if dr:
        cd = [float(np.mean([r.dev(x) for x in low])) for r in got["cooldown"]]
        d = [float(np.mean([r.dev(x) for x in low])) for r in dr]
        on_par = _tie(cd, d, LOSS_TOL * 2.5)
        parts.append(f"LRL mean vs DoReMi: {_fmt(cd)} vs {_fmt(d)} ({'on par' if on_par else 'not on par'})")
        oks.append(on_par or np.mean(cd) < np.mean(d))
    else:
        parts.append("DoReMi not run")
    verdict = "PASS" if all(oks) else ("PARTIAL" if sum(oks) >= len(oks) / 2 else "FAIL")
    return Verdict("E8", verdict, "; ".join(parts))
