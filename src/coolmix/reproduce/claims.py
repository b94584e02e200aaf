"""Verdicts for the paper's empirical claims (paper.md §7) and the theory checks.

Each empirical claim has one primary comparison, defined in `REGISTRY` (often a conjunction of
a few paired comparisons, each of which must pass) and judged by the one rule in
`stats.decide` against the margins in `compare.MARGINS`; secondary comparisons are shown but do
not vote. Tables and verdicts use the test split; dev is used only to select (e.g. "the best
static τ"). The theory items T1–T6 are checks (`checks.py`), counted apart from the claims.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from coolmix.reproduce import claims_convergence as conv
from coolmix.reproduce.checks import evaluate_checks
from coolmix.reproduce.compare import (
    MT_GATE_CHRF,
    MT_STATICS,
    STATICS,
    Comparison,
    Missing,
    Verdict,
    best_method,
    compare_methods,
    group_mean,
    groups,
    label,
    metric_of,
    need,
)
from coolmix.reproduce.methods import in_groups
from coolmix.reproduce.premise import (
    beats_best_static,
    mechanism_e5,
    mechanism_e8,
    premise,
    premise_notes,
    retained_note,
)
from coolmix.reproduce.results import MissingSplit, Runs
from coolmix.reproduce.stats import combine

__all__ = ["REGISTRY", "Claim", "Verdict", "claim_ids",
    "claim_span", "claims_in", "evaluate_claims", "label", "mechanism_of", "mt_gate"]


Parts = tuple[list[Comparison], list[Comparison], list[str]]


def evaluate_claims(runs: Runs, theory: Mapping[str, Any]) -> list[Verdict]:
    """The checks T1–T6, then every claim of `REGISTRY` in order (NOT RUN where data is missing,
    NOT REACHED where a run was too short to decide)."""
    out = evaluate_checks(theory)
    for c in REGISTRY:
        try:
            primary, secondary, notes = c.judge(runs, theory)
        except (Missing, MissingSplit) as e:
            out.append(Verdict(c.id, "NOT RUN", str(e).strip("'\""), c.statement, rule=c.rule, kind=c.kind))
            continue
        except conv.NotReached as e:  # decided only once the runs plateau: the budget it would need
            primary, secondary, notes = e.parts
            verdict, evidence = "NOT REACHED", e.why
        else:
            verdict, evidence = combine(x.outcome for x in primary), "; ".join(x.text() for x in primary)
        out.append(
            Verdict(
                c.id,
                verdict,
                evidence,
                c.statement,
                tuple(primary),
                tuple(secondary),
                c.rule,
                c.kind,
                tuple(notes),
            )
        )
    return out


def claim_ids(kind: str) -> list[str]:
    """The ids of the registered claims of one kind, in report order."""
    return [c.id for c in REGISTRY if c.kind == kind]


def mechanism_of() -> list[str]:
    """The paper's claims that the ``"mechanism"`` claims restrict to the premise LRLs, in order."""
    return [c.of for c in REGISTRY if c.kind == "mechanism"]


def claims_in(section: str) -> str:
    """The ids of the claims a report section's results decide, as its heading names them ("E1/E2/E4")."""
    return "/".join(c.id for c in REGISTRY if section in c.sections)


def claim_span(kind: str) -> str:
    """Those ids as text: "E1–E8" for a run of consecutive numbers, else joined by ", "."""
    ids = claim_ids(kind)
    if len(ids) > 2 and all(i[1:].isdigit() for i in ids):
        nums = [int(i[1:]) for i in ids]
        if nums == list(range(nums[0], nums[0] + len(nums))):
            return f"{ids[0]}–{ids[-1]}"
    return ", ".join(ids)


