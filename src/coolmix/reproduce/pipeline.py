"""`reproduce(preset)`: run the experiments, measure the theory, write the report."""

from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

from coolmix.fileio import read_bytes, regular_or_missing, write_atomic_text
from coolmix.reproduce import theory as th
from coolmix.reproduce.report import write_report
from coolmix.reproduce.results import record_sizes
from coolmix.reproduce.runner import Progress, RunResult, run_preset
from coolmix.reproduce.specs import PAPER_MIXTURES, Preset, preset
from coolmix.train.provenance import git_commit
from coolmix.train.rundir import RunLock

__all__ = ["reproduce"]

THEORY_VERSION = 8  # bump when the layout of theory.json changes


def reproduce(
    name: str = "quick",
    out: str | Path = "reproduce_out",
    *,
    force: bool = False,
    overrides: tuple[str, ...] = (),
    only: tuple[str, ...] = (),
    seeds: tuple[int, ...] = (),
    workers: int | None = None,
    progress: Progress | None = None,
) -> Path:
    """Run preset ``name`` into ``out`` (finished runs are reused unless ``force``); returns report.md."""
    p = preset(name, overrides, only, seeds)
    out = Path(out)
    progress = progress or Progress()
    t0 = time.perf_counter()
    with RunLock(out, "coolmix reproduce"):  # one reproduce per folder, as one train per run folder
        results = run_preset(p, out, force=force, workers=workers, progress=progress)
        # the report covers exactly these runs (older runs of edited configs stay cached but unlisted)
        write_atomic_text(
            out / "runs.json",
            json.dumps(sorted(r.dir.relative_to(out).as_posix() for r in results.values()), indent=1),
            "runs.json",
        )
        progress.note("measuring the theory (Theorem 1, F(τ), gradient variance)")
        theory = compute_theory(p, out, results, force, progress)
        write_atomic_text(out / "theory.json", json.dumps(theory, indent=1, default=str), "theory.json")
        meta = {
            "preset": p.name,
            "experiments": [e.key for e in p.experiments],
            "overrides": list(overrides),
            "git_commit": git_commit(Path(__file__).parent),
            "seeds": sorted({s for e in p.experiments for s in e.all_seeds}),
            "machine": f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}",
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "runs_trained": sum(not r.cached for r in results.values()),
            "runs_cached": sum(r.cached for r in results.values()),
            "notes": list(p.notes),
        }
        write_atomic_text(out / "preset.json", json.dumps(meta, indent=1), "preset.json")
        progress.note("writing the report")
        return write_report(out)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def compute_theory(
    p: Preset, out: Path, results: dict[str, RunResult], force: bool = False, progress: Progress | None = None
) -> dict[str, Any]:
    """Theory measurements (cached in ``theory.json`` next to the runs they were computed from)."""
    import torch

    from coolmix.train import DataCache

    cached = out / "theory.json"
    ref = _checkpoint(results, p, "tau1")
    hot = _checkpoint(results, p, "tau5")
    key = str(ref.dir) if ref else None
    key5 = str(hot.dir) if hot else None
    old = None if force else _cached_theory(cached, progress)
    if (
        old is not None
        and (
            old.get("version") == THEORY_VERSION
            and old.get("source") == key
            and old.get("source_tau5") == key5
            and old.get("variance_examples") == p.variance_examples
            and isinstance(old.get("theorem1", {}), dict)
            and old.get("theorem1", {}).get("steps", p.theorem1_steps) == p.theorem1_steps
        )
    ):
        return old
    mixtures: dict[str, Any] = dict(PAPER_MIXTURES)
    for r in results.values():
        if r.spec.role == "main" and r.spec.seed == p.experiments[0].all_seeds[0]:
            mixtures.setdefault(f"{r.spec.experiment} (ours)", record_sizes(r.record))
    theory: dict[str, Any] = {
        "version": THEORY_VERSION,
        "source": key,
        "source_tau5": key5,
        "variance_examples": p.variance_examples,
        "fig2": th.fig2_table(),
        "inflation": th.inflation_checks(mixtures),
    }
    if ref is not None:
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, _cores()))
        try:
            cache = DataCache()
            theory["theorem1"] = th.theorem1_real(ref.dir, cache, steps=p.theorem1_steps)
            # E3/T3 at both ends of the comparison: the τ=1 and the τ=5 checkpoints
            theory["variance"] = th.gradient_variance(ref.dir, cache, p.variance_examples)
            if hot is not None:
                theory["variance_tau5"] = th.gradient_variance(hot.dir, cache, p.variance_examples)
        finally:
            torch.set_num_threads(threads)
    return theory


def _cached_theory(path: Path, progress: Progress | None) -> dict[str, Any] | None:
    """The cached ``theory.json`` if it is a JSON object; a damaged one is said and recomputed
    (None), a link, FIFO or device in its place is a `ConfigError`."""
    if not regular_or_missing(path, "theory.json"):
        return None
    try:
        old = json.loads(read_bytes(path, "theory.json").decode("utf-8"))
    except (ValueError, RecursionError):
        old = None
    if isinstance(old, dict):
        return old
    note = "recomputing the theory: theory.json is damaged (truncated or not a JSON object)"
    logging.getLogger("coolmix").warning(note)
    if progress is not None:
        progress.note(note)
    return None


def _checkpoint(results: dict[str, RunResult], p: Preset, method: str) -> RunResult | None:
    """The first seed's ``method`` run of the LM experiment (else of any experiment)."""
    mains = [r for r in results.values() if r.spec.method == method and r.spec.role == "main"]
    mains.sort(key=lambda r: (r.spec.experiment != "lm", r.spec.seed))
    return mains[0] if mains else None
