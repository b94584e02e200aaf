"""The seekable composition: per-batch counts as a pure function of the step (O(1) seek).

``MixtureSampler(..., composition="seekable")`` replaces the exact composition's sequential
count recursion by a closed form of the cumulative target. Let X_i(s) = Σ_{u<s} B·p_i(u) at
integer steps s, extended linearly inside a step: X_i(s + f) = X_i(s) + f·B·p_i(s), f ∈ [0, 1).
Domain i's j-th item (j = 0, 1, ...) *arrives* when X_i crosses j + 1/2 — the Sainte-Laguë
(Webster) divisor method applied to the running target, which is house-monotone, so there is no
Alabama paradox and no negative count. All arrivals, ordered by the key (segment s, time within
the segment, domain), form the global stream; batch t is its ranks [t·B, (t+1)·B).

- F(s) = Σ_i ⌊X_i(s) + 1/2⌋ arrivals precede integer time s; F is non-decreasing, and
  |F(s) − s·B| <= k/2, so the ranks of batch t lie in the few segments around t (found by a
  search over a small window of steps, widened until it brackets them).
- In segment s domain i has arrivals j = ⌊X_i(s)+1/2⌋ .. ⌊X_i(s+1)+1/2⌋ − 1 at within-segment
  time (j + 1/2 − X_i(s)) / (B·p_i(s)) (clamped into [0, 1)); the cursors at the start of step
  t are C_i(t) = ⌊X_i(s_a)+1/2⌋ + (domain-i arrivals of segment s_a before rank t·B), with
  s_a = max{s : F(s) <= t·B}; the counts of batch t are C(t+1) − C(t) >= 0, summing to B.

So `cursors_at` costs O(#phases + B log B) with no state (`PiecewiseTarget`, for piecewise-constant
schedules) or O(B log B + `BLOCK`) after a one-off O(t) prefix table (`PrefixTarget`, for
continuous ones such as `Anneal`, built from vectorised `Schedule.probs_rows`). X is float64,
but every quantity is a deterministic function of s and X is non-decreasing in s, so the stream
is self-consistent and the cursors are exact integers; steps are limited to t·B <= `MAX_ITEMS`
so that X keeps 1/16 of an item of precision.

**Bound.** (One schedule, no mid-run change.) Fix t, let T* be the time of the arrival of rank
t·B (the first one not yet drawn) and e_i = C_i(t) − X_i(T*). Arrivals before T* are drawn,
those after are not, so ⌈X_i(T*) − 1/2⌉ <= C_i(t) <= ⌊X_i(T*) + 1/2⌋: e_i ∈ [−1/2, 1/2]. Since
Σ_i p_i = 1, Σ_i X_i(T*) = B·T* and Σ_i C_i(t) = t·B, so Σ_j e_j = B·(t − T*) and
|T* − t| <= k/(2B). With p̄_i the mean of p_i(u) over u between t and T*,
X_i(T*) − X_i(t) = p̄_i·B·(T* − t) = −p̄_i·Σ_j e_j, hence

    C_i(t) − X_i(t) = (1 − p̄_i)·e_i − p̄_i·Σ_{j≠i} e_j,   |C_i(t) − X_i(t)| <= (1 + (k − 2)·p̄_i) / 2,

and p̄_i <= max p_i(s) over the steps s that meet [t − k/(2B), t + k/(2B)]. For a constant p this
is (1 + (k−2)·p_i)/2: within 1/2 for k = 2, within 1 for k <= 3 and whenever p_i <= 1/(k−2), and
at most (k − 1)/2 in general (k counts the domains with X_i(T*) > 0; the others have e_i = 0).
The constant is sharp: e_i = 1/2 with every other e_j = −1/2 is approached (brute force over
small mixtures, `tests/core/test_seekable.py`). Compared with ``"exact"`` (largest remainder
with carried residuals: within 1 for every k, but sequential, so a cold seek replays every step
before it) and ``"iid"`` (O(1) per slot, but C_i − X_i grows like √(t·B·p_i)), "seekable" trades
the "within 1" guarantee for k >= 4 and large p_i (e.g. k = 4, p_i = 0.9: 1.4) for an O(1) seek.

**Mid-run changes.** `set_schedule` and `record_event` at produced step t_e start an *epoch*
anchored at (t_e, A = C(t_e)): from then on the stream is every arrival j >= A_i of the new
target, in the same key order, from rank t_e·B. Batches before t_e are unchanged; re-anchoring
a stream at one of its own steps with its own cursors is the identity (what `load_state_dict`
does), so resume stays exact. In an epoch e_i ∈ [−1/2, max(1/2, A_i − X_i(T*))]: a domain that
was drawn ahead of its new target waits until the target catches up, and the bound above holds
again once every domain's target has passed A_i − 1/2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from coolmix.errors import ConfigError
from coolmix.schedules import Context, Schedule, cuts

__all__ = [
    "BLOCK",
    "MAX_ITEMS",
    "PiecewiseTarget",
    "PrefixTarget",
    "Target",
    "arrivals",
    "batch_cursors",
    "build_target",
    "cursors_at",
    "piecewise_grid",
    "piecewise_target",
    "slot_domains",
]

MAX_ITEMS = 2**48
"""Largest t·B the seekable stream serves (float64 targets keep 2^-4 items of precision there)."""

BLOCK = 64
"""Steps between the snapshots of a `PrefixTarget` (a seek sums at most this many p(s) rows)."""

_BELOW_ONE = float(np.nextafter(1.0, 0.0))


class Target:
    """The cumulative target X(s) (rows: steps, columns: domains) and p(s) over a window of steps."""

    batch_size: int
    k: int

    def window(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(X, P): X[r] = X(lo + r) and P[r] = p(lo + r) for r = 0 .. hi − lo, float64 (rows, k)."""
        raise NotImplementedError


