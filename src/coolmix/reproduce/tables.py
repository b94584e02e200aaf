"""Markdown tables for the report: claims with their paired intervals, margins, per-method metrics
(mean ± std over seeds, best per column in bold), exposure, clipping, DoReMi weights and cost."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.distributions import temperature_probs
from coolmix.reproduce.compare import MARGINS, Comparison, Verdict, label
from coolmix.reproduce.results import MissingSplit, Run, Runs, buckets, mean_std

__all__ = [
    "checks_table",
    "claims_table",
    "clip_table",
    "comparisons_table",
    "cost_table",
    "direction_table",
    "doremi_table",
    "epochs_table",
    "fig2_markdown",
    "margins_table",
    "markdown",
    "method_table",
]


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def _cell(values: Sequence[float], digits: int) -> str:
    m, s = mean_std(values)
    if math.isnan(m):
        return "–"
    return f"{m:.{digits}f}" if len(values) < 2 else f"{m:.{digits}f} ± {s:.{digits}f}"


def _values(rs: Sequence[Run], fn: Callable[[Run], float]) -> list[float]:
    try:
        return [float(fn(r)) for r in rs]
    except MissingSplit:
        return []


def method_table(
    runs: Runs,
    experiment: str,
    methods: Sequence[str],
    value: Callable[[Run, str], float],
    higher_is_better: bool,
    digits: int = 3,
) -> str:
    """Rows = methods, columns = languages (with training sizes) + HRL/LRL/all means."""
    present = [m for m in methods if runs.get(experiment, m)]
    if not present:
        return "_not run_"
    sizes = runs.get(experiment, present[0])[0].sizes()
    langs = list(sizes)
    b = buckets(sizes)
    groups = {
        "HRL": [x for x in langs if b[x] == "high"],
        "LRL": [x for x in langs if b[x] == "low"],
        "all": langs,
    }
    cols: dict[str, dict[str, list[float]]] = {}
    for m in present:
        rs = runs.get(experiment, m)
        row = {x: _values(rs, lambda r, x=x: value(r, x)) for x in langs}
        for g, members in groups.items():
            row[g] = (
                _values(rs, lambda r, ms=members: float(np.mean([value(r, x) for x in ms])))
                if members
                else []
            )
        cols[m] = row
    keys = [*langs, *groups]
    best = {}
    for k in keys:
        means = {m: mean_std(cols[m][k])[0] for m in present if cols[m][k]}
        if means:
            best[k] = (max if higher_is_better else min)(means, key=lambda m, d=means: d[m])
    header = ["method", *[f"{x} ({sizes[x]:,.0f})" for x in langs], *[f"{g} mean" for g in groups]]
    rows = []
    for m in present:
        cells = []
        for k in keys:
            c = _cell(cols[m][k], digits) if cols[m][k] else "–"
            cells.append(f"**{c}**" if best.get(k) == m else c)
        rows.append([f"{label(m)} ({len(runs.get(experiment, m))})", *cells])
    return markdown(header, rows)


def epochs_table(runs: Runs, experiment: str, methods: Sequence[str]) -> str:
    """Passes over each language's training set by the end of training (mean over seeds)."""
    present = [m for m in methods if runs.get(experiment, m)]
    if not present:
        return "_not run_"
    sizes = runs.get(experiment, present[0])[0].sizes()
    rows = []
    for m in present:
        rs = runs.get(experiment, m)
        rows.append([label(m), *[f"{np.mean([r.final['epochs'][x] for r in rs]):.3g}" for x in sizes]])
    return markdown(["method", *[f"{x} ({sizes[x]:,.0f})" for x in sizes]], rows)


def clip_fraction(run: Run) -> float | None:
    """Clipped optimizer steps / logged steps over the run (None when the run did not record it)."""
    recs = [rec for rec in run.curve if "clipped" in rec]
    steps = sum(int(rec.get("n_steps", 1)) for rec in recs)
    return sum(float(rec["clipped"]) for rec in recs) / steps if steps else None


def clip_table(runs: Runs, experiment: str, methods: Sequence[str]) -> str:
    """Fraction of clipped optimizer steps and mean pre-clip gradient norm per method ("" if unrecorded)."""
    rows = []
    for m in methods:
        rs = runs.get(experiment, m)
        fr = [f for f in (clip_fraction(r) for r in rs) if f is not None]
        if not fr:
            continue
        gn = [
            float(rec["grad_norm"])
            for r in rs
            for rec in r.curve
            if math.isfinite(rec.get("grad_norm", math.nan))
        ]
        rows.append([label(m), f"{np.mean(fr):.1%}", f"{np.mean(gn):.3g}" if gn else "–", len(rs)])
    if not rows:
        return ""
    return markdown(["method", "clipped steps", "mean ‖g‖ before clipping", "seeds"], rows)


def doremi_weights(runs: Runs, experiment: str) -> list[dict[str, float]]:
    """DoReMi's learned (time-averaged) domain weights per seed: ``doremi_weights`` in the main
    run's summary, else in the proxy's, else the proxy's ``doremi.average``."""
    out = []
    for main, proxy in _by_seed(runs.get(experiment, "doremi"), runs.get(experiment, "doremi", "proxy")):
        for rec in (main, proxy):
            if rec is not None and "doremi_weights" in rec.final:
                out.append(dict(rec.final["doremi_weights"]))
                break
        else:
            if proxy is not None and "average" in proxy.final.get("doremi", {}):
                out.append(dict(proxy.final["doremi"]["average"]))
    return out


