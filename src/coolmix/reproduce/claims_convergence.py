"""Claims of the convergence experiment (Fig. 4: E1, E2, E4) and the gradient-variance claim E3.

Same rule as every claim (`stats.decide` on paired per-seed intervals, `stats.combine` over the
primary comparisons); the claim texts and primary comparisons are in `claims.REGISTRY`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.diagnostics.overfit import OverfitDetector
from coolmix.reproduce.checks import variance_entries
from coolmix.reproduce.compare import (
    MARGINS,
    Comparison,
    Missing,
    compare,
    compare_methods,
    group_mean,
    groups,
    label,
    need,
    per_seed,
)
from coolmix.reproduce.results import MissingSplit, Run, Runs
from coolmix.reproduce.stats import Interval, decide

__all__ = ["OVERFIT", "NotReached", "e1", "e2", "e3", "e4", "plateau", "tail_fall"]

OVERFIT = {"margin": 0.005, "patience": 2, "min_evals": 3, "smoothing": 0.3}  # same as adaptive Cooldown

Parts = tuple[list[Comparison], list[Comparison], list[str]]


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


def _pairs(runs: Runs) -> tuple[tuple[str, ...], dict[str, list[Run]]]:
    """The τ values whose sampling/scalarization pair ran: τ=2 and τ=5 always (the claim is about
    the gap growing with τ), τ=3 where the preset has it (full-lm; quick leaves it out for time)."""
    got = need(runs, "convergence", ["tau2", "scal2", "tau5", "scal5"])
    taus = ["2", "5"]
    if runs.get("convergence", "tau3") and runs.get("convergence", "scal3"):
        got.update(need(runs, "convergence", ["tau3", "scal3"]))
        taus.insert(1, "3")
    return tuple(taus), got


def e1(runs: Runs) -> Parts:
    taus, got = _pairs(runs)
    g = groups(got["tau2"][0])
    primary, secondary, ratios = [], [], {}
    for t in taus:
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
    if runs.get("convergence", "tau5_clip") and runs.get("convergence", "scal5_clip"):
        secondary += _clipped_pair(runs, g["LRL"])
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


def _clipped_pair(runs: Runs, low: Sequence[str]) -> list[Comparison]:
    """E1's LRL comparison at τ=5 with gradient clipping at 1.0 on (secondary: clipping's effect)."""
    ts, sc = runs.get("convergence", "tau5_clip"), runs.get("convergence", "scal5_clip")
    out = []
    for lang in low:
        target = max(r.best(lang)[0] for r in (*ts, *sc))
        out.append(
            compare(
                f"τ=5 clipped at 1.0, {lang} steps to dev loss {target:.3f}: sampling vs scalarization",
                per_seed(ts, lambda r, x=lang, y=target: _first_reach(r, x, y)),
                per_seed(sc, lambda r, x=lang, y=target: _first_reach(r, x, y)),
                "better",
                higher=False,
                unit="steps",
                names=("tau5_clip", "scal5_clip"),
            )
        )
    return out


PLATEAU_TAIL = 0.25
"""The plateau test looks at the last quarter of a run's steps."""
PLATEAU_FRACTION = 0.1
"""A run has plateaued when its LRL dev loss fell by at most this fraction of the loss margin
(relative to its final value) over `PLATEAU_TAIL` of the steps: 0.1 × 3.38% ≈ 0.34%."""


class NotReached(Exception):
    """A claim that needs "enough steps" whose runs did not plateau; carries the parts and the budget."""

    def __init__(self, parts: Parts, why: str) -> None:
        super().__init__(why)
        self.parts = parts
        self.why = why


def tail_fall(run: Run, lang: str, tail: float = PLATEAU_TAIL) -> float:
    """Relative fall (%) of ``lang``'s dev loss over the last ``tail`` of the run's steps:
    100·(v(t_end·(1−tail)) − v(t_end)) / v(t_end); > 0 means still falling."""
    s, v = run.series(lang)
    if len(v) < 2:
        raise MissingSplit(f"{run.dir}: no dev curve for {lang}")
    i = min(int(np.searchsorted(s, s[-1] * (1 - tail))), len(v) - 2)
    return float(100.0 * (v[i] - v[-1]) / abs(v[-1]))


