"""The count step of the exact composition: largest remainder with carried residuals.

One step turns p(t) and the carried residuals into per-domain counts summing to B; repeated, it
keeps every domain's cumulative count within 1 of Σ_t B·p_i(t). `exact_counts` is the numpy
reference; `exact_counts_small` is the same arithmetic in plain Python for fewer than 8 domains
(the hot loop of a seek), bit-identical by construction and by test.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SMALL_K", "exact_counts", "exact_counts_small"]


def exact_counts(p: np.ndarray, batch_size: int, residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-batch counts by largest remainder with carried residuals; returns (counts, new residuals).

    target_i = B·p_i + r_i; counts take ⌊target⌋ or ⌈target⌉ so they sum to B, and
    r_i ← target_i − counts_i. With Σ r = 0 this keeps every domain's cumulative count within
    1 of its cumulative target Σ_t B·p_i(t). Domains with p_i = 0 get nothing; their residual is
    forfeited (reset to 0) so no later batch pays an old debt to a switched-off domain.
    Counts are never negative, whatever the (finite) residuals.
    """
    active = p > 0
    r = np.where(active, residuals, 0.0)
    # keep Σ r = 0 over the active domains (forfeited residuals are spread proportionally)
    r = r - p * r.sum()
    target = batch_size * p + r
    counts = np.maximum(np.floor(target), 0.0)
    counts[~active] = 0.0
    short = batch_size - int(counts.sum())
    if short > 0:
        frac = np.where(active, target - counts, -np.inf)
        order = np.lexsort((np.arange(len(p)), -frac))  # largest remainder, ties by domain order
        k = np.count_nonzero(active)
        counts[order[: min(short, k)]] += 1.0
        short -= min(short, k)
        if short > 0:  # only with pathological residuals: hand out the rest by probability
            counts += np.floor(short * p)
            counts[int(np.argmax(p))] += batch_size - counts.sum()
    while short < 0:  # floors overshoot only when negative targets were clipped to 0
        positive = counts > 0
        frac = np.where(positive, target - counts, np.inf)
        order = np.lexsort((np.arange(len(p)), frac))
        k = min(-short, int(positive.sum()))
        counts[order[:k]] -= 1.0
        short += k
    return counts.astype(np.int64), target - counts


SMALL_K = 8  # numpy sums fewer than 8 floats left to right, so plain Python gives the same bits


def exact_counts_small(
    p: list[float], batch_size: int, residuals: list[float]
) -> tuple[list[int], list[float]] | None:
    """`exact_counts` in plain Python for K < 8 domains (the per-step hot path of a seek): the
    same float operations in the same order, so bit-identical; None for the rare branches
    (clipped or pathological targets), which the caller hands to `exact_counts`.
    """
    r = []
    total = 0.0  # numpy sums fewer than 8 floats left to right from 0.0: the same bits
    for pi, ri in zip(p, residuals, strict=True):
        x = ri if pi > 0 else 0.0
        r.append(x)
        total += x
    b = float(batch_size)
    target, counts = [], []
    floors = active = 0
    for pi, ri in zip(p, r, strict=True):
        x = b * pi + (ri - pi * total)
        c = 0
        if pi > 0:
            if x < 0:
                return None
            c = int(x)  # the floor of a non-negative float
            active += 1
        target.append(x)
        counts.append(c)
        floors += c
    short = batch_size - floors
    if short < 0 or short > active:
        return None
    if short:  # largest remainder, ties by domain order
        live = sorted(
            (c - x, i) for i, (c, x, pi) in enumerate(zip(counts, target, p, strict=True)) if pi > 0
        )
        for _, i in live[:short]:
            counts[i] += 1
    return counts, [x - c for x, c in zip(target, counts, strict=True)]
