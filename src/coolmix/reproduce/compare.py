"""Comparisons between methods, the margins they are judged against, and the verdict record.

A `Comparison` is one paired interval with its verdict under `stats.decide`; a claim's
verdict is `stats.combine` over its primary comparisons (secondary ones are shown, never vote).
`MARGINS` is the one table of margins, printed in the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from coolmix.reproduce.results import MissingSplit, Run, Runs, hrl_lrl
from coolmix.reproduce.stats import Interval, Kind, decide, paired, paired_interval

__all__ = [
    "MARGINS",
    "MT_GATE_CHRF",
    "MT_STATICS",
    "STATICS",
    "Comparison",
    "Margin",
    "Missing",
    "Verdict",
    "best_method",
    "compare",
    "compare_methods",
    "group_mean",
    "groups",
    "label",
    "metric_of",
    "need",
    "per_seed",
]

STATICS = ("tau1", "tau5", "tau100")
"""The static-τ candidates for "the best static τ" (LM)."""
MT_STATICS = ("tau1", "tau5")
"""MT's static candidates: the full-mt budget runs only τ=1 and τ=5 (docs/results/RUNS.md)."""

MT_GATE_CHRF = 20.0
"""A τ=1 MT run must reach this chrF on its largest language before MT counts as evidence."""


@dataclass(frozen=True)
class Margin:
    """A non-inferiority / equivalence margin in percent of the reference method's metric."""

    metric: str
    percent: float
    source: str


def _rounding_bound(a: float, b: float, half_unit: float) -> float:
    """Largest |a − b| / b (in %) consistent with two values printed rounded to ±``half_unit``."""
    return 100.0 * (abs(a - b) + 2 * half_unit) / (min(a, b) - half_unit)


MARGINS: dict[str, Margin] = {
    "loss": Margin(
        "loss",
        round(_rounding_bound(2.75, 2.67, 0.005), 2),
        "Table 4: Cooldown keeps EN at 2.75 vs τ=1's 2.67 nats (+0.08, +3.0%); printed to 0.01, the "
        "table allows up to +0.09 nats: (0.08 + 0.01) / 2.665",
    ),
    "chrf": Margin(
        "chrf",
        round(_rounding_bound(28.3, 28.1, 0.05), 2),
        "Table 3: Cooldown's HRL BLEU is 28.1 vs τ=1's 28.3 (−0.2, −0.7%); printed to 0.1, the table "
        "allows up to −0.3 BLEU: (0.2 + 0.1) / 28.05; applied to chrF, our MT metric (same 0–100 scale)",
    ),
}
"""Margins of "no worse than" and "about the same" comparisons; "better" comparisons need the
interval to exclude 0 (no margin: the paper gives none for a win)."""


class Missing(Exception):
    """The experiment or split behind a claim is not in this output folder."""


@dataclass(frozen=True)
class Comparison:
    """Per-seed paired difference Δ = A − B of one metric, its 95% interval and verdict.

    ``relative``: Δ is 100·(A − B)/|B| in percent (the margin's unit); else in the metric's unit.
    ``higher`` says which sign of Δ favours A (the claim's side for ``better``/``no_worse``).
    """

    label: str
    a: str
    b: str
    kind: Kind
    higher: bool
    relative: bool
    unit: str
    margin: float
    interval: Interval
    outcome: str
    seeds: tuple[int, ...]

    def claim_text(self) -> str:
        side = ">" if self.higher else "<"
        if self.kind == "better":
            return f"Δ {side} {self.margin:g}"
        if self.kind == "no_worse":
            return f"Δ {side} {'−' if self.higher else '+'}{self.margin:g}{self.unit_short}"
        return f"|Δ| < {self.margin:g}{self.unit_short}"

    @property
    def unit_short(self) -> str:
        return "%" if self.relative else ""

    def text(self) -> str:
        unit = "%" if self.relative else self.unit
        return f"{self.label}: Δ = {self.interval.text(3, unit)}, claim {self.claim_text()}: {self.outcome}"

    def to_json(self) -> dict[str, Any]:
        iv = self.interval
        return {
            "label": self.label,
            "a": self.a,
            "b": self.b,
            "kind": self.kind,
            "relative": self.relative,
            "unit": self.unit,
            "margin": self.margin,
            "mean": iv.mean,
            "lo": iv.lo,
            "hi": iv.hi,
            "n": iv.n,
            "seeds": list(self.seeds),
            "verdict": self.outcome,
        }


