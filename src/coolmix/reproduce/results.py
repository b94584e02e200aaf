"""Read finished runs back: final records and metric curves, grouped by experiment and method.

Runs come from a reproduction folder's ``runs/`` (while it exists) or, in a committed report
folder, from ``metrics.json``, which stores the same data: every run's final record and its
curve trimmed to `CURVE_KEYS`. Both paths go through `normalise`, so a report rebuilt from the
committed file is the report built from the runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coolmix.mixture import resource_buckets
from coolmix.validate import decode_inf, encode_inf

__all__ = [
    "CURVE_KEYS",
    "MissingSplit",
    "Run",
    "Runs",
    "buckets",
    "encode_json",
    "hrl_lrl",
    "load_runs",
    "mean_std",
    "normalise",
    "read_metrics",
    "record_sizes",
    "run_relpath",
    "runs_from_json",
    "runs_to_json",
]

CURVE_KEYS = (
    "step",
    "time",
    "lr",
    "tau",
    "epochs",
    "train",
    "dev",
    "test",
    "grad_norm",
    "clipped",
    "n_steps",
    "final",
)
"""Keys of a metrics record kept in a run's curve (the rest, e.g. the ledger, is in the final
record). The trainer's per-step lists ``grad_norm``/``clipped`` are summarised per record:
``grad_norm`` = mean ‖g‖ before clipping, ``clipped`` = clipped steps, ``n_steps`` = steps."""


class MissingSplit(KeyError):
    """A run has no scores for the split a table or claim needs (e.g. no test split)."""


@dataclass(frozen=True)
class Run:
    """One finished run: its ids, final record and eval curve (one metrics record per eval).

    ``dir`` is relative to the reproduction folder (``runs/<experiment>/<tag>``).
    """

    experiment: str
    method: str
    role: str
    seed: int
    dir: Path
    final: Mapping[str, Any]
    curve: tuple[Mapping[str, Any], ...]

    def score(self, lang: str, split: str = "test", metric: str = "loss") -> float:
        """Final ``metric`` of ``lang`` on ``split``; `MissingSplit` if the run has none."""
        try:
            return float(self.final[split][metric][lang])
        except (KeyError, TypeError) as e:
            raise MissingSplit(f"{self.dir}: no final {split} {metric} for {lang}") from e

    def dev(self, lang: str, metric: str = "loss") -> float:
        return self.score(lang, "dev", metric)

    def test(self, lang: str, metric: str = "loss") -> float:
        """Final test-split score: what the tables report (dev is for selection only)."""
        return self.score(lang, "test", metric)

    def mean_score(self, langs: Sequence[str], split: str = "test", metric: str = "loss") -> float:
        """Unweighted mean of `score` over ``langs`` (a group such as the LRLs)."""
        return float(np.mean([self.score(x, split, metric) for x in langs]))

    def series(self, lang: str, split: str = "dev", metric: str = "loss") -> tuple[np.ndarray, np.ndarray]:
        pts = [
            (r["step"], r[split][metric][lang])
            for r in self.curve
            if split in r and lang in r[split].get(metric, {})
        ]
        if not pts:
            return np.zeros(0), np.zeros(0)
        s, v = zip(*pts, strict=True)
        return np.array(s, dtype=float), np.array(v, dtype=float)

    def sizes(self) -> dict[str, float]:
        return record_sizes(self.final)

    def best(self, lang: str) -> tuple[float, float]:
        """(best dev loss, its step)."""
        s, v = self.series(lang)
        if not len(v):
            raise MissingSplit(f"{self.dir}: no dev curve for {lang}")
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

    def seeds(self) -> list[int]:
        return sorted({r.seed for r in self.runs})

    def __len__(self) -> int:
        return len(self.runs)


def load_runs(out: Path) -> Runs:
    """The finished runs of a reproduction folder: ``out/runs`` (those listed in ``runs.json``
    when it exists) or, without ``runs/``, the runs stored in ``out/metrics.json``."""
    if not (out / "runs").is_dir():
        return runs_from_json(read_metrics(out).get("runs", []))
    runs = []
    listed = out / "runs.json"
    results = sorted((out / "runs").glob("*/*/result.json"))
    if listed.is_file():  # the current preset's runs only, not stale runs of edited configs
        keep = set(json.loads(listed.read_text()))
        results = [r for r in results if str(r.parent.relative_to(out)) in keep]
    for res in results:
        d = res.parent
        parts = d.name.split("-")
        role = "proxy" if "proxy" in parts else "main"
        seed = int(next(p[1:] for p in parts if p.startswith("s") and p[1:].isdigit()))
        runs.append(
            Run(
                d.parent.name,
                parts[0],
                role,
                seed,
                d.relative_to(out),
                normalise(json.loads(res.read_text())),
                _trim(_read_jsonl(d / "metrics.jsonl")),
            )
        )
    return Runs(runs)


def read_metrics(out: Path) -> dict[str, Any]:
    """``out/metrics.json`` as a dict ({} when absent); `ConfigError` if it is not a report's."""
    from coolmix.errors import ConfigError

    path = out / "metrics.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError("metrics.json", str(path), f"not valid JSON: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs", []), list):
        raise ConfigError("metrics.json", str(path), "must be a JSON object with a list of runs")
    return data


