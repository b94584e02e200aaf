"""What gap the test set can resolve: a paired bootstrap over test items inside each seed.

The claims' intervals come from seed-to-seed spread only; a finite test set adds its own noise.
With per-item test scores in each run (``test_items``, `coolmix.train.item_scores`) this resamples
the test items of a language with replacement, the *same* items for both methods (paired), and
recomputes the split's metric on the resample: token-weighted mean loss Σ l·t / Σ t (LM), or
corpus chrF of the summed sentence statistics (MT). Per seed, the spread of Δ = A − B over
``DRAWS`` resamples is that seed's test-set SE; the SE of the seed mean is √(Σ SE_s²) / n. The
section reports Δ on *all* test items, its test-set 95% half-width (1.96 · SE), the seed SD and
the claim's margin in the metric's unit, and says when the margin is below the resolution.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from coolmix.reproduce.compare import MARGINS, METRIC_UNITS, groups, label, metric_of
from coolmix.reproduce.results import Run, Runs
from coolmix.train.item_scores import ITEMS_KEY as ITEMS
from coolmix.train.item_scores import items_metric

__all__ = [
    "DRAWS",
    "PAIRS",
    "Resolution",
    "item_metric",
    "paired_bootstrap",
    "resolution_lines",
    "resolution_section",
    "resolve",
]

DRAWS = 1000
"""Bootstrap resamples per (pair, language group, seed): the SE's own error is ≈ 1/√(2·DRAWS) ≈ 2%."""

PAIRS = (("cooldown", "tau1"), ("cooldown", "tau5"), ("tau5", "tau1"))
"""The comparisons the Cooldown claims (E5, E6, E8) are made of."""


def _has_items(run: Run, metric: str) -> bool:
    items = run.final.get(ITEMS)
    return isinstance(items, dict) and isinstance(items.get("chrf" if metric == "chrf" else "loss"), dict)


def item_metric(run: Run, lang: str, metric: str, idx: np.ndarray | None = None) -> Any:
    """The run's test ``metric`` for ``lang`` on items ``idx`` (`items_metric`)."""
    return items_metric(run.final[ITEMS], lang, metric, idx)


def _n_items(run: Run, lang: str, metric: str) -> int:
    items = run.final[ITEMS]
    return len(items["chrf" if metric == "chrf" else "loss"][lang])


def paired_bootstrap(
    a: Run, b: Run, langs: Sequence[str], metric: str, draws: int = DRAWS, seed: int = 0
) -> tuple[float, float]:
    """(Δ on all items, test-set SE of Δ) for the mean over ``langs`` of A − B, one seed.

    Items are resampled per language, the same indices for A and B (their test sets are the same
    items in the same order; a length mismatch is refused)."""
    rng = np.random.default_rng(seed)
    full, boot = 0.0, np.zeros(draws)
    for lang in langs:
        n = _n_items(a, lang, metric)
        if n != _n_items(b, lang, metric) or n == 0:
            raise ValueError(f"{lang}: {a.dir} and {b.dir} scored different test sets")
        idx = rng.integers(0, n, size=(draws, n))
        full += float(item_metric(a, lang, metric)) - float(item_metric(b, lang, metric))
        boot += np.asarray(item_metric(a, lang, metric, idx)) - np.asarray(item_metric(b, lang, metric, idx))
    k = len(langs)
    return full / k, float(np.std(boot / k, ddof=1))


