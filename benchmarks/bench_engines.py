"""Building a global blend index side by side: coolmix `GlobalIndex`, Megatron's C++ helper, Grain's map.

Each system maps global sample g -> (dataset, index) for the first N samples at a constant τ = 5
over the same weights p ∝ n^(1/5):

- **coolmix** — ``GlobalIndex(MixtureSampler(sizes, 5.0, ⌈N/B⌉, B)).build(N)``: domain ids and
  permuted items (without-replacement passes), numpy only, B = 1024 (the global batch);
- **Megatron** — ``megatron.core.datasets.helpers_cpp.build_blending_indices`` (what
  ``BlendedDataset`` calls): dataset ids and per-dataset draw counters (GPTDataset shuffles later);
- **Grain** — the selection map that ``grain.MapDataset.mix(parents, weights)`` builds
  (``SelectionWithProportionsMap``, reached as the mixed dataset's ``_selection_map``), one call per
  sample (it has no bulk API), on fewer samples where it would take hours (the count is printed).

Reported per system: CPU seconds per sample (``time.process_time``: the host is shared, so wall
time is printed too; nothing is traced while timing), peak memory (the rise of the resident
high-water mark during the build, reset before it), and the worst prefix-count error
max_{n,d} |count_d(n) − n·p_d|, over every sample prefix and over batch boundaries n = t·B
(coolmix's guarantee: < 1 there; it shuffles inside a batch). Then coolmix alone: a piecewise
(Cooldown 5→1) and a continuous (Anneal 10→1) schedule, which the others cannot build, and a
restart from the cache (``cache_dir``: map the files).

Run (repository root, engines venv; single process, minutes)::

    .venv-engines/bin/python benchmarks/bench_engines.py                 # N = 10^8
    .venv-engines/bin/python benchmarks/bench_engines.py --smoke         # seconds (N = 10^5)

Without megatron-core or grain installed their rows are skipped (coolmix still measured).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

import coolmix as cm
from coolmix.global_index import GlobalIndex

TAU, B = 5.0, 1024
MIXTURES = {
    "mc4": {"en": 2_733_000_000, "it": 162_000_000, "zh": 39_000_000, "sw": 1_000_000},
    "zipf1000": {f"l{i}": 10**9 // i for i in range(1, 1001)},
}


def worst_prefix_error(
    dom: np.ndarray, p: np.ndarray, every: int = 1, chunk: int = 2**24, order: np.ndarray | None = None
) -> float:
    """max over prefixes n (multiples of ``every``) and domains d of |count_d(n) − n·p_d|.

    f_d(n) = count_d(n) − n·p_d only rises at a boundary that closes a batch holding a d, and only
    falls in between, so its extremes sit at the boundary after the last d of a batch (exact count
    j + 1) and at the boundary before the first d of a batch (exact count j): O(N log N) in total.
    """
    n_all, k = len(dom) - len(dom) % every, len(p)  # boundaries only: a trailing partial batch is not one
    if order is None:
        order = np.argsort(dom, kind="stable")  # positions grouped by domain, ascending within
    if n_all < len(dom):
        order = order[order < n_all]
    dom = dom[:n_all]
    counts = np.bincount(dom, minlength=k)
    worst = float(np.abs(counts - n_all * p).max())  # n = N (and domains never drawn)
    starts = np.cumsum(counts) - counts
    for a in range(0, n_all, chunk):
        lo_i, hi_i = max(a - 1, 0), min(a + chunk + 1, n_all)  # one element of context on each side
        pos = order[lo_i:hi_i]
        d = dom[pos].astype(np.int64)
        j = np.arange(lo_i, hi_i) - starts[d]  # occurrence number of d at pos
        batch = pos // every
        edge = np.ones(len(pos) + 1, dtype=bool)  # edge[i]: a (domain, batch) group starts at i
        edge[1:-1] = (d[1:] != d[:-1]) | (batch[1:] != batch[:-1])
        first, last = edge[:-1], edge[1:]
        keep = slice(a - lo_i, a - lo_i + min(chunk, n_all - a))
        after = np.minimum((batch + 1) * every, n_all)
        up = (j + 1 - after * p[d])[keep][last[keep]]
        down = (j - (batch * every) * p[d])[keep][first[keep]]
        worst = max(worst, float(np.abs(up).max(initial=0.0)), float(np.abs(down).max(initial=0.0)))
    return worst


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """(result, CPU s, wall s, peak MB) of one call. Peak: the rise of the resident high-water mark
    (reset first through /proc/self/clear_refs), so nothing is traced during the timing; where
    /proc cannot do that, a second traced call (tracemalloc) gives it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        base = _status_mb("VmRSS")
    except OSError:
        base = None
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    hwm = _status_mb("VmHWM")
    if base is not None and hwm is not None:
        return out, cpu, wall, hwm - base
    del out
    tracemalloc.start()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, cpu, wall, peak


def errors(dom: np.ndarray, p: np.ndarray) -> tuple[str, str]:
    """Worst prefix error over every sample and over batch boundaries (one sort for both)."""
    order = np.argsort(dom, kind="stable")
    return fmt(worst_prefix_error(dom, p, 1, order=order)), fmt(worst_prefix_error(dom, p, B, order=order))


