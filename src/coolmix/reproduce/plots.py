"""Figures like the paper's (matplotlib, Agg backend, imported lazily); each returns the PNG path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coolmix.fileio import save_figure
from coolmix.reproduce.compare import label
from coolmix.reproduce.methods import color
from coolmix.reproduce.results import Runs, buckets

__all__ = ["fig_ablation", "fig_convergence", "fig_curves", "fig_inflation", "fig_mt", "fig_variance"]



CURVE_LABELS = {"loss": "dev loss (nats/token)", "chrf": "dev chrF"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mean_curve(
    runs: Runs, exp: str, method: str, lang: str, metric: str = "loss"
) -> tuple[np.ndarray, np.ndarray]:
    curves = [r.series(lang, "dev", metric) for r in runs.get(exp, method)]
    curves = [c for c in curves if len(c[0])]
    if not curves:
        return np.zeros(0), np.zeros(0)
    n = min(len(c[0]) for c in curves)
    return curves[0][0][:n], np.mean([c[1][:n] for c in curves], axis=0)


def _shade_hot(ax: Any, runs: Runs, exp: str, method: str) -> None:
    """Shade the steps where the hot temperature was in force (Cooldown's first phase)."""
    rs = runs.get(exp, method)
    if not rs:
        return
    taus = [(rec["step"], rec.get("tau")) for rec in rs[0].curve if "tau" in rec]
    hot = [s for s, t in taus if t is not None and t > 1.0]
    if hot:
        ax.axvspan(0, max(hot), color=color(method) or "g", alpha=0.07, lw=0)


def fig_curves(
    runs: Runs, exp: str, methods: Sequence[str], path: Path, title: str, metrics: Sequence[str] = ("loss",)
) -> Path | None:
    """Per-language dev curves (paper Figs. 1, 4), one row per metric (MT: loss and chrF, which can part
    ways when a scarce language is repeated); Cooldown's τ=5 phase shaded."""
    present = [m for m in methods if runs.get(exp, m) and any(r.curve for r in runs.get(exp, m))]
    if not present:
        return None
    sizes = runs.get(exp, present[0])[0].sizes()
    plt = _plt()
    fig, axes = plt.subplots(
        len(metrics), len(sizes), figsize=(3.4 * len(sizes), 3.0 * len(metrics)), squeeze=False
    )
    for row, metric in zip(axes, metrics, strict=True):
        for ax, lang in zip(row, sizes, strict=True):
            _shade_hot(ax, runs, exp, "cooldown")
            for m in present:
                s, v = _mean_curve(runs, exp, m, lang, metric)
                ax.plot(s, v, label=label(m), color=color(m), lw=1.4)
            ax.set_title(f"{lang} ({sizes[lang]:,.0f} train)")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        row[0].set_ylabel(CURVE_LABELS.get(metric, f"dev {metric}"))
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, field="figures")
    plt.close(fig)
    return path


