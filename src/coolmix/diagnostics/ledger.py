"""Exposure ledger: realised examples and tokens per domain vs the planned share, epochs, repeats.

Peers log plans; nobody logs what was actually drawn (peers.md §6.6). The ledger is fed the
*global* batch each step (aggregate over ranks first), persisted in checkpoints, and written to
the metrics. Because the sampler makes without-replacement passes, the most any single item
has been repeated is ⌈draws / n⌉, so "max repetitions" is exact without per-item counters.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coolmix.errors import ConfigError

__all__ = ["LEDGER_KEYS", "ExposureLedger", "MetricsRead", "read_ledger", "read_metrics"]

LEDGER_KEYS = (
    "examples",
    "tokens",
    "share",
    "target_share",
    "target_examples",
    "epochs",
    "max_repeats",
)
"""Per-domain keys of a metrics record's ``ledger`` table (`ExposureLedger.summary` writes more)."""
_COUNT_KEYS = ("examples", "tokens", "max_repeats")


class ExposureLedger:
    """Cumulative realised exposure per domain, with the target share it should track.

    >>> led = ExposureLedger({"en": 100, "sw": 4})
    >>> led.record(0, np.array([0, 0, 1, 1]), probs=np.array([0.5, 0.5]))
    >>> led.summary()["sw"]["epochs"], led.summary()["sw"]["max_repeats"]
    (0.5, 1)
    """

    def __init__(self, sizes: Mapping[str, int], size_tokens: Mapping[str, float] | None = None) -> None:
        self.names = tuple(sizes)
        self.sizes = np.array([float(sizes[n]) for n in self.names])
        self.size_tokens = (
            None if size_tokens is None else np.array([float(size_tokens[n]) for n in self.names])
        )
        self.examples = np.zeros(len(self.names), dtype=np.int64)
        self.tokens = np.zeros(len(self.names), dtype=np.int64)
        self.target = np.zeros(len(self.names))  # Σ_t B_t · p_i(t), in examples
        self.steps = 0

    @classmethod
    def from_sampler(cls, sampler: Any, step: int) -> ExposureLedger:
        """The example counts and target of a `coolmix.MixtureSampler` before ``step``, from its
        public counts API (``cumulative_counts`` / ``cumulative_target``, the same numbers as
        ``sampler.cumulative_target``), e.g. to rebuild a ledger that was lost; tokens start at 0.

        >>> import coolmix as cm
        >>> s = cm.MixtureSampler({"en": 100, "sw": 4}, 1.0, total_steps=10, batch_size=8)
        >>> ExposureLedger.from_sampler(s, 5).summary()["sw"]["examples"]
        2
        """
        led = cls(sampler.state_dict()["mixture"])  # the exact item counts
        led.examples = sampler.cumulative_counts_array(step)
        led.target = sampler.cumulative_target_array(step)
        led.steps = int(step)
        return led

    def record(
        self,
        step: int,
        domain_ids: np.ndarray,
        n_tokens: np.ndarray | None = None,
        probs: np.ndarray | Sequence[float] | None = None,
    ) -> None:
        """Add one global batch: its domain ids, tokens per example, and p(t) it was drawn from."""
        ids = np.asarray(domain_ids, dtype=np.int64)
        k = len(self.names)
        self.examples += np.bincount(ids, minlength=k)
        if n_tokens is not None:
            self.tokens += np.bincount(
                ids, weights=np.asarray(n_tokens, dtype=np.float64), minlength=k
            ).astype(np.int64)
        if probs is not None:
            self.target += len(ids) * np.asarray(probs, dtype=np.float64)
        self.steps = max(self.steps, int(step) + 1)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per domain: examples, tokens, realised and target share, epochs, max repeats of an item."""
        total = max(int(self.examples.sum()), 1)
        total_tok = max(int(self.tokens.sum()), 1)
        target_total = self.target.sum() or 1.0
        out = {}
        for i, n in enumerate(self.names):
            ex = int(self.examples[i])
            out[n] = {
                "examples": ex,
                "tokens": int(self.tokens[i]),
                "share": ex / total,
                "token_share": int(self.tokens[i]) / total_tok,
                "target_share": float(self.target[i] / target_total),
                "target_examples": float(self.target[i]),
                "epochs": float(ex / self.sizes[i]),
                "max_repeats": math.ceil(ex / self.sizes[i]),
                "distinct_items": int(min(ex, self.sizes[i])),
            }
        return out

    def epochs(self) -> dict[str, float]:
        return {n: float(self.examples[i] / self.sizes[i]) for i, n in enumerate(self.names)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "examples": self.examples.tolist(),
            "tokens": self.tokens.tolist(),
            "target": self.target.tolist(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or list(state.get("names", [])) != list(self.names):
            raise ConfigError(
                "ledger.names",
                state.get("names") if isinstance(state, Mapping) else state,
                f"ledger from a different mixture; expected {list(self.names)}",
            )
        k = len(self.names)
        try:
            examples = np.array(state["examples"], dtype=np.int64)
            tokens = np.array(state["tokens"], dtype=np.int64)
            target = np.array(state["target"], dtype=np.float64)
            steps = int(state["steps"])
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise ConfigError("ledger", type(e).__name__, f"corrupt ledger state: {e}") from None
        if examples.shape != (k,) or tokens.shape != (k,) or target.shape != (k,):
            shapes = [examples.shape, tokens.shape, target.shape]
            raise ConfigError("ledger", shapes, f"corrupt ledger state: expected {k} values per domain")
        if (examples < 0).any() or (tokens < 0).any() or steps < 0 or not np.isfinite(target).all():
            why = "corrupt ledger state: negative or non-finite counters"
            raise ConfigError("ledger", {"steps": steps}, why)
        self.examples, self.tokens, self.target, self.steps = examples, tokens, target, steps


@dataclass(frozen=True)
class MetricsRead:
    """What `read_metrics` made of a file: the valid records and the lines it skipped."""

    records: list[dict[str, Any]]
    """JSON objects, in file order."""

    skipped: list[tuple[int, str]]
    """(1-based line number, why) for each line that was not a usable record."""

    lines: list[int]
    """The line number of each record."""

    def note(self, name: str = "metrics.jsonl") -> str:
        """One line: how many lines were skipped and why the first one was."""
        if not self.skipped:
            return ""
        line, why = self.skipped[0]
        more = f" (first: line {line}: {why})" if len(self.skipped) > 1 else f" (line {line}: {why})"
        return f"skipped {len(self.skipped)} damaged line{'s' * (len(self.skipped) > 1)} of {name}{more}"


def read_metrics(path: str | os.PathLike[str]) -> MetricsRead:
    """Every JSON-object line of a metrics file; bad lines are skipped and listed, never raised.

    Bad: not UTF-8, NUL bytes, not JSON (a truncated last line), NaN/Infinity literals, or a
    JSON value that is not an object. The caller checks the file exists (`ConfigError` there). Only
    a regular file is read (`coolmix.fileio.read_bytes`): a link, a FIFO or the zero device is a
    `ConfigError`, never followed, waited on or read without end.
    """
    from coolmix.fileio import read_bytes

    data = read_bytes(path, "metrics.jsonl")
    lines = data.split(b"\n")
    records: list[dict[str, Any]] = []
    skipped: list[tuple[int, str]] = []
    numbers: list[int] = []
    for n, raw in enumerate(lines, start=1):
        if not raw.strip(b" \t\r"):
            continue
        why = _line_problem(raw)
        if why is None:
            try:
                value = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
            except (ValueError, RecursionError):
                why = "truncated (a crash while writing?)" if n == len(lines) else "not JSON"
            else:
                if isinstance(value, dict):
                    records.append(value)
                    numbers.append(n)
                    continue
                why = f"a JSON {_JSON_TYPE.get(type(value), 'value')}, not an object"
        skipped.append((n, why))
    return MetricsRead(records, skipped, numbers)


_JSON_TYPE = {
    list: "list",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _line_problem(raw: bytes) -> str | None:
    if b"\x00" in raw:
        return "NUL bytes (a zeroed or torn write?)"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    return None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def read_ledger(path: str | os.PathLike[str]) -> MetricsRead:
    """The records of a metrics file that carry a usable ``ledger`` table, oldest first.

    A ledger record has ``step`` (an integer >= 0) and ``ledger``: domain -> the `LEDGER_KEYS`,
    each a finite number >= 0 (counts whole). Records with a ``ledger`` that fails this, or whose
    domains differ from the newest good record's, are skipped with the reason; records without a
    ``ledger`` (evaluations, notes) are not ledger records and are passed over silently.
    """
    read = read_metrics(path)
    skipped = list(read.skipped)
    good: list[tuple[int, dict[str, Any]]] = []
    for line, rec in zip(read.lines, read.records, strict=True):
        if "ledger" not in rec:
            continue
        why = _ledger_problem(rec)
        if why:
            skipped.append((line, why))
        else:
            good.append((line, _clean(rec)))
    if good:
        names = list(good[-1][1]["ledger"])
        for line, rec in good:
            if list(rec["ledger"]) != names:
                skipped.append((line, f"domains {list(rec['ledger'])} differ from the newest record's"))
        good = [(line, rec) for line, rec in good if list(rec["ledger"]) == names]
    return MetricsRead([rec for _, rec in good], sorted(skipped), [line for line, _ in good])


def _ledger_problem(rec: Mapping[str, Any]) -> str | None:
    step = rec.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"step={step!r} is not an integer >= 0"
    ledger = rec["ledger"]
    if not isinstance(ledger, dict) or not ledger:
        return f"ledger={_brief(ledger)} is not a table of domains"
    for name, row in ledger.items():
        if not isinstance(row, dict):
            return f"ledger.{name}={_brief(row)} is not a table"
        for key in LEDGER_KEYS:
            v = row.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return f"ledger.{name}.{key}={_brief(v)} is not a number"
            if not math.isfinite(v) or v < 0:
                return f"ledger.{name}.{key}={v!r} is not a finite number >= 0"
            if key in _COUNT_KEYS and float(v) != math.floor(v):
                return f"ledger.{name}.{key}={v!r} is not a whole count"
    return None


def _clean(rec: dict[str, Any]) -> dict[str, Any]:
    """A validated record with counts as ints (a float 12.0 written by another tool reads as 12)."""
    ledger = {name: {**row, **{k: int(row[k]) for k in _COUNT_KEYS}} for name, row in rec["ledger"].items()}
    return {**rec, "ledger": ledger}


def _brief(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."