def runs_to_json(runs: Runs) -> list[dict[str, Any]]:
    """Every run as JSON-able data (what ``metrics.json`` stores; `runs_from_json` reads it back)."""
    return [
        {
            "experiment": r.experiment,
            "method": r.method,
            "role": r.role,
            "seed": r.seed,
            "dir": r.dir.as_posix(),
            "final": encode_json(r.final),
            "curve": encode_json(list(r.curve)),
        }
        for r in runs.runs
    ]


def runs_from_json(rows: Sequence[Mapping[str, Any]]) -> Runs:
    """Inverse of `runs_to_json` (older files without curves give runs with empty curves)."""
    from coolmix.errors import ConfigError

    need = ("experiment", "method", "role", "seed", "dir", "final")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or any(k not in row for k in need):
            raise ConfigError(f"metrics.json runs[{i}]", row, f"must be an object with {', '.join(need)}")
    return Runs(
        [
            Run(
                row["experiment"],
                row["method"],
                row["role"],
                int(row["seed"]),
                Path(run_relpath(row["dir"])),
                normalise(row["final"]),
                _trim(row.get("curve", [])),
            )
            for row in rows
        ]
    )


def normalise(x: Any) -> Any:
    """JSON data as the report reads it: ``"inf"``/``"-inf"``/``"nan"`` decoded to floats; idempotent."""
    if isinstance(x, Mapping):
        return {k: normalise(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [normalise(v) for v in x]
    if isinstance(x, str) and x.strip().lower() in ("nan", "-inf"):
        return math.nan if x.strip().lower() == "nan" else -math.inf
    return decode_inf(x)


def encode_json(x: Any) -> Any:
    """Non-finite floats as strings for strict JSON (`encode_inf` for +inf, "-inf", "nan")."""
    if isinstance(x, Mapping):
        return {k: encode_json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [encode_json(v) for v in x]
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, float) and x == -math.inf:
        return "-inf"
    return encode_inf(x)


def _trim(records: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    out = []
    for rec in normalise(list(records)):
        kept = {k: rec[k] for k in CURVE_KEYS if k in rec}
        if "clipped" in kept and "n_steps" not in kept:  # raw trainer record: summarise its steps
            c = kept["clipped"] if isinstance(kept["clipped"], list) else [kept["clipped"]]
            kept["clipped"], kept["n_steps"] = sum(bool(x) for x in c), len(c)
        if isinstance(kept.get("grad_norm"), list):
            g = kept["grad_norm"]
            kept["grad_norm"] = float(np.mean(g)) if g else math.nan
        if len(kept) > 1:
            out.append(kept)
    return tuple(out)


def record_sizes(record: Mapping[str, Any]) -> dict[str, float]:
    """Training examples per language of a metrics record (older records: examples drawn / epochs)."""
    if "sizes" in record:
        return dict(record["sizes"])
    ex, ep = record["examples"], record["epochs"]
    return {k: round(ex[k] / ep[k]) if ep[k] else math.inf for k in ex}


def buckets(sizes: Mapping[str, float]) -> dict[str, str]:
    """high / mid / low resource by training size (`resource_buckets`: ≥ 90% / ≥ 40% of the largest)."""
    return dict(resource_buckets({k: int(v) for k, v in sizes.items()}))


def hrl_lrl(sizes: Mapping[str, float]) -> tuple[list[str], list[str]]:
    """(HRLs, LRLs) of a mixture by `buckets`, in mixture order."""
    b = buckets(sizes)
    return [k for k in sizes if b[k] == "high"], [k for k in sizes if b[k] == "low"]


def run_relpath(path: str) -> str:
    """``.../runs/<experiment>/<tag>`` as ``runs/<experiment>/<tag>`` (paths relative to the output
    folder, whatever machine or working directory wrote them); other strings unchanged."""
    parts = Path(path).parts
    if "runs" not in parts:
        return path
    i = len(parts) - 1 - parts[::-1].index("runs")
    return "/".join(parts[i:])


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
