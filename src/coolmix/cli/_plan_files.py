"""``coolmix plan``'s files (a helper, not a command): the plan as CSV and as a PNG.

They sit next to their only caller, the ``plan`` command; the planner itself (`coolmix.plan`)
stays numpy-only. matplotlib is imported lazily, so ``--no-plot`` works without it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from coolmix.fileio import save_figure, write_atomic_text
from coolmix.plan import Plan

__all__ = ["plot_plan", "write_csv"]


def write_csv(plan: Plan, path: str | Path) -> Path:
    """Write `Plan.rows` as CSV (one row per phase × domain, plus whole-run ``all`` rows), atomically."""
    path = Path(path)
    rows = plan.rows()
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic_text(path, buf.getvalue(), "out")
    return path


def plot_plan(plan: Plan, path: str | Path, points: int = 400) -> Path:
    """PNG of `coolmix.cli._plan_plot.plan_figure`: shares per phase and epochs, legible at 100 domains."""
    from coolmix.cli._plan_plot import plan_figure  # lazy: matplotlib only when plotting

    path = Path(path)
    fig = plan_figure(plan, points)
    return save_figure(fig, path, field="out")