class PiecewiseTarget(Target):
    """Closed form for piecewise-constant p: X(s) = X(c_j) + ((s − c_j)·B)·p(c_j), c_j <= s < c_{j+1}.

    ``cuts`` start at 0 and include every step where p may change; X(c_{j+1}) is the same
    expression evaluated at s = c_{j+1}, so X is non-decreasing across the cuts too.

    >>> x = PiecewiseTarget([0, 10], np.array([[0.5, 0.5], [0.9, 0.1]]), batch_size=4)
    >>> x.window(9, 11)[0].tolist()
    [[18.0, 18.0], [20.0, 20.0], [23.6, 20.4]]
    """

    def __init__(self, cuts: Sequence[int], probs: np.ndarray, batch_size: int) -> None:
        self.batch_size = batch_size
        self.cuts = np.asarray(cuts, dtype=np.int64)
        self.probs = np.asarray(probs, dtype=np.float64)
        self.k = self.probs.shape[1]
        base = np.zeros_like(self.probs)
        for j in range(1, len(self.cuts)):
            base[j] = self._at(base[j - 1], self.cuts[j] - self.cuts[j - 1], self.probs[j - 1])
        self.base = base

    def _at(self, base: np.ndarray, offset: np.ndarray | np.int64, p: np.ndarray) -> np.ndarray:
        """The one expression every X(s) goes through (so the same s always gives the same bits)."""
        return base + (np.asarray(offset, dtype=np.int64) * self.batch_size).astype(np.float64)[..., None] * p

    def window(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        s = np.arange(lo, hi + 1, dtype=np.int64)
        j = np.searchsorted(self.cuts, s, side="right") - 1
        return self._at(self.base[j], s - self.cuts[j], self.probs[j]), self.probs[j]


class PrefixTarget(Target):
    """X(s) for any p(s): the running sum X(s+1) = X(s) + B·p(s), left to right from X(0) = 0.

    Snapshots of X every `BLOCK` steps are built lazily (O(t) calls of ``probs`` once); a window
    re-sums at most `BLOCK` rows from the snapshot before it, in the same order, so X(s) has the
    same bits however it is reached.
    """

    def __init__(self, rows: Callable[[int, int], np.ndarray], k: int, batch_size: int) -> None:
        self.batch_size, self._rows, self.k = batch_size, rows, k
        self._snaps = np.zeros((1, k))  # X(b·BLOCK) for b < len
        self._built = 1

    def _run(self, x0: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """X(start .. stop) from x0 = X(start) and P = p(start .. stop) (stop included)."""
        P = self._rows(start, stop + 1)  # p(start .. stop), vectorised where the schedule can
        X = np.cumsum(np.vstack([x0[None, :], self.batch_size * P[:-1]]), axis=0)  # sequential adds
        return X, P

    def _extend(self, blocks: int) -> None:
        while self._built < blocks:
            b = self._built
            n = min(blocks - b, 1024)  # blocks per chunk: bounded memory for the P rows
            X, _ = self._run(self._snaps[b - 1], (b - 1) * BLOCK, (b - 1 + n) * BLOCK)
            if len(self._snaps) < b + n:
                grown = np.zeros((max(2 * len(self._snaps), b + n), self._snaps.shape[1]))
                grown[: self._built] = self._snaps[: self._built]
                self._snaps = grown
            self._snaps[b : b + n] = X[BLOCK::BLOCK][:n]
            self._built = b + n

    def window(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        b = lo // BLOCK
        self._extend(b + 1)
        X, P = self._run(self._snaps[b], b * BLOCK, hi)
        return X[lo - b * BLOCK :], P[lo - b * BLOCK :]


def piecewise_grid(
    schedules: Sequence[tuple[int, Schedule]], ctx: Context, upto: int | None = None
) -> list[int] | None:
    """The steps where p may change (0, each schedule's start, its breakpoints), sorted; None if
    a piece in force before ``upto`` (every piece when None) is not piecewise-constant."""
    grid = {0}
    for j, (start, sched) in enumerate(schedules):
        end = schedules[j + 1][0] if j + 1 < len(schedules) else None
        if (upto is not None and start >= upto) or (end is not None and end <= start):
            grid.add(start)
            continue  # never in force before ``upto`` (or replaced at the step it started)
        bp = cuts(sched, ctx)
        if bp is None:
            return None
        grid |= {start, *bp}
    return sorted(c for c in grid if c >= 0 and (upto is None or c <= upto))


def piecewise_target(
    schedules: Sequence[tuple[int, Schedule]], ctx: Context, batch_size: int, upto: int | None = None
) -> PiecewiseTarget | None:
    """The closed-form target of a schedule list, exact up to ``upto`` (everywhere when None), or
    None where `piecewise_grid` finds a piece that is not piecewise-constant."""
    grid = piecewise_grid(schedules, ctx, upto)
    if grid is None:
        return None

    def probs(step: int) -> np.ndarray:
        sched = next(s for start, s in reversed(schedules) if start <= step)
        return sched.probs(step, ctx)

    return PiecewiseTarget(grid, np.array([probs(c) for c in grid], dtype=np.float64), batch_size)


def build_target(schedules: Sequence[tuple[int, Schedule]], ctx: Context, batch_size: int) -> Target:
    """The target of a schedule list ``[(start step, schedule), ...]`` (each in force from its
    start) under ``ctx`` (its events are a snapshot): closed form if every piece is
    piecewise-constant, else a prefix table. Exposure-driven schedules are refused.
    """
    schedules = tuple(schedules)
    if any(s.needs_counts for _, s in schedules):
        raise ConfigError("composition", "seekable", "the schedule needs exposure (realised counts)")
    closed = piecewise_target(schedules, ctx, batch_size)
    if closed is not None:
        return closed

    def rows(lo: int, hi: int) -> np.ndarray:
        """p(lo .. hi − 1), each stretch from the schedule in force (`Schedule.probs_rows`)."""
        starts = [start for start, _ in schedules]
        parts = []
        for j, (start, sched) in enumerate(schedules):
            end = starts[j + 1] if j + 1 < len(schedules) else hi
            a, b = max(lo, start), min(hi, end)
            if a < b:
                parts.append(sched.probs_rows(a, b, ctx))
        return np.vstack(parts) if parts else np.zeros((0, len(ctx.names)))

    return PrefixTarget(rows, len(ctx.names), batch_size)


def _bracket(
    target: Target, first: int, last: int, anchor_step: int, anchor: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A window [lo, hi] of steps with F(lo) <= first and F(hi) > last, and X, P, G, F over it.

    G[r, i] = max(⌊X_i(lo+r) + 1/2⌋ − A_i, 0) counts domain i's arrivals j >= A_i before step
    lo + r; F = anchor_step·B + Σ_i G (the global rank of the next arrival).
    """
    B, k = target.batch_size, len(anchor)
    pad = -(-k // (2 * B)) + 2
    lo, hi = max(0, first // B - pad), last // B + pad + 1
    while True:
        X, P = target.window(lo, hi)
        G = np.maximum(np.floor(X + 0.5).astype(np.int64) - anchor, 0)
        F = anchor_step * B + G.sum(axis=1)
        if F[0] > first and lo > 0:
            lo = max(0, lo - 2 * (hi - lo))
        elif F[-1] <= last:
            hi += 2 * (hi - lo)
        else:
            return lo, X, P, G, F


def arrivals(
    X: np.ndarray, P: np.ndarray, G: np.ndarray, anchor: np.ndarray, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The arrivals of the segments between the rows of a window, in stream order.

    Returns (segment row r, domain) per arrival, sorted by (r, time within the segment, domain):
    domain i's arrivals in segment r are j = A_i + G[r, i] .. A_i + G[r+1, i] − 1 at time
    (j + 1/2 − X_i) / (B·p_i), clamped into [0, 1); equal keys keep the order of j.
    """
    n = (G[1:] - G[:-1]).ravel()
    rows, k = G.shape[0] - 1, G.shape[1]
    cell = np.repeat(np.arange(rows * k), n)
    r, dom = np.divmod(cell, k)
    j = anchor[dom] + G[r, dom] + (np.arange(len(cell)) - np.repeat(np.cumsum(n) - n, n))
    rate = batch_size * P[r, dom]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(rate > 0, (j + 0.5 - X[r, dom]) / rate, 0.0)
    f = np.clip(f, 0.0, _BELOW_ONE)
    order = np.lexsort((dom, f, r))  # stable: equal keys keep j order
    return r[order], dom[order]


def _cursors(
    rank: int, X: np.ndarray, P: np.ndarray, G: np.ndarray, F: np.ndarray, anchor: np.ndarray, B: int
) -> np.ndarray:
    """C(rank): items drawn per domain before global rank ``rank`` (it lies in segment row a)."""
    a = int(np.searchsorted(F, rank, side="right")) - 1
    c = anchor + G[a]
    m = rank - int(F[a])
    if m:
        _, dom = arrivals(X[a : a + 2], P[a : a + 2], G[a : a + 2], anchor, B)
        c = c + np.bincount(dom[:m], minlength=len(anchor))
    return c


def _check(step: int, B: int, anchor_step: int) -> None:
    if (step + 1) * B > MAX_ITEMS:
        raise ConfigError("step", step, f"composition='seekable' serves step·batch_size <= 2**48 (B={B})")
    if step < anchor_step:
        raise ConfigError("step", step, f"before the epoch's anchor step {anchor_step}")


def cursors_at(
    target: Target, step: int, anchor_step: int = 0, anchor: np.ndarray | None = None
) -> np.ndarray:
    """C(step): items of each domain in batches 0 .. step−1 (int64), a pure function of the step.

    ``anchor`` (cursors at ``anchor_step``, default 0 at 0) starts the stream at an epoch.

    >>> x = PiecewiseTarget([0], np.array([[0.75, 0.25]]), batch_size=2)
    >>> [cursors_at(x, t).tolist() for t in range(4)]
    [[0, 0], [2, 0], [3, 1], [5, 1]]
    """
    B = target.batch_size
    a = np.zeros(target.k, dtype=np.int64) if anchor is None else anchor
    _check(step, B, anchor_step)
    X, P, G, F = _bracket(target, step * B, step * B, anchor_step, a)[1:]
    return _cursors(step * B, X, P, G, F, a, B)


def batch_cursors(
    target: Target, step: int, anchor_step: int, anchor: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(C(step), C(step+1)) from one window: batch ``step`` has C(step+1) − C(step) items per domain."""
    B = target.batch_size
    _check(step, B, anchor_step)
    X, P, G, F = _bracket(target, step * B, (step + 1) * B, anchor_step, anchor)[1:]
    return _cursors(step * B, X, P, G, F, anchor, B), _cursors((step + 1) * B, X, P, G, F, anchor, B)


def slot_domains(target: Target, step: int, anchor_step: int, anchor: np.ndarray) -> np.ndarray:
    """The domains of batch ``step`` in stream (arrival) order; the sampler shuffles its slots."""
    B = target.batch_size
    _check(step, B, anchor_step)
    X, P, G, F = _bracket(target, step * B, (step + 1) * B, anchor_step, anchor)[1:]
    a = int(np.searchsorted(F, step * B, side="right")) - 1
    b = int(np.searchsorted(F, (step + 1) * B, side="left"))
    _, dom = arrivals(X[a : b + 1], P[a : b + 1], G[a : b + 1], anchor, B)
    first = step * B - int(F[a])
    return dom[first : first + B]
