"""Share error of streamed mixing by number of lanes (ranks × DataLoader workers), side by side.

Runs `PackedStreams` (tokens) and `StreamMixture` (examples) under layouts of 1, 2, 4 and 8 lanes,
simulated in process (``.lane(rank, world_size, worker, workers)``), sums what all lanes yield per
global step, and reports per domain the largest |realised − target| over the run, where the target
is Σ_{s≤t} (tokens or examples per step)·p_i(s). With ``--before COMMIT`` the same measurement
runs on the streams module of that commit (loaded from git) in the same process, for the ratio.

    python benchmarks/bench_stream_share.py --before 6b1bf4c   # the per-lane mixing before elastic streams
    python benchmarks/bench_stream_share.py --smoke            # seconds: a tiny run for CI
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

import coolmix as cm
from coolmix.integrations import streams as current

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = ((1, 1), (2, 1), (2, 2), (4, 2))


def docs(n: int, seed: int):
    """A generator factory: n documents of token ids, lengths 5..59 (a new pass restarts it)."""

    def factory():
        rng = np.random.default_rng(seed)
        for _ in range(n):
            yield rng.integers(10, 1000, size=int(rng.integers(5, 60))).tolist()

    return factory


def load_before(commit: str) -> types.ModuleType:
    """The streams module (and its state module) of ``commit``, imported under private names."""
    tmp = Path(tempfile.mkdtemp(prefix="coolmix-streams-"))
    for name in ("streams", "stream_state"):
        src = subprocess.run(
            ["git", "show", f"{commit}:src/coolmix/integrations/{name}.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        src = src.replace("from coolmix.integrations.stream_state import", "from _before_stream_state import")
        (tmp / f"_before_{name}.py").write_text(src)
    sys.path.insert(0, str(tmp))
    import _before_streams  # type: ignore[import-not-found]

    return _before_streams


def share_error(mod: types.ModuleType, mode: str, layout: tuple[int, int], steps: int, rows: int, seq: int):
    """Largest |realised − target| per domain over the run, all lanes of ``layout`` together."""
    sizes = {"en": 40_000.0, "sw": 600.0}
    sched = cm.Cooldown(hot=5, cold=1, at=0.5)
    sources = {"en": docs(1000, 0), "sw": docs(20, 1)}
    world, workers = layout
    per_step = np.zeros((steps, 2))
    for r in range(world):
        for w in range(workers):
            if mode == "tokens":
                mixer = mod.PackedStreams(sources, sizes, sched, steps, rows, seq)
            else:
                mixer = mod.StreamMixture(sources, sizes, sched, steps, rows, seed=0)
            for i, b in enumerate(mixer.lane(r, world, w, workers)):
                s = i * workers + w
                if mode == "tokens":
                    per_step[s] += [(b["domain_ids"] == d).sum() for d in range(2)]
                else:
                    per_step[s] += np.bincount([d for _, d in b], minlength=2)
    unit = rows * seq if mode == "tokens" else rows
    probs = np.array([list(sched.probs_at(s, sizes, steps).values()) for s in range(steps)])
    dev = np.abs(np.cumsum(per_step, axis=0) - np.cumsum(unit * probs, axis=0)).max(axis=0)
    return dict(zip(sizes, dev.round(1).tolist(), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a tiny run (seconds), for CI")
    ap.add_argument("--before", default=None, help="a git commit whose streams module to measure beside")
    args = ap.parse_args()
    steps, rows, seq = (6, 8, 16) if args.smoke else (40, 8, 64)
    mods = {"now": current}
    if args.before:
        mods[f"before ({args.before})"] = load_before(args.before)
    shape = f"{steps} steps x {rows} rows (x {seq} tokens)"
    print(f"largest |realised - target| per domain, {shape}, Cooldown 5->1")
    for mode in ("tokens", "examples"):
        for layout in LAYOUTS:
            lanes = layout[0] * layout[1]
            cells = [f"{name}: {share_error(m, mode, layout, steps, rows, seq)}" for name, m in mods.items()]
            print(f"{mode:8s} {lanes} lanes ({layout[0]}x{layout[1]})  " + "  ".join(cells))


if __name__ == "__main__":
    main()