def mt_gate(runs: Runs) -> tuple[bool | None, str]:
    """(passed, sentence): does every τ=1 MT run reach chrF ≥ `MT_GATE_CHRF` on its largest
    language? Each run's best **dev** chrF over its evals (the test split that the tables score
    never opens the gate), then the lowest over seeds. ``passed`` is None when MT was not run."""
    rs = runs.get("mt", "tau1")
    if not rs:
        return None, ""
    sizes = rs[0].sizes()
    largest = max(sizes, key=lambda k: sizes[k])
    best = []
    for r in rs:
        vals = [
            float(rec["dev"]["chrf"][largest])
            for rec in (*r.curve, r.final)
            if largest in rec.get("dev", {}).get("chrf", {})
        ]
        vals = [v for v in vals if math.isfinite(v)]
        if vals:
            best.append(max(vals))
    if len(best) < len(rs):
        return False, f"MT gate: a τ=1 run has no dev chrF on {largest} (the largest language)"
    low = min(best)
    ok = low >= MT_GATE_CHRF
    return ok, (
        f"MT gate: the τ=1 runs' best dev chrF on {largest} (the largest language; the lowest of "
        f"{len(best)} seed{'s' if len(best) > 1 else ''}) is {low:.1f} {'≥' if ok else '<'} {MT_GATE_CHRF:g}"
        + ("" if ok else "; MT is a pipeline check here, and every MT comparison is left out of the verdicts")
    )


def _e5_one(runs: Runs, exp: str) -> tuple[list[Comparison], list[Comparison]]:
    statics = STATICS if exp == "lm" else MT_STATICS
    got = need(runs, exp, ["cooldown", *statics])
    metric, higher = metric_of(exp)
    g = groups(got["tau1"][0])
    primary, secondary = [], []
    if g["HRL"]:
        primary.append(
            compare_methods(
                f"{exp} HRL mean test {metric}",
                got,
                "cooldown",
                "tau1",
                group_mean(g["HRL"], "test", metric),
                "no_worse",
                exp,
            )
        )
    for grp in ("LRL", "all"):
        if not g[grp]:
            continue
        best = best_method(got, statics, group_mean(g[grp], "dev", metric), higher)
        primary.append(
            compare_methods(
                f"{exp} {'all-language' if grp == 'all' else grp} mean test {metric} (best static τ on dev)",
                got,
                "cooldown",
                best,
                group_mean(g[grp], "test", metric),
                "no_worse",
                exp,
            )
        )
    for lang in g["all"]:
        best = best_method(got, statics, group_mean([lang], "dev", metric), higher)
        secondary.append(
            compare_methods(
                f"{exp} {lang} test {metric} (best static τ on dev)",
                got,
                "cooldown",
                best,
                group_mean([lang], "test", metric),
                "no_worse",
                exp,
            )
        )
    return primary, secondary


def _e5(runs: Runs) -> Parts:
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
        notes.append(retained_note(runs, exp))
        notes += premise_notes(premise(runs, exp), exp, _failed_langs(s, exp))
    if not ran:
        raise Missing("neither the LM nor a gated MT table was run: " + "; ".join(notes))
    return primary, secondary, notes


def _failed_langs(comparisons: list[Comparison], exp: str) -> list[str]:
    """Languages whose single-language comparison (label "<exp> <lang> ..." or "<lang> ...") FAILed."""
    out = []
    for c in comparisons:
        words = c.label.split()
        lang = words[1] if words[0] == exp and len(words) > 1 else words[0]
        if c.outcome == "FAIL" and lang not in out:
            out.append(lang)
    return out


def _gated(runs: Runs) -> tuple[list[str], list[str]]:
    """(experiments whose Cooldown comparisons count, notes): the LM, and MT if its gate passed."""
    exps, notes = ["lm"], []
    ok, sentence = mt_gate(runs)
    if ok:
        exps.append("mt")
    elif ok is False:
        notes.append(sentence)
    return exps, notes


def _e5m(runs: Runs) -> Parts:
    primary, secondary, notes = [], [], []
    exps, notes = _gated(runs)
    for exp in exps:
        try:
            p, s = mechanism_e5(runs, exp)
        except Missing as e:
            notes.append(str(e))
            continue
        primary += p
        secondary += s
    if not primary:
        raise Missing("; ".join(notes) or "no experiment with τ=5 and Cooldown runs")
    return primary, secondary, notes


def _e8m(runs: Runs) -> Parts:
    primary, secondary = mechanism_e8(runs)
    return primary, secondary, []