def _by_seed(main: Sequence[Run], proxy: Sequence[Run]) -> list[tuple[Run | None, Run | None]]:
    a, b = {r.seed: r for r in main}, {r.seed: r for r in proxy}
    return [(a.get(s), b.get(s)) for s in sorted(set(a) | set(b))]


def doremi_table(runs: Runs, experiment: str) -> str:
    """DoReMi's learned weights next to the proportional (τ=1) and τ=5 shares ("" if absent)."""
    ws = doremi_weights(runs, experiment)
    rs = runs.get(experiment, "doremi") or runs.get(experiment, "doremi", "proxy")
    if not ws or not rs:
        return ""
    sizes = {k: float(v) for k, v in rs[0].sizes().items()}
    p1, p5 = temperature_probs(sizes, tau=1.0), temperature_probs(sizes, tau=5.0)
    rows = [[x, _cell([w[x] for w in ws], 3), f"{p1[x]:.3f}", f"{p5[x]:.3f}"] for x in sizes]
    return markdown(["language", f"DoReMi weight ({len(ws)} seeds)", "τ=1 share", "τ=5 share"], rows)


def cost_table(runs: Runs, experiment: str, methods: Sequence[str]) -> str:
    """Training compute per method: optimizer steps and tokens, the runs it needs included
    (`methods.compute_parts`: DoReMi's reference and proxy; a selection's whole grid, not its copy)."""
    from coolmix.reproduce.methods import METHODS, compute_parts

    rows = []
    for m in methods:
        rs = runs.get(experiment, m)
        if not rs:
            continue
        own = m not in METHODS or METHODS[m].kind == "train"
        steps = [r.final["step"] if own else 0 for r in rs]
        tokens = [sum(r.final["tokens"].values()) if own else 0 for r in rs]
        secs = [r.final["time"] if own else 0.0 for r in rs]
        extra = ""
        parts = compute_parts(m) if m in METHODS else ()
        if parts:
            for name, role in parts:
                group = {r.seed: r for r in runs.get(experiment, name, role=role)}
                extra_runs = [group.get(r.seed) for r in rs]
                steps = [s + (g.final["step"] if g else 0) for s, g in zip(steps, extra_runs, strict=True)]
                tokens = [
                    t + (sum(g.final["tokens"].values()) if g else 0)
                    for t, g in zip(tokens, extra_runs, strict=True)
                ]
                secs = [s + (g.final["time"] if g else 0) for s, g in zip(secs, extra_runs, strict=True)]
            extra = f" ({METHODS[m].cost})" if METHODS[m].cost else ""
        rows.append(
            [
                label(m) + extra,
                f"{np.mean(steps):,.0f}",
                f"{np.mean(tokens) / 1e6:.2f} M",
                f"{np.mean(secs):.0f} s",
            ]
        )
    return markdown(["method", "optimizer steps", "training tokens", "train wall time"], rows)


def margins_table() -> str:
    """The one table of margins (and the superiority rule), as printed in the report."""
    rows = [[m.metric, f"{m.percent:g}% of the reference method's value", m.source] for m in MARGINS.values()]
    rows.append(
        ["better (any metric)", "0: the interval must exclude 0", "the paper gives no margin for a win"]
    )
    return markdown(["comparison", "margin", "source"], rows)


def claims_table(verdicts: Sequence[Verdict]) -> str:
    """One row per empirical claim: statement, its primary comparison, verdict, primary intervals."""
    return markdown(
        ["claim", "statement (paper)", "primary comparison", "verdict", "primary intervals (ours)"],
        [[v.claim, v.text, v.rule, f"**{v.verdict}**", _escape(v.evidence)] for v in verdicts],
    )


def checks_table(verdicts: Sequence[Verdict]) -> str:
    return markdown(
        ["check", "statement (paper)", "result", "evidence (ours)"],
        [[v.claim, v.text, f"**{v.verdict}**", _escape(v.evidence)] for v in verdicts],
    )


def comparisons_table(v: Verdict) -> str:
    """Every comparison of a claim: primary ones vote, secondary ones are shown only."""
    rows = [_comparison_row("primary", c) for c in v.primary]
    rows += [_comparison_row("secondary", c) for c in v.secondary]
    return markdown(["role", "comparison (A vs B)", "Δ = A − B, 95% interval", "claim", "verdict"], rows)


def _comparison_row(role: str, c: Comparison) -> list[str]:
    unit = "%" if c.relative else c.unit
    return [role, _escape(c.label), c.interval.text(3, unit), c.claim_text(), c.outcome]


def direction_table(v: Verdict) -> str:
    """E9: which direction wins each comparison (Cooldown = scarce data early)."""
    rows = []
    for c in (*v.primary, *v.secondary):
        if c.kind != "better":
            continue
        winner = {"PASS": f"{label(c.a)}", "FAIL": f"{label(c.b)}"}.get(c.outcome, "not resolved")
        rows.append([_escape(c.label), c.interval.text(3, c.unit), winner])
    return markdown(["comparison (A vs B)", "Δ = A − B, 95% interval", "wins"], rows)


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def fig2_markdown(fig2: Mapping[str, Any]) -> str:
    header = ["α \\ τ", *[f"{t:g}" for t in fig2["taus"]]]
    rows = [[f"{a:g}", *[f"{x:.2f}" for x in row]] for a, row in zip(fig2["alphas"], fig2["F"], strict=True)]
    return markdown(header, rows)
