"""Markdown tables for the report: mean ± std over seeds, best per column in bold."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.reproduce.claims import Verdict, buckets
from coolmix.reproduce.methods import METHODS
from coolmix.reproduce.results import Run, Runs, mean_std

__all__ = ["claims_table", "cost_table", "markdown", "method_table"]


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
    first = runs.get(experiment, present[0])[0]
    sizes = first.sizes()
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
        row = {x: [value(r, x) for r in rs] for x in langs}
        for g, members in groups.items():
            row[g] = [float(np.mean([value(r, x) for x in members])) for r in rs] if members else []
        cols[m] = row
    keys = [*langs, *groups]
    best = {}
    for k in keys:
        means = {m: mean_std(cols[m][k])[0] for m in present if cols[m][k]}
        if means:
            best[k] = (max if higher_is_better else min)(means, key=means.get)
    header = ["method", *[f"{x} ({sizes[x]:,})" for x in langs], *[f"{g} mean" for g in groups]]
    rows = []
    for m in present:
        cells = []
        for k in keys:
            c = _cell(cols[m][k], digits) if cols[m][k] else "–"
            cells.append(f"**{c}**" if best.get(k) == m else c)
        rows.append([METHODS[m].label if m in METHODS else m, *cells])
    return markdown(header, rows)


def cost_table(runs: Runs, experiment: str, methods: Sequence[str]) -> str:
    """Training compute per method: optimizer steps and tokens, DoReMi's reference and proxy included."""
    rows = []
    for m in methods:
        rs = runs.get(experiment, m)
        if not rs:
            continue
        steps = [r.final["step"] for r in rs]
        tokens = [sum(r.final["tokens"].values()) for r in rs]
        secs = [r.final["time"] for r in rs]
        extra = ""
        if m == "doremi":
            proxies = runs.get(experiment, "doremi", role="proxy")
            refs = runs.get(experiment, "tau1")
            for group in (proxies, refs):
                steps = [s + g.final["step"] for s, g in zip(steps, group)]
                tokens = [t + sum(g.final["tokens"].values()) for t, g in zip(tokens, group)]
                secs = [s + g.final["time"] for s, g in zip(secs, group)]
            extra = " (main + τ=1 reference + proxy)"
        rows.append(
            [
                METHODS[m].label + extra,
                f"{np.mean(steps):,.0f}",
                f"{np.mean(tokens) / 1e6:.2f} M",
                f"{np.mean(secs):.0f} s",
            ]
        )
    return markdown(["method", "optimizer steps", "training tokens", "train wall time"], rows)


def claims_table(verdicts: Sequence[Verdict]) -> str:
    return markdown(
        ["claim", "statement (paper)", "verdict", "evidence (ours)"],
        [[v.claim, v.text, f"**{v.verdict}**", v.evidence] for v in verdicts],
    )


def fig2_markdown(fig2: Mapping[str, Any]) -> str:
    header = ["α \\ τ", *[f"{t:g}" for t in fig2["taus"]]]
    rows = [[f"{a:g}", *[f"{x:.2f}" for x in row]] for a, row in zip(fig2["alphas"], fig2["F"])]
    return markdown(header, rows)