def _budget(ts: Sequence[Run], sc: Sequence[Run], lang: str) -> str:
    """The steps scalarization needs to see ``lang`` as many epochs as sampling had at its best dev
    loss (epochs grow linearly in steps at a constant τ)."""
    try:
        need_ep = float(np.mean([r.final["epochs"][lang] * r.best(lang)[1] / r.final["step"] for r in ts]))
        have_ep = float(np.mean([r.final["epochs"][lang] for r in sc]))
        steps = float(sc[0].final["step"])
    except (KeyError, TypeError, ZeroDivisionError):
        return "The runs record no epochs, so the budget it would need is not estimated"
    if not have_ep > 0:
        return f"Scalarization never saw {lang}, so no budget can be estimated"
    return (
        f"Scalarization saw {lang} for {have_ep:.2f} epochs in {steps:.0f} steps; sampling's best {lang} "
        f"dev loss came after {need_ep:.1f} epochs, so the pair needs ≈ {steps * need_ep / have_ep:,.0f} "
        f"steps ({need_ep / have_ep:.1f}× this run) before E2 can be decided"
    )


def plateau(
    got: Mapping[str, Sequence[Run]], taus: Sequence[str], low: Sequence[str]
) -> tuple[bool, list[str]]:
    """(every pair plateaued, lines): for each τ and LRL, the runs whose dev loss still falls by more
    than `PLATEAU_FRACTION` of the margin over the last quarter, and the steps scalarization would
    need to see the LRL as many epochs as sampling had at its best dev loss."""
    limit = PLATEAU_FRACTION * MARGINS["loss"].percent
    ok, lines = True, []
    for t in taus:
        for lang in low:
            falling = []
            for m in (f"tau{t}", f"scal{t}"):
                falls = [tail_fall(r, lang) for r in got[m]]
                n = sum(f > limit for f in falls)
                if n:
                    falling.append(f"{label(m)} in {n}/{len(falls)} seeds (max {max(falls):.2f}%)")
            if not falling:
                continue
            ok = False
            lines.append(
                f"τ={t} {lang}: dev loss still falls by > {limit:.2f}% over the last quarter of the run in "
                + "; ".join(falling)
                + ". "
                + _budget(got[f"tau{t}"], got[f"scal{t}"], lang)
            )
    return ok, lines


def _any_pairs(runs: Runs) -> tuple[tuple[str, ...], dict[str, list[Run]]]:
    """E2's τ pairs: every τ ∈ {2, 3, 5} whose sampling/scalarization pair ran (at least one; a long
    convergence part may run τ=2 only)."""
    ran = ("2", "3", "5")
    taus = tuple(t for t in ran if runs.get("convergence", f"tau{t}") and runs.get("convergence", f"scal{t}"))
    if not taus:
        raise Missing("experiment 'convergence' has no sampling/scalarization pair (τ = 2, 3 or 5)")
    return taus, need(runs, "convergence", [m for t in taus for m in (f"tau{t}", f"scal{t}")])


def e2(runs: Runs) -> Parts:
    """E2, decided only when every pair's LRL dev loss plateaued (`plateau`); else `NotReached`."""
    taus, got = _any_pairs(runs)
    g = groups(got[f"tau{taus[0]}"][0])
    primary, secondary = [], []
    for t in taus:
        for lang in [*g["LRL"], *g["HRL"]]:
            c = compare_methods(
                f"τ={t} {lang} final test loss", got, f"tau{t}", f"scal{t}", group_mean([lang]), "same", "lm"
            )
            (primary if lang in g["LRL"] else secondary).append(c)
        for lang in g["LRL"]:
            best = compare_methods(
                f"τ={t} {lang} best dev loss",
                got,
                f"tau{t}",
                f"scal{t}",
                lambda r, x=lang: r.best(x)[0],
                "same",
                "lm",
            )
            secondary.append(best)
    ok, lines = plateau(got, taus, g["LRL"])
    if not ok:
        raise NotReached((primary, secondary, lines), "; ".join(lines))
    limit = PLATEAU_FRACTION * MARGINS["loss"].percent
    return primary, secondary, [
        f"plateau test passed: every pair's LRL dev loss fell by ≤ {limit:.2f}% over its last quarter"
        " (a rise counts: the run is past its best)",
        *_tails(got, taus, g["LRL"]),
    ]