def fig_convergence(runs: Runs, path: Path) -> Path | None:
    """Fig. 4 analogue: sampling (dashed) vs scalarization (solid) at τ = 2, 3, 5, per language."""
    exp = "convergence"
    ran = [r for m in ("tau2", "scal2", "tau3", "scal3", "tau5", "scal5") for r in runs.get(exp, m)]
    if not any(r.curve for r in ran):
        return None  # no pair ran, or no curves (an older metrics.json)
    sizes = ran[0].sizes()
    plt = _plt()
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.2), squeeze=False)
    for ax, lang in zip(axes[0], sizes, strict=True):
        for t in ("2", "3", "5"):
            for m, ls in ((f"tau{t}", "--"), (f"scal{t}", "-")):
                s, v = _mean_curve(runs, exp, m, lang)
                if len(s):
                    kind = "TS" if m.startswith("tau") else "S"
                    ax.plot(s, v, ls, color=color(f"tau{t}"), label=f"{kind} τ={t}", lw=1.4)
        s, v = _mean_curve(runs, exp, "tau1", lang)
        if len(s):
            ax.plot(s, v, ":", color=color("tau1"), label="τ=1", lw=1.2)
        ax.set_title(f"{lang} ({sizes[lang]:,.0f} train, {buckets(sizes)[lang]} resource)")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("dev loss")
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.suptitle("Temperature sampling (dashed) vs scalarization (solid)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, field="figures")
    plt.close(fig)
    return path


def fig_inflation(fig2: Mapping[str, Any], mixtures: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    """Fig. 2 analogue: F(τ) for Zipf sizes (left) and for our experiments' mixtures (right)."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.3))
    for alpha, row in zip(fig2["alphas"], fig2["F"], strict=True):
        a.plot(fig2["taus"], row, marker="o", ms=3, label=f"α={alpha:g}")
    a.set_xscale("log")
    a.set_xlabel("τ")
    a.set_ylabel("F(τ) = Σ p_τ² / p_1")
    a.set_title(f"Zipf sizes n_i ∝ i^-α, K={fig2['k']}")
    a.legend(fontsize=7)
    for name, row in mixtures.items():
        taus = [float(t) for t in row["F"]]
        b.plot(taus, list(row["F"].values()), marker=".", label=name)
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xlabel("τ")
    b.set_title("our mixtures and the paper's")
    b.legend(fontsize=7)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, field="figures")
    plt.close(fig)
    return path


def fig_variance(variance: Mapping[str, Any], path: Path) -> Path | None:
    """Fig. 3 analogue: distribution of mini-batch gradient norms, sampling vs scalarization
    (None when the stored measurement has no norm samples)."""
    taus = list(variance["norms"])
    if not all("ts_sample" in variance["norms"][t] and "s_sample" in variance["norms"][t] for t in taus):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(taus), figsize=(3.6 * len(taus), 3.0), squeeze=False)
    for ax, t in zip(axes[0], taus, strict=True):
        n = variance["norms"][t]
        bins = np.linspace(0, max(max(n["ts_sample"]), max(n["s_sample"])), 50)
        ax.hist(n["ts_sample"], bins=bins, alpha=0.6, label=f"sampling (var {n['ts_var']:.3g})")
        ax.hist(n["s_sample"], bins=bins, alpha=0.6, label=f"scalarization (var {n['s_var']:.3g})")
        ax.set_title(f"τ={float(t):g}, batch {variance['batch']}")
        ax.set_xlabel("‖mini-batch gradient‖")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, field="figures")
    plt.close(fig)
    return path


def fig_ablation(runs: Runs, methods: Sequence[str], path: Path) -> Path | None:
    """Figs. 5–7 analogue: τ(t) of each schedule (top) and the LRL-mean dev loss (bottom)."""
    methods = [m for m in methods if any(r.curve for r in runs.get("lm", m))]
    if len(methods) < 2:
        return None
    sizes = runs.get("lm", methods[0])[0].sizes()
    low = [k for k, v in buckets(sizes).items() if v == "low"]
    high = [k for k, v in buckets(sizes).items() if v == "high"]
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for m in methods:
        r = runs.get("lm", m)[0]
        steps = [rec["step"] for rec in r.curve]
        axes[0].step(
            steps, [rec.get("tau") for rec in r.curve], where="post", color=color(m), label=label(m)
        )
        for ax, langs in ((axes[1], low), (axes[2], high)):
            curves = [_mean_curve(runs, "lm", m, x) for x in langs]
            if curves and len(curves[0][0]):
                ax.plot(
                    curves[0][0],
                    np.mean([c[1] for c in curves], axis=0),
                    color=color(m),
                    label=label(m),
                )
    axes[0].set_title("τ in force")
    axes[1].set_title(f"LRL mean dev loss ({', '.join(low)})")
    axes[2].set_title(f"HRL dev loss ({', '.join(high)})")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, field="figures")
    plt.close(fig)
    return path


def fig_mt(runs: Runs, methods: Sequence[str], path: Path) -> Path | None:
    """Test chrF per language and method (Table 3 analogue as bars)."""
    present = [m for m in methods if runs.get("mt", m)]
    if not present:
        return None
    sizes = runs.get("mt", present[0])[0].sizes()
    langs = list(sizes)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 3.4))
    width = 0.8 / len(present)
    for i, m in enumerate(present):
        vals = [
            np.mean([r.final.get("test", {}).get("chrf", {}).get(x, np.nan) for r in runs.get("mt", m)])
            for x in langs
        ]
        ax.bar(np.arange(len(langs)) + i * width, vals, width, color=color(m), label=label(m))
    ax.set_xticks(np.arange(len(langs)) + 0.4 - width / 2, [f"{x}\n{sizes[x]:,.0f}" for x in langs])
    ax.set_ylabel("test chrF")
    ax.legend(fontsize=7, ncol=4)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, path, field="figures")
    plt.close(fig)
    return path