def coolmix_build(sizes: dict[str, int], schedule: Any, n: int, cache_dir: str | None = None) -> np.ndarray:
    s = cm.MixtureSampler(sizes, schedule, total_steps=-(-n // B), batch_size=B, seed=0)
    d, _ = GlobalIndex(s, cache_dir=cache_dir).build(n)
    return d


def megatron_build(p: np.ndarray, n: int) -> np.ndarray:
    from megatron.core.datasets import helpers_cpp

    dataset_index = np.zeros(n, dtype=np.int16)
    sample_index = np.zeros(n, dtype=np.int64)
    helpers_cpp.build_blending_indices(dataset_index, sample_index, p.tolist(), len(p), n, False)
    return dataset_index


def grain_build(p: np.ndarray, n: int) -> np.ndarray:
    import grain

    sizes = np.ceil(p * n).astype(int) + 1  # parents long enough for n samples
    mixed = grain.MapDataset.mix([grain.MapDataset.range(int(m)) for m in sizes], p.tolist())
    sel = mixed._selection_map  # the SelectionWithProportionsMap that MapDataset.mix built
    out = np.zeros(n, dtype=np.int16)
    for g in range(n):
        out[g] = sel[g][0]
    return out


def have(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def row(
    name: str, mixture: str, n: int, cpu: float, wall: float, peak: float, errs: tuple, base: float | None
) -> None:
    per = cpu / n * 1e9
    ratio = "" if base is None else f"{per / base:.2f}"
    e1, eb = errs
    print(
        f"| {name} | {mixture} | {n:,} | {per:,.1f} | {wall / n * 1e9:,.1f} | {ratio} | {peak:,.0f} "
        f"| {e1} | {eb} |",
        flush=True,
    )


def fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10**8, help="N, the index length")
    ap.add_argument("--grain-samples", type=int, default=10**7, help="Grain calls at 4 datasets (per-call)")
    ap.add_argument("--grain-samples-1000", type=int, default=20_000, help="Grain calls at 1,000 datasets")
    ap.add_argument("--smoke", action="store_true", help="seconds: N = 10^5, Grain 10^3 / 200 calls")
    args = ap.parse_args()
    if args.smoke:
        args.samples, args.grain_samples, args.grain_samples_1000 = 10**5, 1000, 200
    n = args.samples
    engines = {m: have(m) for m in ("megatron.core.datasets.helpers_cpp", "grain")}
    print(f"host: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; N = {n:,}, B = {B}, τ = {TAU}; "
          f"numpy {np.__version__}")
    for mod, ok in engines.items():
        if not ok:
            print(f"skipped: {mod} is not installed (pip install -e '.[engines]')")
    print("\n| system | mixture | samples | CPU ns/sample | wall ns/sample | × Megatron (CPU) | peak RSS MB "
          "| worst error, every prefix | worst error, batch boundaries |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for mixture, sizes in MIXTURES.items():
        p = np.array(list(cm.temperature_probs(sizes, TAU).values()))
        base = None
        if engines["megatron.core.datasets.helpers_cpp"]:
            dom, cpu, wall, peak = measure(lambda p=p: megatron_build(p, n))
            base = cpu / n * 1e9
            errs = errors(dom, p)
            row("Megatron `build_blending_indices` (C++)", mixture, n, cpu, wall, peak, errs, base)
            del dom
        dom, cpu, wall, peak = measure(lambda sizes=sizes: coolmix_build(sizes, TAU, n))
        errs = errors(dom, p)
        row("coolmix `GlobalIndex.build` (numpy), constant τ", mixture, n, cpu, wall, peak, errs, base)
        del dom
        if engines["grain"]:
            m = args.grain_samples if len(sizes) < 100 else args.grain_samples_1000
            m = min(m, n)
            dom, cpu, wall, peak = measure(lambda p=p, m=m: grain_build(p, m))
            errs = errors(dom, p)
            row("Grain selection map (`MapDataset.mix`), per call", mixture, m, cpu, wall, peak, errs, base)
            del dom
        for label, sched in (
            ("Cooldown 5→1 at 50%", cm.Cooldown(hot=TAU, cold=1.0, at=0.5)),
            ("Anneal linear 10→1", cm.Anneal(start=10.0, end=1.0, shape="linear")),
        ):
            dom, cpu, wall, peak = measure(lambda sizes=sizes, sched=sched: coolmix_build(sizes, sched, n))
            row(f"coolmix `GlobalIndex.build`, {label}", mixture, n, cpu, wall, peak, ("—", "—"), base)
            del dom
        cache = tempfile.mkdtemp(prefix="coolmix-bench-index-")
        try:
            _, cpu_w, wall_w, _ = measure(lambda sizes=sizes, c=cache: coolmix_build(sizes, TAU, n, c))
            dom, cpu, wall, peak = measure(lambda sizes=sizes, c=cache: coolmix_build(sizes, TAU, n, c))
            assert dom.shape == (n,)
            first = f"first build + write: {cpu_w:.1f} s CPU, {wall_w:.1f} s wall"
            ratio = "" if base is None else f"{cpu / n * 1e9 / base:.3f}"
            print(
                f"| coolmix restart from the cache ({first}) | {mixture} | {n:,} | {cpu / n * 1e9:,.2f} "
                f"| {wall / n * 1e9:,.2f} | {ratio} | {peak:,.0f} | — | — |",
                flush=True,
            )
            del dom
        finally:
            shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