def _e6(runs: Runs) -> Parts:
    got = need(runs, "lm", ["cooldown", "increasing"])
    g = groups(got["cooldown"][0])
    primary = [
        compare_methods(
            "LRL mean test loss", got, "cooldown", "increasing", group_mean(g["LRL"]), "better", "lm"
        ),
        compare_methods(
            "HRL mean test loss", got, "cooldown", "increasing", group_mean(g["HRL"]), "no_worse", "lm"
        ),
    ]
    secondary = [
        compare_methods(f"{x} test loss", got, "cooldown", "increasing", group_mean([x]), "better", "lm")
        for x in g["LRL"]
    ]
    return primary, secondary, []


def _e7(runs: Runs) -> Parts:
    got = need(runs, "lm", ["cooldown", "dense1", "dense2"])
    g = groups(got["cooldown"][0])
    primary = [
        compare_methods(
            "all-language mean test loss", got, "cooldown", m, group_mean(g["all"]), "better", "lm"
        )
        for m in ("dense1", "dense2")
    ]
    secondary = [
        compare_methods(f"{x} test loss", got, "cooldown", m, group_mean([x]), "better", "lm")
        for m in ("dense1", "dense2")
        for x in g["all"]
    ]
    return primary, secondary, []


def _e8(runs: Runs) -> Parts:
    got = need(runs, "lm", ["cooldown", *STATICS, "doremi"])
    g = groups(got["tau1"][0])
    primary, secondary = beats_best_static(got, g["LRL"]), []
    primary.append(
        compare_methods(
            "LRL mean test loss", got, "cooldown", "doremi", group_mean(g["LRL"]), "no_worse", "lm"
        )
    )
    others = [m for m in in_groups("baseline") if m != "doremi" and runs.get("lm", m)]
    got.update({m: runs.get("lm", m) for m in others})
    for m in (*STATICS, *others):
        secondary += [
            compare_methods(f"{x} test loss", got, "cooldown", m, group_mean([x]), "better", "lm")
            for x in g["LRL"]
        ]
    secondary += [
        compare_methods(f"{x} test loss", got, "cooldown", "doremi", group_mean([x]), "no_worse", "lm")
        for x in g["all"]
    ]
    secondary.append(
        compare_methods("HRL mean test loss", got, "cooldown", "tau1", group_mean(g["HRL"]), "no_worse", "lm")
    )
    return primary, secondary, premise_notes(premise(runs, "lm"), "lm", _failed_langs(primary, "lm"))


def _e9(runs: Runs) -> Parts:
    late = in_groups("beyond")
    got = need(runs, "lm", ["cooldown", *late])
    g = groups(got["cooldown"][0])
    primary = [
        compare_methods("LRL mean test loss", got, "cooldown", m, group_mean(g["LRL"]), "better", "lm")
        for m in late
    ]
    secondary = []
    for m in late:
        secondary.append(
            compare_methods(
                "LRL mean dev loss", got, "cooldown", m, group_mean(g["LRL"], "dev"), "better", "lm"
            )
        )
        secondary.append(
            compare_methods(
                "all-language mean test loss", got, "cooldown", m, group_mean(g["all"]), "better", "lm"
            )
        )
        secondary.append(
            compare_methods("HRL mean test loss", got, "cooldown", m, group_mean(g["HRL"]), "no_worse", "lm")
        )
    return primary, secondary, []


