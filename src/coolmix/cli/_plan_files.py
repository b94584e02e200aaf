"""``coolmix plan``'s files (a helper, not a command): the plan as CSV and as a PNG.

They sit next to their only caller, the ``plan`` command; the planner itself (`coolmix.plan`)
stays numpy-only. matplotlib is imported lazily, so ``--no-plot`` works without it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from coolmix.fileio import write_atomic_text
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
    write_atomic_text(path, buf.getvalue())
    return path


def plot_plan(plan: Plan, path: str | Path, points: int = 400) -> Path:
    """PNG: stacked p_i(t) with the τ in force per phase, and cumulative epochs (log scale)."""
    from matplotlib.figure import Figure  # lazy: the core stays numpy-only

    path = Path(path)
    c = plan.curve(points)
    fig = Figure(figsize=(10, 7), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.stackplot(c.steps, *[c.probs[n] for n in plan.names], labels=plan.names, alpha=0.85)
    top.set_ylim(0, 1)
    top.set_ylabel("p_i(t) (stacked)")
    top.set_xlim(0, plan.total_steps)
    for ph in plan.phases:
        if ph.start > 0:
            for ax in (top, bottom):
                ax.axvline(ph.start, color="black", lw=0.8, ls="--")
        top.text(
            (ph.start + ph.end) / 2,
            1.01,
            ph.label,
            transform=top.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    top.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    for n in plan.names:
        bottom.plot(c.steps, c.epochs[n], label=n)
    if plan.max_epochs is not None:
        bottom.axhline(plan.max_epochs, color="red", ls=":", lw=1.2, label=f"max_epochs={plan.max_epochs:g}")
    final = [v[-1] for v in c.epochs.values() if v[-1] > 0]
    if final:
        bottom.set_yscale("log", nonpositive="mask")
        low = min(final) / 100  # the first steps' tiny values would squash the rest
        bottom.set_ylim(bottom=low if plan.max_epochs is None else min(low, plan.max_epochs / 10))
    bottom.set_ylabel("cumulative epochs")
    bottom.set_xlabel("step")
    bottom.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    bottom.grid(True, which="major", alpha=0.3)
    fig.suptitle(
        f"{plan.schedule.kind}: {plan.total_steps:,} steps × {plan.batch_size:,} examples",
        fontsize=11,
    )
    fig.savefig(path, dpi=110)
    return path
