"""Read finished runs back: final records and metric curves, grouped by experiment and method."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Runs", "load_runs", "mean_std", "record_sizes"]


@dataclass(frozen=True)
class Run:
    """One finished run: its ids, final record and eval curve (one metrics record per eval)."""

    experiment: str
    method: str
    role: str
    seed: int
    dir: Path
    final: Mapping[str, Any]
    curve: tuple[Mapping[str, Any], ...]

    def dev(self, lang: str, metric: str = "loss") -> float:
        return float(self.final["dev"][metric][lang])

    def test(self, lang: str, metric: str = "loss") -> float:
        split = self.final.get("test") or self.final["dev"]
        return float(split[metric][lang])

    def series(self, lang: str, split: str = "dev", metric: str = "loss") -> tuple[np.ndarray, np.ndarray]:
        pts = [
            (r["step"], r[split][metric][lang])
            for r in self.curve
            if split in r and lang in r[split].get(metric, {})
        ]
        if not pts:
            return np.zeros(0), np.zeros(0)
        s, v = zip(*pts)
        return np.array(s, dtype=float), np.array(v, dtype=float)

    def sizes(self) -> dict[str, float]:
        return record_sizes(self.final)

    def best(self, lang: str) -> tuple[float, float]:
        """(best dev loss, its step)."""
        s, v = self.series(lang)
        i = int(np.argmin(v))
        return float(v[i]), float(s[i])


class Runs:
    """All finished runs of an output folder, indexed by (experiment, method)."""

    def __init__(self, runs: Sequence[Run]) -> None:
        self.runs = list(runs)

    def get(self, experiment: str, method: str, role: str = "main") -> list[Run]:
        return sorted(
            (r for r in self.runs if r.experiment == experiment and r.method == method and r.role == role),
            key=lambda r: r.seed,
        )

    def methods(self, experiment: str) -> list[str]:
        seen: list[str] = []
        for r in self.runs:
            if r.experiment == experiment and r.role == "main" and r.method not in seen:
                seen.append(r.method)
        return seen

    def experiments(self) -> list[str]:
        return sorted({r.experiment for r in self.runs})

    def __len__(self) -> int:
        return len(self.runs)


def load_runs(out: Path) -> Runs:
    """The finished runs under ``out/runs`` (those listed in ``runs.json`` when it exists)."""
    runs = []
    listed = out / "runs.json"
    results = sorted((out / "runs").glob("*/*/result.json"))
    if listed.is_file():  # the current preset's runs only, not stale runs of edited configs
        keep = set(json.loads(listed.read_text()))
        results = [r for r in results if str(r.parent.relative_to(out)) in keep]
    for res in results:
        d = res.parent
        experiment = d.parent.name
        parts = d.name.split("-")
        role = "proxy" if "proxy" in parts else "main"
        method = parts[0]
        seed = int(next(p[1:] for p in parts if p.startswith("s") and p[1:].isdigit()))
        curve = tuple(_read_jsonl(d / "metrics.jsonl"))
        runs.append(Run(experiment, method, role, seed, d, json.loads(res.read_text()), curve))
    return Runs(runs)


def record_sizes(record: Mapping[str, Any]) -> dict[str, float]:
    """Training examples per language of a metrics record (older records: examples drawn / epochs)."""
    if "sizes" in record:
        return dict(record["sizes"])
    ex, ep = record["examples"], record["epochs"]
    return {k: round(ex[k] / ep[k]) if ep[k] else math.inf for k in ex}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value); NaN-free input assumed."""
    arr = np.array(values, dtype=float)
    if len(arr) == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
