"""The plan figure stays legible from 4 to 100 domains: bounded legends, distinct colours, every
domain named, nothing drawn outside the figure."""

import numpy as np
import pytest

import coolmix as cm
from coolmix.plan import make_plan

pytest.importorskip("matplotlib")
from matplotlib.colors import to_rgba

from coolmix.cli._plan_plot import TOP, plan_figure


def plan_of(k: int):
    sizes = {f"l{i:03d}": float(10 ** (12 - 4 * i / (k - 1))) for i in range(k)}
    return make_plan(
        sizes,
        cm.Cooldown(hot=5, cold=1, at=0.5),
        total_steps=1_000_000,
        batch_size=512,
        tokens_per_example=1024,
        unit="tokens",
        max_epochs=4,
        max_simulated_steps=1000,
    )


def legends(fig):
    return [leg for ax in fig.axes if (leg := ax.get_legend()) is not None]


@pytest.mark.parametrize("k", [4, 20, 100])
def test_legends_are_bounded_with_distinct_colours_and_inside_the_figure(k):
    plan = plan_of(k)
    fig = plan_figure(plan, points=50)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    share = legends(fig)[0]
    entries = [t.get_text() for t in share.get_texts()]
    assert len(entries) <= TOP
    colours = [tuple(np.round(to_rgba(h.get_facecolor()), 3)) for h in share.legend_handles]
    assert len(set(colours)) == len(colours), "a colour repeats in the share legend"
    if k > TOP:
        assert entries[-1] == f"others ({k - TOP + 1} domains)"
        names = [t.get_text() for t in fig.axes[1].get_yticklabels()]
        assert sorted(names) == sorted(plan.names)  # every domain is named once, in the dot chart
    else:
        assert entries == list(plan.names)
    box = fig.bbox
    for leg in legends(fig):
        b = leg.get_window_extent(renderer)
        assert b.x0 >= box.x0 - 1 and b.x1 <= box.x1 + 1 and b.y0 >= box.y0 - 1 and b.y1 <= box.y1 + 1


def test_domains_over_max_epochs_are_marked():
    plan = plan_of(20)
    fig = plan_figure(plan, points=50)
    red = {t.get_text() for t in fig.axes[1].get_yticklabels() if to_rgba(t.get_color()) == to_rgba("red")}
    assert red == {n for n in plan.names if plan.epochs[n] > 4} and red


def test_realised_share_is_labelled_with_the_steps_it_covers(capsys, monkeypatch):
    """At 1M steps the sampler is replayed for a prefix only: its share sits next to the prefix's target."""
    from coolmix.cli.plan import render

    monkeypatch.setenv("COLUMNS", "250")
    plan = plan_of(4)
    render(plan)
    out = capsys.readouterr().out
    assert "target share (first 1k steps)" in out and "realised share (first 1k steps)" in out
    assert "the first 1,000 of 1,000,000 steps" in out
    row = next(line for line in out.splitlines() if "l000" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[-1] == cells[-2] != cells[-3]  # realised = prefix target ≠ whole-run target