# -- the one registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One claim: its id, the paper's statement, the primary comparison's rule, the function that
    judges it (runs, theory) → (primary, secondary, notes), its kind: ``"claim"`` (the paper's),
    ``"beyond"`` (ours) or ``"mechanism"`` (a paper claim, ``of``, where its premise holds), and the
    report sections whose results it judges (their headings name it; ``"direction"`` also prints its
    paired table).

    Adding a claim is one judging function and one entry here; the report reads ids, kinds,
    statements and sections from this registry.
    """

    id: str
    statement: str
    rule: str
    judge: Callable[[Runs, Mapping[str, Any]], Parts]
    kind: str = "claim"
    sections: tuple[str, ...] = ()
    of: str = ""


REGISTRY: tuple[Claim, ...] = (
    Claim(
        "E1",
        "Sampling reaches a given dev loss in fewer steps than equal-weight scalarization; the gap grows with τ",
        "for each τ ∈ {2, 3, 5} run (quick: 2, 5): steps until the LRL's dev loss first reaches a loss every run of the pair reaches, sampling − scalarization < 0",
        lambda runs, theory: conv.e1(runs),
        sections=("convergence",),
    ),
    Claim(
        "E2",
        "With enough steps, sampling and scalarization reach about the same loss",
        "for each τ ∈ {2, 3, 5} pair run: the LRL's final test loss, sampling vs scalarization, within ± the loss margin; decided only when every run's LRL dev loss plateaued (fell by ≤ 0.1 × the margin over its last quarter), else NOT REACHED with the steps the pair would need",
        lambda runs, theory: conv.e2(runs),
        sections=("convergence",),
    ),
    Claim(
        "E3",
        "Mini-batch gradient norms vary more under scalarization than under sampling (paper: 2.25 vs 0.62)",
        "at every measured checkpoint (τ=1 and τ=5 runs) and τ: log(Var‖g‖ scalarization / Var‖g‖ sampling) > 0, 95% bootstrap interval resampling the measured examples (not over seeds)",
        lambda runs, theory: conv.e3(theory),
        sections=("theory",),
    ),
    Claim(
        "E4",
        "High static τ overfits the LRL (dev loss turns up) while the HRL still improves; τ=1 underfits it",
        "for each LRL: (a) its dev-loss rise after its minimum (final − min) is larger at τ=5 than at τ=1; (b) at τ=5 the HRL mean dev loss still falls after that minimum; (c) τ=5's best dev loss < τ=1's",
        lambda runs, theory: conv.e4(runs),
        sections=("convergence",),
    ),
    Claim(
        "E5",
        "Cooldown keeps HRLs near τ=1 and LRLs near the best static τ, matching or beating it overall",
        "test split, LM (and MT if it passes its chrF gate): Cooldown no worse than τ=1 on the HRL mean, and no worse than the best static τ (chosen on dev) on the LRL mean and on the all-language mean",
        lambda runs, theory: _e5(runs),
        sections=("lm", "mt"),
    ),
    Claim(
        "E6",
        "A decreasing schedule (5→1) beats an increasing one (1→5) on LRLs with similar HRLs",
        "LM test split: 5→1 better than 1→5 on the LRL mean loss, and no worse on the HRL mean loss",
        lambda runs, theory: _e6(runs),
        sections=("ablation",),
    ),
    Claim(
        "E7",
        "A single switch beats dense, gradually decreasing schedules",
        "LM test split: Cooldown better than Dense 1 and better than Dense 2 on the all-language mean loss",
        lambda runs, theory: _e7(runs),
        sections=("ablation",),
    ),
    Claim(
        "E8",
        "LM: Cooldown beats τ=1/5/100, UniMax and Order Matters on the LRLs and is on par with DoReMi",
        "LM test split: on each LRL, Cooldown better than the best static τ on that LRL (chosen on dev); and no worse than DoReMi on the LRL mean",
        lambda runs, theory: _e8(runs),
        sections=("lm",),
    ),
    Claim(
        "E9",
        "Beyond the paper: upsampling the scarce data early (Cooldown, 5→1) beats upsampling it late (late upsampling, Blakeney et al. 2024; τ warm-up 1→5, Wang et al. 2020)",
        "LM test split: Cooldown better than late_upsample and better than tau_warmup on the LRL mean loss",
        lambda runs, theory: _e9(runs),
        kind="beyond",
        sections=("direction",),
    ),
    Claim(
        "E5m",
        "Mechanism of E5: where τ=5 overfits an LRL, Cooldown keeps that LRL near the best static τ",
        "E5's LRL comparison restricted to the LRLs whose τ=5 dev loss the overfitting detector flags in every seed (the premise; dev only): Cooldown no worse than the best static τ (chosen on their dev mean)",
        lambda runs, theory: _e5m(runs),
        kind="mechanism",
        of="E5",
    ),
    Claim(
        "E8m",
        "Mechanism of E8: where τ=5 overfits an LRL, Cooldown beats every static τ on it",
        "E8's per-LRL comparison restricted to the LRLs whose τ=5 dev loss the overfitting detector flags in every seed: Cooldown better than the best static τ on each (chosen on dev)",
        lambda runs, theory: _e8m(runs),
        kind="mechanism",
        of="E8",
    ),
)
"""Every empirical claim, in report order: the paper's E1–E8, ours (E9), and E5/E8 where
Cooldown's premise holds (E5m, E8m; `premise.py`)."""