def compare(
    label: str,
    a: Mapping[int, float],
    b: Mapping[int, float],
    kind: Kind,
    *,
    higher: bool,
    metric: str = "loss",
    relative: bool | None = None,
    unit: str = "",
    names: tuple[str, str] = ("", ""),
) -> Comparison:
    """Pair ``a`` and ``b`` (seed → value) by seed and judge Δ = A − B with `decide`.

    ``better`` comparisons are absolute with margin 0; ``no_worse``/``same`` are relative to B
    with the margin `MARGINS[metric]`.
    """
    rel = kind != "better" if relative is None else relative
    seeds, diffs = paired(a, b)
    if not seeds:
        raise Missing(f"{label}: no seed in common")
    if rel and any(b[s] == 0 for s in seeds):  # no relative difference to a 0 reference
        label, diffs = f"{label} (B is 0: no relative difference)", [math.nan] * len(seeds)
    elif rel:
        diffs = [100.0 * d / abs(b[s]) for s, d in zip(seeds, diffs, strict=True)]
    iv = paired_interval(diffs)
    margin = 0.0 if kind == "better" else MARGINS[metric].percent
    oriented = iv if higher else Interval(-iv.mean, -iv.hi, -iv.lo, iv.n, iv.sd)
    return Comparison(
        label,
        names[0],
        names[1],
        kind,
        higher,
        rel,
        unit,
        margin,
        iv,
        decide(oriented, kind, margin),
        tuple(seeds),
    )


@dataclass(frozen=True)
class Verdict:
    """A claim's (or check's) verdict, the numbers behind it, and its comparisons.

    ``verdict``: PASS | FAIL | INCONCLUSIVE | NOT RUN (claims) or PASS | FAIL | NOT RUN (checks).
    """

    claim: str
    verdict: str
    evidence: str
    text: str = ""
    primary: tuple[Comparison, ...] = ()
    secondary: tuple[Comparison, ...] = ()
    rule: str = ""
    kind: str = "claim"  # "claim" (E1–E8) | "beyond" (E9) | "check" (T1–T6)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "kind": self.kind,
            "verdict": self.verdict,
            "statement": self.text,
            "primary_rule": self.rule,
            "evidence": self.evidence,
            "notes": list(self.notes),
            "primary": [c.to_json() for c in self.primary],
            "secondary": [c.to_json() for c in self.secondary],
        }


def need(runs: Runs, exp: str, methods: Sequence[str]) -> dict[str, list[Run]]:
    """The main runs of ``methods`` in ``exp``; `Missing` names those absent."""
    got = {m: runs.get(exp, m) for m in methods}
    missing = [m for m, r in got.items() if not r]
    if missing:
        raise Missing(f"experiment '{exp}' lacks runs {missing} (not in this preset or not finished)")
    return got


def per_seed(rs: Sequence[Run], fn: Any) -> dict[int, float]:
    """seed → fn(run); a missing split becomes `Missing` (the claim is NOT RUN, with the reason)."""
    try:
        out = {r.seed: float(fn(r)) for r in rs}
    except MissingSplit as e:
        raise Missing(str(e)) from e
    if any(not math.isfinite(v) for v in out.values()):
        raise Missing(f"non-finite values {out} for runs {[str(r.dir) for r in rs]}")
    return out


def best_method(got: Mapping[str, Sequence[Run]], candidates: Sequence[str], fn: Any, higher: bool) -> str:
    """The candidate with the best mean of ``fn`` over its seeds (used with dev-split scores:
    selection on dev, comparison on test)."""
    means = {m: float(sum(per_seed(got[m], fn).values()) / len(got[m])) for m in candidates}
    return (max if higher else min)(candidates, key=lambda m: means[m])


# -- building comparisons between methods of one experiment --------------------------------------


def label(method: str) -> str:
    """A method's display label (its key when the method table does not know it)."""
    from coolmix.reproduce.methods import METHODS

    return METHODS[method].label if method in METHODS else method


METRIC_UNITS = {"loss": "nats", "chrf": "chrF"}
"""The unit each headline metric is reported in."""


def metric_of(exp: str) -> tuple[str, bool]:
    """(metric, higher is better) of an experiment's headline comparison."""
    return ("chrf", True) if exp == "mt" else ("loss", False)


def groups(run: Run) -> dict[str, list[str]]:
    high, low = hrl_lrl(run.sizes())
    return {"HRL": high, "LRL": low, "all": list(run.sizes())}


def group_mean(langs: Sequence[str], split: str = "test", metric: str = "loss") -> Callable[[Run], float]:
    return lambda r: r.mean_score(langs, split, metric)


def compare_methods(
    lbl: str,
    got: Mapping[str, Sequence[Run]],
    a: str,
    b: str,
    fn: Callable[[Run], float],
    kind: Any,
    exp: str,
) -> Comparison:
    """``a`` vs ``b`` on ``fn`` (higher-is-better and margin from the experiment's metric)."""
    metric, higher = metric_of(exp)
    return compare(
        f"{lbl}: {label(a)} vs {label(b)}",
        per_seed(got[a], fn),
        per_seed(got[b], fn),
        kind,
        higher=higher,
        metric=metric,
        unit=METRIC_UNITS[metric],
        names=(a, b),
    )
