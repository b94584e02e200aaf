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
    "read_json",
    "read_json_object",
    "read_metrics",
    "record_sizes",
    "run_dirs",
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


WHOLE_TEST_METRICS = ("loss", "chrf")
"""The metrics per-item test scores hold (chrF++ and BLEU stay on the headline slice)."""


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
    whole_test: bool = False
    """Test loss and chrF come from every test item (``test_items``), not the headline slice: set by
    `Runs` when every run of the experiment has per-item scores, so no comparison mixes the two."""

    def score(self, lang: str, split: str = "test", metric: str = "loss") -> float:
        """Final ``metric`` of ``lang`` on ``split``; `MissingSplit` if the run has none."""
        if self.whole_test and split == "test" and metric in WHOLE_TEST_METRICS:
            from coolmix.train.item_scores import ITEMS_KEY, items_metric

            items = self.final[ITEMS_KEY]
            if not isinstance(items.get(metric), Mapping) or lang not in items[metric]:
                raise MissingSplit(f"{self.dir}: no per-item test {metric} for {lang}")
            return float(items_metric(items, lang, metric))
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
    """All finished runs of an output folder, indexed by (experiment, method).

    An experiment whose every run with a test split also has per-item test scores is scored on
    every test item (`Run.whole_test`); one run without them keeps the whole experiment on the
    headline slice.
    """

    def __init__(self, runs: Sequence[Run]) -> None:
        from dataclasses import replace

        from coolmix.train.item_scores import ITEMS_KEY

        runs = list(runs)
        tested = [r for r in runs if "test" in r.final]
        partial = {r.experiment for r in tested if not isinstance(r.final.get(ITEMS_KEY), Mapping)}
        whole = {r.experiment for r in tested} - partial
        has_test = {id(r) for r in tested}
        self.runs = [replace(r, whole_test=r.experiment in whole and id(r) in has_test) for r in runs]

    def whole_test(self, experiment: str) -> bool:
        """Whether ``experiment``'s test scores come from every test item."""
        return any(r.whole_test for r in self.runs if r.experiment == experiment)

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


def read_json(path: Path, field: str | None = None) -> Any:
    """A saved JSON file of a reproduction folder; `ConfigError` naming it if it is not a regular file
    (a link, a FIFO, a device: never followed or read), not UTF-8, or not JSON."""
    from coolmix.errors import ConfigError
    from coolmix.fileio import read_text

    name = field or path.name
    text = read_text(path, name)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ConfigError(name, str(path), f"not valid JSON: {str(e).splitlines()[0]}") from None


def read_json_object(path: Path, field: str | None = None) -> dict[str, Any]:
    """`read_json` that must give a JSON object (``null``, a list or a number is a `ConfigError`)."""
    from coolmix.errors import ConfigError

    value = read_json(path, field)
    if not isinstance(value, dict):
        raise ConfigError(field or path.name, _brief(value), "must be a JSON object")
    return value


def run_dirs(out: Path) -> list[Path]:
    """``out/runs/<experiment>/<tag>`` folders holding a ``result.json``, sorted; a link anywhere in
    that tree (``runs`` itself, an experiment, a run, its ``result.json``) is a `ConfigError`."""
    from coolmix.fileio import regular_or_missing

    found = []
    for d in _real_subdirs(out / "runs", "runs"):
        for run in _real_subdirs(d, f"runs/{d.name}"):
            if regular_or_missing(run / "result.json", f"runs/{d.name}/{run.name}/result.json"):
                found.append(run)
    return sorted(found)


def _real_subdirs(path: Path, field: str) -> list[Path]:
    import os
    import stat

    from coolmix.errors import ConfigError

    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return []
    if stat.S_ISLNK(mode):
        raise ConfigError(field, str(path), "is a symbolic link (links are not followed)")
    if not stat.S_ISDIR(mode):
        return []
    out = []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.is_symlink():
            why = "is a symbolic link (links are not followed)"
            raise ConfigError(f"{field}/{entry.name}", entry.path, why)
        if entry.is_dir(follow_symlinks=False):
            out.append(Path(entry.path))
    return out


