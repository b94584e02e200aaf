"""The report's view of ``select`` runs (`methods.Selection`): each grid member's dev score per seed
and the member chosen, read from the ``selected`` field the runner stores in the chosen record."""

from __future__ import annotations

from coolmix.reproduce.compare import label
from coolmix.reproduce.methods import METHODS
from coolmix.reproduce.results import Runs, mean_std
from coolmix.reproduce.tables import markdown

__all__ = ["selection_section"]


def selection_section(runs: Runs) -> str:
    """The "## Chosen on dev" section: one table per (experiment, select method) that ran ("" if none)."""
    parts = []
    for exp in runs.experiments():
        for key, m in METHODS.items():
            rs = [r for r in runs.get(exp, m.run_name, m.role) if "selected" in r.final]
            if m.select is None or not rs:
                continue
            sel = rs[0].final["selected"]
            seeds = sorted({s for v in sel["scores"].values() for s in v}, key=int)
            sizes = rs[0].sizes()
            small = min(sizes, key=lambda k: sizes[k])
            rows = []
            for member, by_seed in sel["scores"].items():
                mean, sd = mean_std([float(v) for v in by_seed.values()])
                chosen = member == sel["chosen"]
                cells = [f"{float(by_seed[s]):.3f}" if s in by_seed else "–" for s in seeds]
                summary = f"{mean:.3f}" + (f" ± {sd:.3f}" if len(by_seed) > 1 else "")
                ep = [r.final["epochs"][small] for r in runs.get(exp, METHODS[member].run_name)]
                rows.append(
                    [
                        f"{label(member)}{' ← chosen' if chosen else ''}",
                        f"{mean_std(ep)[0]:.3g}" if ep else "–",
                        *cells,
                        f"**{summary}**" if chosen else summary,
                    ]
                )
            per_seed = {r.seed: r.final["selected"]["chosen"] for r in rs}
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
