"""Paired multi-seed statistics and the one verdict rule every empirical claim uses.

Two methods trained with the same seed share their data order and initialisation, so a
comparison uses the per-seed differences d_s = metric(A, s) − metric(B, s) and their 95%
Student-t interval, mean(d) ± t_{0.975, n−1} · sd(d) / √n. `decide` turns an interval into
PASS / FAIL / INCONCLUSIVE against the claim's margin; nothing else in the package does.
Pure Python + math (no scipy): the t quantile is a numeric inverse of the t CDF.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CONFIDENCE",
    "Interval",
    "Kind",
    "combine",
    "decide",
    "paired_interval",
    "t_cdf",
    "t_quantile",
]

CONFIDENCE = 0.95
"""Two-sided level of every interval in the report."""

Kind = Literal["better", "no_worse", "same"]
"""What a comparison claims about the improvement g of A over B (g > 0: A is better):
``better``: g > 0; ``no_worse``: g > −margin; ``same``: |g| < margin."""

Outcome = Literal["PASS", "FAIL", "INCONCLUSIVE"]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) for x in [0, 1]."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom: 1 − ½·I_{df/(df+t²)}(df/2, ½) for t ≥ 0.

    >>> round(t_cdf(0.0, 3), 6), round(t_cdf(12.7062, 1), 4)
    (0.5, 0.975)
    """
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


@functools.lru_cache(maxsize=256)
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on `t_cdf`, to ~1e-10).

    >>> [round(t_quantile(0.975, n), 4) for n in (1, 2, 4, 9)]
    [12.7062, 4.3027, 2.7764, 2.2622]
    """
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Interval:
    """95% interval of the mean of paired per-seed differences (``lo == hi == mean`` for one seed)."""

    mean: float
    lo: float
    hi: float
    n: int
    sd: float

    def text(self, digits: int = 3, unit: str = "") -> str:
        u = unit if unit in ("", "%") else f" {unit}"
        if self.n < 2:
            return f"{self.mean:+.{digits}f}{u} (1 seed, no interval)"
        return f"{self.mean:+.{digits}f} [{self.lo:+.{digits}f}, {self.hi:+.{digits}f}]{u} (n={self.n})"


def paired_interval(diffs: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """mean(d) ± t_{(1+c)/2, n−1} · sd(d)/√n of per-seed differences ``diffs`` (sd with ddof = 1).

    >>> iv = paired_interval([0.1, 0.2, 0.3])
    >>> round(iv.mean, 3), round(iv.lo, 3), round(iv.hi, 3)
    (0.2, -0.048, 0.448)
    """
    n = len(diffs)
    if n == 0:
        raise ValueError("paired_interval needs at least one difference")
    mean = math.fsum(diffs) / n
    if n == 1:
        return Interval(mean, mean, mean, 1, math.nan)
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, sd)


def decide(interval: Interval, kind: Kind, margin: float) -> Outcome:
    """The one verdict rule, on the interval of the improvement g of A over B (g > 0: A better).

    - ``better``: PASS if lo > margin, FAIL if hi < margin (usually margin = 0).
    - ``no_worse``: PASS if lo > −margin (entirely within the margin or better), FAIL if hi < −margin.
    - ``same``: PASS if −margin < lo and hi < margin; FAIL if the interval lies entirely outside.
    Otherwise, and always with one seed, INCONCLUSIVE.

    >>> decide(Interval(0.2, 0.1, 0.3, 3, 0.05), "better", 0.0)
    'PASS'
    >>> decide(Interval(0.2, 0.2, 0.2, 1, 0.0), "better", 0.0)
    'INCONCLUSIVE'
    """
    if interval.n < 2 or math.isnan(interval.lo) or math.isnan(interval.hi):
        return "INCONCLUSIVE"
    lo, hi = interval.lo, interval.hi
    if kind == "same":
        if -margin < lo and hi < margin:
            return "PASS"
        return "FAIL" if lo > margin or hi < -margin else "INCONCLUSIVE"
    threshold = margin if kind == "better" else -margin
    if lo > threshold:
        return "PASS"
    return "FAIL" if hi < threshold else "INCONCLUSIVE"


def combine(outcomes: Iterable[str]) -> str:
    """Verdict of a conjunction of comparisons: PASS if all pass, FAIL if any fails, else INCONCLUSIVE."""
    got = list(outcomes)
    if not got:
        return "INCONCLUSIVE"
    if "FAIL" in got:
        return "FAIL"
    return "PASS" if all(o == "PASS" for o in got) else "INCONCLUSIVE"


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> tuple[list[int], list[float]]:
    """Seeds present in both ``a`` and ``b`` (sorted) and the differences a[s] − b[s]."""
    seeds = sorted(set(a) & set(b))
    return seeds, [a[s] - b[s] for s in seeds]