def load_runs(out: Path) -> Runs:
    """The finished runs of a reproduction folder: ``out/runs`` (those listed in ``runs.json``
    when it exists) or, without ``runs/``, the runs stored in ``out/metrics.json``.

    A ``runs.json`` whose runs are missing is warned about (``coolmix`` logger); when none of them
    exists and ``metrics.json`` stores runs, those are used, so a report is never silently
    rebuilt with no runs over one that had them.
    """
    import logging

    from coolmix.errors import ConfigError
    from coolmix.fileio import regular_or_missing

    if not (out / "runs").is_dir() or (out / "runs").is_symlink():
        if (out / "runs").is_symlink():
            raise ConfigError("runs", str(out / "runs"), "is a symbolic link (links are not followed)")
        return runs_from_json(read_metrics(out).get("runs", []))
    found = run_dirs(out)
    listed = out / "runs.json"
    if regular_or_missing(listed, "runs.json"):  # the current preset's runs, not stale runs of edited configs
        keep = read_json(listed)
        if not isinstance(keep, list) or not all(isinstance(x, str) for x in keep):
            raise ConfigError("runs.json", _brief(keep), "must be a JSON list of run folders")
        have = {d.relative_to(out).as_posix() for d in found}
        missing = [x for x in keep if x not in have]
        found = [d for d in found if d.relative_to(out).as_posix() in set(keep)]
        if missing:
            log = logging.getLogger("coolmix")
            stored = read_metrics(out).get("runs", []) if not found else []
            log.warning(
                f"runs.json lists {len(keep)} run(s); {len(missing)} of them have no runs/<experiment>/<run>/"
                f"result.json (first: {missing[0]})"
                + ("; using the runs stored in metrics.json instead" if stored else "")
            )
            if stored:
                return runs_from_json(stored)
    runs = []
    for d in found:
        rel = d.relative_to(out).as_posix()
        parts = d.name.split("-")
        seeds = [p[1:] for p in parts if p.startswith("s") and p[1:].isdigit()]
        if not seeds:
            raise ConfigError(rel, d.name, "not a run folder name (<method>-s<seed>-<hash>)")
        record = read_json_object(d / "result.json", f"{rel}/result.json")
        _check_final(f"{rel}/result.json", record)
        runs.append(
            Run(
                d.parent.name,
                parts[0],
                "proxy" if "proxy" in parts else "main",
                int(seeds[0]),
                d.relative_to(out),
                normalise(record),
                _trim(_read_jsonl(d / "metrics.jsonl")),
            )
        )
    return Runs(runs)


def read_metrics(out: Path) -> dict[str, Any]:
    """``out/metrics.json`` as a dict ({} when absent); `ConfigError` (one line) if it is not a report's:
    not a regular file, not JSON, not an object, or ``runs``/``theory``/``meta`` of the wrong shape."""
    from coolmix.errors import ConfigError
    from coolmix.fileio import regular_or_missing

    path = out / "metrics.json"
    if not regular_or_missing(path, "metrics.json"):
        return {}
    data = read_json(path, "metrics.json")
    if not isinstance(data, dict) or not isinstance(data.get("runs", []), list):
        raise ConfigError("metrics.json", str(path), "must be a JSON object with a list of runs")
    for key in ("theory", "meta"):
        if not isinstance(data.get(key, {}), dict):
            raise ConfigError(f"metrics.json {key}", _brief(data[key]), "must be a JSON object")
    return data


def _check_final(field: str, final: Mapping[str, Any]) -> None:
    """A final record the report can read: its training sizes (``sizes``, or ``examples`` and
    ``epochs``) are numbers per domain; else one `ConfigError` naming the file."""
    from coolmix.errors import ConfigError

    try:
        sizes = record_sizes(normalise(final))
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in sizes.values())
    except (KeyError, TypeError, AttributeError, ZeroDivisionError, ValueError, OverflowError):
        ok = False
    if not ok:
        why = "must be a run's final record (with per-domain sizes, or examples and epochs)"
        raise ConfigError(field, _brief(final), why)


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
    types = {"experiment": str, "method": str, "role": str, "seed": int, "dir": str, "final": Mapping}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or any(k not in row for k in need):
            raise ConfigError(f"metrics.json runs[{i}]", row, f"must be an object with {', '.join(need)}")
        for key, kind in types.items():
            value = row[key]
            if not isinstance(value, kind) or isinstance(value, bool) or (key == "seed" and value < 0):
                what = {str: "a string", int: "an integer >= 0", Mapping: "a JSON object"}[kind]
                raise ConfigError(f"metrics.json runs[{i}].{key}", _brief(value), f"must be {what}")
        _check_final(f"metrics.json runs[{i}].final", row["final"])
        curve = row.get("curve", [])
        if not isinstance(curve, list) or not all(isinstance(r, Mapping) for r in curve):
            why = "must be a list of JSON objects"
            raise ConfigError(f"metrics.json runs[{i}].curve", _brief(curve), why)
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
    """A run's metrics records; damaged lines (a torn write, a zeroed file) are skipped with a warning."""
    import logging

    from coolmix.diagnostics.ledger import read_metrics as read_lines
    from coolmix.fileio import regular_or_missing

    if not regular_or_missing(path, "metrics.jsonl"):
        return []
    read = read_lines(path)
    if read.skipped:
        logging.getLogger("coolmix").warning(f"{path.parent.name}: {read.note()}")
    return [r for r in read.records if isinstance(r.get("step"), int)]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (0 for one value); NaN-free input assumed."""
    arr = np.array(values, dtype=float)
    if len(arr) == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
