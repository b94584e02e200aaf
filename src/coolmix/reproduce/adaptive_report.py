"""The report's adaptive-Cooldown section: when and why each adaptive run switched, beside the fixed
Cooldown of the same seed (split out of `report` to keep that module an assembler)."""

from __future__ import annotations

from typing import Any

from coolmix.reproduce.results import Runs, hrl_lrl
from coolmix.reproduce.tables import markdown

__all__ = ["adaptive_section"]


def adaptive_section(runs: Runs) -> str:
    """The "## Adaptive Cooldown" section: each adaptive run's switch step and trigger, beside the
    fixed 50% Cooldown of the same seed on the test split ("" when no adaptive run exists)."""
    rows = []
    for exp in ("lm", "mt"):
        metric = "chrf" if exp == "mt" else "loss"
        cd = runs.get(exp, "cooldown")
        for r in runs.get(exp, "adaptive"):
            switch = next((e for e in r.final.get("events", []) if e.get("name") == "cooldown"), None)
            high, low = hrl_lrl(r.sizes())

            def val(run: Any, langs: list[str], metric: str = metric) -> str:
                return f"{run.mean_score(langs, 'test', metric):.3f}" if langs else "–"

            fixed = next((f"{val(c, low)} / {val(c, high)}" for c in cd if c.seed == r.seed), "–")
            rows.append(
                [
                    exp,
                    r.seed,
                    f"{switch['step']} ({switch['step'] / r.final['step']:.0%})"
                    if switch
                    else "never (stayed hot)",
                    (switch or {}).get("info", {}).get("domain", "–"),
                    f"{val(r, low)} / {val(r, high)}",
                    fixed,
                    f"test {metric} ({'↑' if exp == 'mt' else '↓'})",
                ]
            )
    if not rows:
        return ""
    return (
        "## Adaptive Cooldown (beyond the paper)\n\nStarts at τ=5 and switches to τ=1 when the overfitting "
        "detector flags a low-resource language on its watch split; the fixed Cooldown switches at 50%. "
        "Same-seed comparison on the test split:\n\n"
        + markdown(
            [
                "table",
                "seed",
                "switch step",
                "trigger",
                "adaptive LRL / HRL",
                "fixed 50% LRL / HRL",
                "metric",
            ],
            rows,
        )
    )
