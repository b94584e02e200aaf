"""``coolmix plan``'s figure, legible from 2 to 100+ domains.

Up to `TOP` domains: stacked p_i(t) with the τ of each phase, and every domain's cumulative epochs
(log scale), one distinct colour each. Beyond: the stack shows the `TOP` − 1 largest domains by
whole-run share plus one grey "others (n)" band, and the lower panel becomes a dot chart with one
row per domain (largest first) and one marker per phase end, so nothing repeats a colour or
overflows a legend however many domains there are. matplotlib is imported lazily.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from coolmix.plan import Plan

__all__ = ["TOP", "plan_figure"]

TOP = 10
"""Most domains drawn with their own colour (matplotlib's tab10 has 10 distinct ones)."""
OTHERS_COLOUR = "#b0b0b0"
PHASE_MARKERS = "osD^v<>p*h"


def plan_figure(plan: Plan, points: int = 400) -> Any:
    """The plan's matplotlib `Figure` (not saved): see the module docstring for the two layouts."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    c = plan.curve(points)
    names = list(plan.names)
    k = len(names)
    big = k > TOP
    ranked = sorted(names, key=lambda n: -plan.target_share[n])
    shown = ranked[: TOP - 1] if big else names
    palette = list(colormaps["tab10"].colors)
    if big:
        del palette[7]  # tab10's grey would read as the grey "others" band
    colour = {n: palette[i] for i, n in enumerate(shown)}

    rows = max(k, 1)
    height = 7.0 if not big else 4.5 + 0.17 * rows
    fig = Figure(figsize=(10, height), layout="constrained")
    if big:
        top, bottom = fig.subplots(2, 1, height_ratios=[4.0, 0.17 * rows])
    else:
        top, bottom = fig.subplots(2, 1, sharex=True)

    # stacked p_i(t): every domain, or the top ones plus an "others" band
    bands = [c.probs[n] for n in shown]
    labels = list(shown)
    colours = [colour[n] for n in shown]
    if big:
        rest = [n for n in names if n not in colour]
        bands.append(np.sum([c.probs[n] for n in rest], axis=0))
        labels.append(f"others ({len(rest)} domains)")
        colours.append(OTHERS_COLOUR)
    top.stackplot(c.steps, *bands, labels=labels, colors=colours, alpha=0.9)
    top.set_ylim(0, 1)
    top.set_xlim(0, plan.total_steps)
    top.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    top.set_ylabel("p_i(t) (stacked)")
    top.set_xlabel("step")
    for ph in plan.phases:
        if ph.start > 0:
            top.axvline(ph.start, color="black", lw=0.8, ls="--")
            if not big:
                bottom.axvline(ph.start, color="black", lw=0.8, ls="--")
        top.text(
            (ph.start + ph.end) / 2,
            1.01,
            ph.label,
            transform=top.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    top.legend(
        loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, title="whole-run share" if big else None
    )

    if big:
        _epoch_dots(bottom, plan, ranked, colour)
    else:
        _epoch_curves(bottom, plan, c, colour)
    fig.suptitle(
        f"{plan.schedule.kind}: {plan.total_steps:,} steps × {plan.batch_size:,} examples, {k} domains",
        fontsize=11,
    )
    return fig


def _epoch_curves(ax: Any, plan: Plan, c: Any, colour: dict[str, Any]) -> None:
    """Cumulative epochs over the run, one line per domain (log scale)."""
    from matplotlib.ticker import FuncFormatter

    for n in plan.names:
        ax.plot(c.steps, c.epochs[n], label=n, color=colour[n])
    if plan.max_epochs is not None:
        ax.axhline(plan.max_epochs, color="red", ls=":", lw=1.2, label=f"max_epochs={plan.max_epochs:g}")
    final = [v[-1] for v in c.epochs.values() if v[-1] > 0]
    if final:
        ax.set_yscale("log", nonpositive="mask")
        low = min(final) / 100  # the first steps' tiny values would squash the rest
        ax.set_ylim(bottom=low if plan.max_epochs is None else min(low, plan.max_epochs / 10))
    ax.set_xlim(0, plan.total_steps)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set_ylabel("cumulative epochs")
    ax.set_xlabel("step")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    ax.grid(True, which="major", alpha=0.3)


def _epoch_dots(ax: Any, plan: Plan, ranked: list[str], colour: dict[str, Any]) -> None:
    """One row per domain (largest share first), cumulative epochs at each phase's end (log x)."""
    y = np.arange(len(ranked))[::-1]
    greys = np.linspace(0.75, 0.0, len(plan.phases))
    for j, ph in enumerate(plan.phases):
        x = np.array([ph.cumulative_epochs[n] for n in ranked])
        live = x > 0
        ax.scatter(
            x[live],
            y[live],
            s=14,
            marker=PHASE_MARKERS[j % len(PHASE_MARKERS)],
            color=str(greys[j]),
            label=f"end of phase {ph.index} ({ph.label}, step {ph.end:,})",
            zorder=3,
        )
    if plan.max_epochs is not None:
        ax.axvline(plan.max_epochs, color="red", ls=":", lw=1.2, label=f"max_epochs={plan.max_epochs:g}")
    if any(plan.epochs[n] > 0 for n in ranked):
        ax.set_xscale("log", nonpositive="mask")
    ax.set_yticks(y, ranked, fontsize=7 if len(ranked) <= 40 else 6)
    over = plan.max_epochs is not None
    for tick, n in zip(ax.get_yticklabels(), ranked, strict=True):
        if over and plan.epochs[n] > plan.max_epochs:  # type: ignore[operator]
            tick.set_color("red")
        elif n in colour:
            tick.set_color(colour[n])
            tick.set_fontweight("bold")
    ax.set_ylim(-0.7, len(ranked) - 0.3)
    ax.set_xlabel("cumulative epochs (log)")
    ax.set_title("epochs per domain, largest share first (red: over max_epochs)", fontsize=9, loc="left")
    ax.grid(True, axis="x", which="major", alpha=0.3)
    ax.grid(True, axis="y", alpha=0.12)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