def _tails(got: Mapping[str, Sequence[Run]], taus: Sequence[str], low: Sequence[str]) -> list[str]:
    """Per τ and LRL: each method's dev-loss change over the last quarter, so a plateau that is a rise
    (overfitting) reads as one."""
    lines = []
    for t in taus:
        for lang in low:
            parts = []
            for m in (f"tau{t}", f"scal{t}"):
                rises = [-tail_fall(r, lang) for r in got[m]]
                parts.append(
                    f"{label(m)} {', '.join(f'{x:+.2f}%' for x in rises)}"
                    f" ({sum(x > 0 for x in rises)}/{len(rises)} seeds rising)"
                )
            lines.append(f"τ={t} {lang} dev loss change over the last quarter, per seed: " + "; ".join(parts))
    return lines


def e3(theory: Mapping[str, Any]) -> Parts:
    entries = variance_entries(theory)
    if not entries:
        raise Missing("theory measurement 'variance' was not run")
    primary = []
    for where, v in entries:
        if any(k not in n for n in v["norms"].values() for k in ("s_var", "ts_var")):
            raise Missing(f"the variance measurement at {where} lacks s_var/ts_var")
        for t, n in v["norms"].items():
            iv = _log_ratio_interval(n, int(v.get("bootstrap", 0)))
            primary.append(
                Comparison(
                    f"{where}, τ={float(t):g}: Var‖g‖ scalarization {n['s_var']:.3g} vs sampling "
                    f"{n['ts_var']:.3g}",
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
        [
            "E3's intervals resample the measured training examples of each language (older results: the "
            "simulated mini-batches) at each checkpoint; they are not over seeds"
        ],
    )


def _log_ratio_interval(norms: Mapping[str, Any], n_boot: int, draws: int = 2000) -> Interval:
    """log(Var S / Var TS) and its 95% interval: the theory's bootstrap over the measured examples
    (``ratio_ci``) when stored, else a percentile bootstrap over the stored mini-batch norm
    samples (seeded, so the report is deterministic), else a point value."""
    point = math.log(max(norms["s_var"], 1e-300) / max(norms["ts_var"], 1e-300))
    ci = norms.get("ratio_ci")
    if ci and min(ci) > 0:
        return Interval(point, math.log(ci[0]), math.log(ci[1]), max(n_boot, 2), math.nan)
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


def e4(runs: Runs) -> Parts:
    got = need(runs, "convergence", ["tau1", "tau5"])
    watched = ("tau5", "tau3") if runs.get("convergence", "tau3") else ("tau5",)  # τ=3: secondary, full only
    got.update({m: runs.get("convergence", m) for m in watched})
    g = groups(got["tau1"][0])
    primary, secondary, notes = [], [], []
    zeros = {r.seed: 0.0 for r in got["tau1"]}
    for lang in g["LRL"]:
        for m in watched:
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
            compare_methods(
                f"{lang} best dev loss", got, "tau5", "tau1", lambda r, x=lang: r.best(x)[0], "better", "lm"
            )
        )
        notes.append(
            f"overfitting detector (adaptive Cooldown's settings) flags {lang} in "
            + ", ".join(f"{_flags(got[m], lang)}/{len(got[m])} {label(m)}" for m in ("tau1", *watched[::-1]))
            + " runs"
        )
    return primary, secondary, notes
