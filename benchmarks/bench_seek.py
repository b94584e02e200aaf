"""Seek time vs step: `MixtureSampler.batch(t)` cold (first visit) and warm (checkpointed).

- **replay** — what seeking cost before checkpoints: a fresh sampler's ``batch(t)`` runs the
  count step for every step before t (measured up to ``--max-measured``; beyond, the measured
  per-step rate × t, marked ``~``). It is also the cost of a seek's first visit now.
- **seek** — ``batch(t)`` once the sampler has walked past t (in this process, or resumed from
  a ``state_dict`` at or before t): at most ``CHECKPOINT_EVERY`` count steps from the nearest
  checkpoint plus one batch; the median of 50 random steps in [t/2, t].
- **target** — ``cumulative_target(t)``: closed form over the phases for Constant and Cooldown,
  from the checkpoints for the anneal and UniMax-dynamic (after the walk).
- **seekable** — a second table: a fresh ``composition="seekable"`` sampler's cold ``batch(t)``
  (median of 5 fresh samplers) beside the exact mode's cold one, and their ratio. Closed form for
  Constant and Cooldown; the anneal builds its O(t) prefix table once (measured up to
  ``--max-measured``, beyond that rate × t, marked ``~``). UniMax-dynamic cannot seek.

Mixture: the paper's four languages, batch 256. Run (from the repository root; < 1 minute)::

    .venv/bin/python benchmarks/bench_seek.py [--max-measured 100000]
    .venv/bin/python benchmarks/bench_seek.py --smoke     # seconds: steps 10^2 and 10^3 only
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import coolmix as cm
from coolmix.sampler import CHECKPOINT_EVERY

MC4 = {"en": 2733, "it": 162, "zh": 39, "sw": 1}
SCHEDULES = {
    "Constant τ=5": cm.Constant(cm.Temperature(5)),
    "Cooldown 5→1": cm.Cooldown(hot=5, cold=1, at=0.5),
    "Anneal linear 10→1": cm.Anneal(start=10, end=1, shape="linear"),
    "UniMax-dynamic": cm.UniMaxDynamic(max_epochs=4),
}
STEPS = [10**k for k in range(2, 8)]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-measured", type=int, default=100_000, help="largest step walked for real")
    ap.add_argument("--smoke", action="store_true", help="seconds: steps 10^2 and 10^3 only")
    args = ap.parse_args()
    steps = STEPS[:2] if args.smoke else STEPS
    total = max(steps) + 1  # every measured step t, up to max(steps), is a step of the run
    rng = np.random.default_rng(0)
    load = os.getloadavg()[0]
    print(f"host: {os.cpu_count()} CPUs, load {load:.1f}; checkpoint every {CHECKPOINT_EVERY} steps\n")
    print("| schedule | step | replay (cold) | seek (warm) | cumulative_target |")
    print("|---|---:|---:|---:|---:|")
    exact: dict[tuple[str, int], tuple[float, bool]] = {}  # cold exact seek, and whether measured
    for name, sched in SCHEDULES.items():
        rate = None
        for t in steps:
            if t <= args.max_measured:
                s = cm.MixtureSampler(MC4, sched, total_steps=total, batch_size=256, seed=0)
                t0 = time.perf_counter()
                s.batch(t)
                cold = time.perf_counter() - t0
                rate = cold / t
                warm = []
                for u in rng.integers(t // 2, t + 1, size=50):
                    t0 = time.perf_counter()
                    s.batch(int(u))
                    warm.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                s.cumulative_target(t)
                tgt = _ms(time.perf_counter() - t0)
                row = (_ms(cold), _ms(statistics.median(warm)), tgt)
                exact[name, t] = (cold, True)
            else:
                s = cm.MixtureSampler(MC4, sched, total_steps=total, batch_size=256, seed=0)
                closed = s._closed_target(t) is not None
                t0 = time.perf_counter()
                if closed:
                    s.cumulative_target(t)
                tgt = _ms(time.perf_counter() - t0) if closed else "as seek"
                assert rate is not None
                row = (f"~{_ms(rate * t)}", "as above (bounded)", tgt)
                exact[name, t] = (rate * t, False)
            print(f"| {name} | {t:.0e} | {row[0]} | {row[1]} | {row[2]} |")
    seekable_table(exact, total, args.max_measured, steps)


def seekable_table(
    exact: dict[tuple[str, int], tuple[float, bool]], total: int, max_measured: int, steps: list[int]
) -> None:
    """Cold batch(t) of a fresh seekable sampler beside the exact mode's cold seek."""
    print("\n| schedule | step | exact, cold | seekable, cold | exact / seekable |")
    print("|---|---:|---:|---:|---:|")
    for name, sched in SCHEDULES.items():
        if sched.needs_counts:
            continue
        rate = None
        for t in steps:
            if rate is not None and t > max_measured:  # O(t) prefix table: extrapolate
                secs, mark = rate * t, "~"
            else:
                runs = []
                for _ in range(5):
                    s = cm.MixtureSampler(MC4, sched, total, batch_size=256, seed=0, composition="seekable")
                    t0 = time.perf_counter()
                    s.batch(t)
                    runs.append(time.perf_counter() - t0)
                    if runs[-1] > 1:  # one slow run is enough (and says the cost is O(t))
                        break
                secs, mark = statistics.median(runs), ""
                if secs > 0.05:
                    rate = secs / t
            ex, measured = exact[name, t]
            ex_txt = _ms(ex) if measured else f"~{_ms(ex)}"
            print(f"| {name} | {t:.0e} | {ex_txt} | {mark}{_ms(secs)} | {ex / secs:,.0f}× |")


if __name__ == "__main__":
    main()