class Resolution:
    """One row: A vs B on a language group, over the seeds both ran with per-item scores."""

    def __init__(self, a: str, b: str, group: str, langs: Sequence[str], metric: str) -> None:
        self.a, self.b, self.group, self.langs, self.metric = a, b, group, tuple(langs), metric
        self.deltas: list[float] = []
        self.ses: list[float] = []
        self.reference: list[float] = []

    @property
    def mean(self) -> float:
        return math.fsum(self.deltas) / len(self.deltas)

    @property
    def half_width(self) -> float:
        """Test-set 95% half-width of the seed-mean Δ: 1.96 · √(Σ SE_s²) / n."""
        return 1.96 * math.sqrt(math.fsum(s * s for s in self.ses)) / len(self.ses)

    @property
    def seed_sd(self) -> float:
        n = len(self.deltas)
        if n < 2:
            return math.nan
        return math.sqrt(math.fsum((d - self.mean) ** 2 for d in self.deltas) / (n - 1))

    @property
    def margin(self) -> float:
        """The claims' margin (a percent of B's value) in the metric's unit."""
        return MARGINS[self.metric].percent / 100.0 * abs(math.fsum(self.reference) / len(self.reference))

    def cells(self) -> list[str]:
        hw, m = self.half_width, self.margin
        verdict = (
            "margin below resolution" if m < hw else "resolved" if abs(self.mean) > hw else "Δ within noise"
        )
        return [
            f"{label(self.a)} − {label(self.b)}",
            f"{self.group} ({', '.join(self.langs)})",
            f"{self.mean:+.3f}",
            f"±{hw:.3f}",
            "—" if math.isnan(self.seed_sd) else f"{self.seed_sd:.3f}",
            f"{m:.3f}",
            verdict,
        ]


def _seed(*parts: object) -> int:
    """A fixed bootstrap seed per row and seed, so the report rebuilds byte for byte."""
    return zlib.crc32("|".join(map(str, parts)).encode())


def resolve(runs: Runs, exp: str) -> list[Resolution]:
    """Every `PAIRS` row of ``exp`` per language group and per LRL, on seeds with per-item scores."""
    metric, _ = metric_of(exp)
    out: list[Resolution] = []
    for a, b in PAIRS:
        ra = {r.seed: r for r in runs.get(exp, a) if _has_items(r, metric)}
        rb = {r.seed: r for r in runs.get(exp, b) if _has_items(r, metric)}
        seeds = sorted(set(ra) & set(rb))
        if not seeds:
            continue
        g = groups(ra[seeds[0]])
        rows = [(name, g[name]) for name in ("HRL", "LRL") if g[name]] + [(lang, [lang]) for lang in g["LRL"]]
        for name, langs in rows:
            row = Resolution(a, b, name, langs, metric)
            for s in seeds:
                d, se = paired_bootstrap(ra[s], rb[s], langs, metric, seed=_seed(exp, a, b, name, s))
                row.deltas.append(d)
                row.ses.append(se)
                row.reference.append(
                    math.fsum(float(item_metric(rb[s], x, metric)) for x in langs) / len(langs)
                )
            out.append(row)
    return out


def resolution_lines(runs: Runs) -> list[str]:
    """The report's "Test-set resolution" section (empty when no run has per-item scores)."""
    lines: list[str] = []
    for exp in runs.experiments():
        rows = resolve(runs, exp)
        if not rows:
            continue
        metric, _ = metric_of(exp)
        unit = METRIC_UNITS[metric]
        n = {lang: _n_items(r, lang, metric) for r in runs.get(exp, rows[0].a)[:1] for lang in r.sizes()}
        below = sum(r.margin < r.half_width for r in rows)
        lines += [
            f"### {exp}: test-set resolution ({', '.join(f'{k} {v}' for k, v in n.items())} test items; "
            f"{DRAWS} paired resamples per seed)",
            "",
            f"Δ on every test item ({unit}, mean over seeds), its test-set 95% half-width from a paired "
            "bootstrap over test items inside each seed, the seed SD, and the claims' margin "
            f"({MARGINS[metric].percent:g}% of B) in {unit}. {below} of {len(rows)} margins are below "
            "the resolution: a claim judged against such a margin cannot be decided by this test set. "
            + (
                f"Every run of {exp} has per-item scores, so its tables and claims use every test item."
                if runs.whole_test(exp)
                else f"Some runs of {exp} lack per-item scores: its tables and claims use the headline slice."
            ),
            "",
            "| A − B | languages | Δ | test-set ± | seed SD | margin | reading |",
            "|---|---|---|---|---|---|---|",
            *("| " + " | ".join(r.cells()) + " |" for r in rows),
            "",
        ]
    return lines


def resolution_section(runs: Runs) -> str:
    """``## Test-set resolution`` with one table per experiment ("" when no run has per-item scores)."""
    lines = resolution_lines(runs)
    return "\n".join(["## Test-set resolution", "", *lines]).rstrip() if lines else ""
