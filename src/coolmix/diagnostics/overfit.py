"""Per-domain overfitting detector: held-out loss passed its minimum and kept rising.

Li et al. (2025, §3.2) observe that with heavy imbalance and a high static τ the low-resource
validation loss reaches a minimum and then rises while the high-resource loss still falls;
Cooldown is their fix. This detector finds that turning point from the validation stream, so
it can trigger an adaptive Cooldown (`coolmix.Adaptive`) or just be reported.

Rule, per domain: smooth the loss with an EMA (``smoothing`` = weight of the past, 0 = none),
track the minimum, and flag the domain once the smoothed loss has stayed above
``min · (1 + margin)`` (or ``min + margin`` with ``relative=False``) for ``patience``
consecutive evaluations, after at least ``min_evals`` evaluations.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coolmix.errors import ConfigError

__all__ = ["OverfitDetector", "OverfitFlag", "detect_from_jsonl"]


@dataclass(frozen=True)
class OverfitFlag:
    """A flagged domain: where its held-out loss bottomed out and where the rise was confirmed."""

    domain: str
    step: int
    best_step: int
    best_loss: float
    loss: float
    epochs_at_best: float | None = None


@dataclass
class _Track:
    smoothed: float | None = None
    best: float = math.inf
    best_step: int = -1
    best_epochs: float | None = None
    above: int = 0
    evals: int = 0


@dataclass
class OverfitDetector:
    """Feed it ``update(step, {domain: held-out loss}, epochs)``; it returns newly flagged domains.

    >>> d = OverfitDetector(margin=0.05, patience=2, min_evals=3)
    >>> [d.update(s, {"sw": v}) for s, v in enumerate([3.0, 2.0, 1.5, 1.7, 1.8])][-1][0].best_step
    2
    """

    margin: float = 0.02
    patience: int = 3
    min_evals: int = 3
    smoothing: float = 0.0
    relative: bool = True
    domains: tuple[str, ...] | None = None
    _tracks: dict[str, _Track] = field(default_factory=dict, repr=False)
    flagged: dict[str, OverfitFlag] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (isinstance(self.margin, (int, float)) and self.margin >= 0 and math.isfinite(self.margin)):
            raise ConfigError("margin", self.margin, "must be a finite number >= 0")
        for name in ("patience", "min_evals"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(name, v, "must be an integer >= 1")
        if not (isinstance(self.smoothing, (int, float)) and 0 <= self.smoothing < 1):
            raise ConfigError("smoothing", self.smoothing, "must be in [0, 1)")

    def update(
        self, step: int, losses: Mapping[str, float], epochs: Mapping[str, float] | None = None
    ) -> list[OverfitFlag]:
        """Add one evaluation; return the domains flagged by it (each domain is flagged once)."""
        new = []
        for dom, loss in losses.items():
            if self.domains is not None and dom not in self.domains:
                continue
            loss = float(loss)
            if not math.isfinite(loss):
                continue
            t = self._tracks.setdefault(dom, _Track())
            t.smoothed = (
                loss if t.smoothed is None else self.smoothing * t.smoothed + (1 - self.smoothing) * loss
            )
            t.evals += 1
            if t.smoothed < t.best:
                t.best, t.best_step, t.above = t.smoothed, int(step), 0
                t.best_epochs = None if epochs is None else float(epochs.get(dom, math.nan))
                continue
            limit = t.best * (1 + self.margin) if self.relative else t.best + self.margin
            t.above = t.above + 1 if t.smoothed > limit else 0
            if dom not in self.flagged and t.above >= self.patience and t.evals >= self.min_evals:
                flag = OverfitFlag(dom, int(step), t.best_step, t.best, t.smoothed, t.best_epochs)
                self.flagged[dom] = flag
                new.append(flag)
        return new

    def is_flagged(self, domains: Iterable[str], mode: str = "any") -> bool:
        """Whether ``any`` / ``all`` of ``domains`` are flagged."""
        hits = [d in self.flagged for d in domains]
        if mode not in ("any", "all"):
            raise ConfigError("mode", mode, "must be 'any' or 'all'")
        return any(hits) if mode == "any" else bool(hits) and all(hits)

    def state_dict(self) -> dict[str, Any]:
        return {
            "tracks": {d: asdict(t) for d, t in self._tracks.items()},
            "flagged": {d: asdict(f) for d, f in self.flagged.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            self._tracks = {d: _Track(**t) for d, t in state["tracks"].items()}
            self.flagged = {d: OverfitFlag(**f) for d, f in state["flagged"].items()}
        except (KeyError, TypeError) as e:
            raise ConfigError("overfit_state", type(e).__name__, f"corrupt detector state: {e}") from None


def _default_extract(
    record: Mapping[str, Any],
) -> tuple[int, dict[str, float], dict[str, float] | None] | None:
    """(step, {domain: dev loss}, {domain: epochs}) from a coolmix metrics.jsonl eval record."""
    if "step" not in record:
        return None
    dev = record.get("dev_loss")
    if dev is None and isinstance(record.get("dev"), Mapping):
        dev = record["dev"].get("loss")
    if not isinstance(dev, Mapping):
        return None
    epochs = record.get("epochs")
    return int(record["step"]), dict(dev), dict(epochs) if isinstance(epochs, Mapping) else None


def detect_from_jsonl(
    path: str | Path,
    detector: OverfitDetector | None = None,
    extract: Callable[[Mapping[str, Any]], Any] = _default_extract,
) -> dict[str, OverfitFlag]:
    """Run the detector over a metrics JSONL file (standalone use); returns the flags."""
    detector = detector or OverfitDetector()
    from coolmix.fileio import read_text

    p = Path(path)
    try:  # a regular file only: a link, FIFO or device is one ConfigError, never followed or waited on
        text = read_text(p, "metrics")
    except FileNotFoundError:
        raise ConfigError("metrics", str(p), "file not found") from None
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError("metrics", f"{p}:{n}", "not valid JSON") from None
        got = extract(record)
        if got is not None:
            detector.update(*got)
    return dict(detector.flagged)
