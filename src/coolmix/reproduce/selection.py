"""The report's view of ``select`` runs (`methods.Selection`): each grid member's dev score per seed
and the member chosen, read from the ``selected`` field the runner stores in the chosen record."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from coolmix.errors import ConfigError
from coolmix.reproduce.compare import label
from coolmix.reproduce.methods import METHODS
from coolmix.reproduce.results import Run, Runs, mean_std
from coolmix.reproduce.tables import markdown

__all__ = ["selection_section"]


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def selected(run: Run) -> dict[str, Any]:
    """A select run's ``selected`` record, checked: ``chosen`` one of ``scores``' members, each
    member's scores keyed by seed ("0", "1", …) with numbers; else one `ConfigError` naming the run."""
    sel = run.final.get("selected")
    scores = sel.get("scores") if isinstance(sel, Mapping) else None
    ok = (
        isinstance(scores, Mapping)
        and isinstance(sel.get("rule"), str)
        and isinstance(sel.get("chosen"), str)
        and sel["chosen"] in scores
        and all(
            isinstance(v, Mapping) and all(str(s).isdigit() and _number(x) for s, x in v.items())
            for v in scores.values()
        )
    )
    if not ok:
        text = repr(sel)
        why = "must be a selection record: chosen, rule and every member's dev score per seed"
        raise ConfigError(
            f"{run.dir.as_posix()} selected", text if len(text) <= 60 else text[:57] + "...", why
        )
    return dict(sel)


def _fmt(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "nan"


def selection_section(runs: Runs) -> str:
    """The "## Chosen on dev" section: one table per (experiment, select method) that ran ("" if none)."""
    parts = []
    for exp in runs.experiments():
        for key, m in METHODS.items():
            rs = runs.get(exp, m.run_name, m.role) if m.select is not None else []
            if not rs:
                continue
            sel = selected(rs[0])
            seeds = sorted({str(s) for v in sel["scores"].values() for s in v}, key=int)
            sizes = rs[0].sizes()
            small = min(sizes, key=lambda k: sizes[k])
            rows = []
            for member, by_seed in sel["scores"].items():
                mean, sd = mean_std([float(v) for v in by_seed.values()])
                chosen = member == sel["chosen"]
                cells = [_fmt(float(by_seed[s])) if s in by_seed else "–" for s in seeds]
                summary = _fmt(mean) + (f" ± {_fmt(sd)}" if len(by_seed) > 1 else "")
                name = METHODS[member].run_name if member in METHODS else member
                ep = [float(r.final.get("epochs", {}).get(small, math.nan)) for r in runs.get(exp, name)]
                rows.append(
                    [
                        f"{label(member)}{' ← chosen' if chosen else ''}",
                        f"{mean_std(ep)[0]:.3g}" if ep else "–",
                        *cells,
                        f"**{summary}**" if chosen else summary,
                    ]
                )
            per_seed = {r.seed: selected(r)["chosen"] for r in rs}
            choice = (
                f"**{label(sel['chosen'])}** for every seed"
                if len(set(per_seed.values())) == 1
                else "per seed: " + ", ".join(f"s{s} {label(c)}" for s, c in per_seed.items())
            )
            parts.append(
                f"**{label(key)}** ({exp}): {choice}; rule: {sel['rule']}. The test split is never read "
                "to choose; the chosen runs' test scores are in the tables above.\n\n"
                + markdown(
                    [
                        "grid member",
                        f"{small} epochs (realised)",
                        *[f"seed {s}" for s in seeds],
                        "mean over seeds",
                    ],
                    rows,
                )
            )
    if not parts:
        return ""
    return "## Chosen on dev (hyper-parameter grids)\n\n" + "\n\n".join(parts)
