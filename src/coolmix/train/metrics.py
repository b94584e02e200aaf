"""Metric sinks (JSONL, console, TensorBoard) and per-domain running training statistics.

A record is one plain dict per evaluation, keyed by domain name everywhere::

    {"step": 400, "time": 51.3, "lr": 0.0007, "tau": 5.0, "probs": {"en": 0.45, ...},
     "weights": {"en": 1.0, ...}, "examples": {"en": 5812, ...}, "tokens": {...},
     "epochs": {"en": 0.21, ...}, "tokens_per_s": 15210.0,
     "train": {"loss": {"en": 3.91, ...}}, "dev": {"loss": {...}, "chrf": {...}, "bleu": {...}}}

The last record of a run has ``"final": true`` and, if enabled, a ``"test"`` table. Tests and
reports read ``metrics.jsonl``; nothing parses console text.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from coolmix.fileio import open_regular, read_bytes
from coolmix.train.distributed import Env, all_reduce_sum

__all__ = [
    "METRICS_FILE",
    "ConsoleSink",
    "DomainStats",
    "GradLog",
    "JsonlSink",
    "MetricSink",
    "TensorBoardSink",
    "jsonable",
    "read_records",
]

METRICS_FILE = "metrics.jsonl"


class MetricSink(Protocol):
    """Where records go. ``progress`` is a cheap, frequent status; ``write`` one eval record."""

    def progress(self, step: int, status: Mapping[str, Any]) -> None: ...

    def write(self, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """Appends one JSON line per record to ``metrics.jsonl``, each with a single ``write()``.

    An append is one ``os.write`` of one whole line on an ``O_APPEND`` descriptor, so a crash
    leaves at most a half last line, never interleaved or buffered fragments. The sink also
    keeps the text it wrote: a checkpoint stores it (`state`), which makes the checkpoint, not
    the file, the source of truth on resume (see `resume`).
    """

    def __init__(self, path: Path, text: str = "") -> None:
        self.path = path
        self._lines = _lines(text)
        data = text.encode("utf-8")
        # the file stays open for the whole run (closed by `close`); a regular file, never a link
        self._fd = open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, METRICS_FILE)
        os.ftruncate(self._fd, 0)
        self.offset = 0
        if data:
            self._append(data)

    @classmethod
    def resume(
        cls, path: Path, saved: Mapping[str, Any] | None, step: int, warn: Callable[[str], None]
    ) -> JsonlSink:
        """Reopen ``path`` as it was at the checkpoint of ``step``, whatever the file looks like now.

        ``saved`` is the checkpoint's `state`. The usual case (the file holds the checkpoint's
        text, maybe followed by records written after it) only cuts the tail off. A file that
        is missing, shorter, truncated mid-line, zeroed or otherwise different is rewritten
        from the checkpoint's copy, with one ``warn`` line. Checkpoints without a copy (older
        ones) keep the valid records of the file with ``step`` <= the checkpoint's. A ``path`` that
        is a link, a FIFO or a device is refused (`ConfigError`), never followed or truncated.
        """
        try:
            have = read_bytes(path, METRICS_FILE)
        except FileNotFoundError:
            have = None
        if saved is not None and isinstance(saved.get("text"), str):
            want = saved["text"]
        else:
            want = _valid_prefix(have or b"", step)
        data = want.encode("utf-8")
        if have is not None and have.startswith(data):
            sink = cls.__new__(cls)
            sink.path, sink._lines = path, _lines(want)
            sink._fd = open_regular(path, os.O_WRONLY | os.O_APPEND, METRICS_FILE)
            os.ftruncate(sink._fd, len(data))
            sink.offset = len(data)
            return sink
        n = len(_lines(want))
        what = "missing" if have is None else "damaged (does not match the checkpoint)"
        warn(
            f"{path.name} was {what}; rewrote its {n} record(s) up to step {step} from the "
            "checkpoint and continuing"
        )
        return cls(path, want)

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # a regular file takes it in one write; the loop only guards short writes
            view = view[os.write(self._fd, view) :]
        self.offset += len(data)

    @property
    def lines(self) -> int:
        return len(self._lines)

    @property
    def text(self) -> str:
        return "".join(self._lines)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._lines]

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: the byte offset, the line count and the text itself."""
        return {"offset": self.offset, "lines": self.lines, "text": self.text}

    def progress(self, step: int, status: Mapping[str, Any]) -> None:
        pass

    def write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(jsonable(record), ensure_ascii=False) + "\n"
        self._append(line.encode("utf-8"))
        self._lines.append(line)

    def sync(self) -> None:
        """Flush to disk: a checkpoint's offset must never point past what survives a crash."""
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _lines(text: str) -> list[str]:
    """``text`` cut after each newline (not `str.splitlines`: JSON may hold U+2028 unescaped)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _valid_prefix(data: bytes, step: int) -> str:
    """The lines of ``data`` that are whole JSON records with increasing ``step`` <= ``step``."""
    kept: list[str] = []
    last = 0
    for raw in data.split(b"\n")[:-1]:  # the part after the last newline is a torn write
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        s = rec.get("step") if isinstance(rec, dict) else None
        if isinstance(s, int) and not isinstance(s, bool) and last < s <= step:
            kept.append(raw.decode("utf-8") + "\n")
            last = s
    return "".join(kept)


class GradLog:
    """Pre-clip global gradient norms since the last record, kept on device (no sync per step).

    ``clip_grad_norm_`` returns ‖g‖₂ before clipping; the step was clipped iff
    clip / (‖g‖ + 1e-6) < 1, torch's own rule. A record gets the per-step lists ``grad_norm``
    and ``clipped`` and their summary ``clipped_fraction``; `state_dict` keeps the steps since
    the last record, so a resumed run writes the same records.
    """

    def __init__(self, clip: float) -> None:
        self.clip = clip
        self._done: list[float] = []
        self._pending: list[torch.Tensor] = []

    def add(self, norm: torch.Tensor) -> None:
        self._pending.append(norm.detach())

    def _flush(self) -> None:
        if self._pending:
            self._done += torch.stack(self._pending).double().tolist()
            self._pending = []

    def pop(self) -> dict[str, Any]:
        self._flush()
        norms, self._done = self._done, []
        clipped = [self.clip > 0 and self.clip / (n + 1e-6) < 1 for n in norms]
        frac = sum(clipped) / len(clipped) if clipped else None
        return {"grad_norm": norms, "clipped": clipped, "clipped_fraction": frac}

    def state_dict(self) -> dict[str, Any]:
        self._flush()
        return {"norms": list(self._done)}

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        self._pending = []
        self._done = [float(x) for x in (state or {}).get("norms", [])]


def jsonable(x: Any) -> Any:
    """NaN/inf -> None (recursively), so every record is strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` (a run directory also works)."""
    p = Path(path)
    if p.is_dir():
        p = p / METRICS_FILE
    text = read_bytes(p, METRICS_FILE).decode("utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


class ConsoleSink:
    """A rich progress bar (step, τ, per-domain training losses) plus one line per eval."""

    def __init__(self, total_steps: int, start: int = 0) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
        )
        self._task = self._progress.add_task("train", total=total_steps, completed=start, status="")
        self._progress.start()

    def progress(self, step: int, status: Mapping[str, Any]) -> None:
        tau = status.get("tau")
        parts = [f"τ={_fmt(tau)}"] if tau is not None else []
        parts += [f"{d} {_fmt(v)}" for d, v in status.get("loss", {}).items()]
        self._progress.update(self._task, completed=step, status="  ".join(parts))

    def write(self, record: Mapping[str, Any]) -> None:
        dev = record.get("dev", {})
        parts = [f"step {record['step']}"]
        for metric in ("loss", "chrf"):
            if metric in dev:
                parts.append(f"dev {metric} " + " ".join(f"{d}={_fmt(v)}" for d, v in dev[metric].items()))
        self._progress.console.print("  ".join(parts))

    def close(self) -> None:
        self._progress.stop()


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"  # a domain without tokens since the last record
    if isinstance(v, float):
        return "∞" if math.isinf(v) else f"{v:.3g}"
    return str(v)


class TensorBoardSink:
    """Scalars to TensorBoard (``split/metric/domain``), if the ``tensorboard`` package is installed."""

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # ImportError without tensorboard

        self._w = SummaryWriter(str(log_dir), purge_step=purge_step)

    def progress(self, step: int, status: Mapping[str, Any]) -> None:
        pass

    def write(self, record: Mapping[str, Any]) -> None:
        step = record["step"]
        for key in ("lr", "tau", "tokens_per_s"):
            v = record.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                self._w.add_scalar(key, v, step)
        for split in ("train", "dev", "test"):
            for metric, per_domain in record.get(split, {}).items():
                for d, v in per_domain.items():
                    if isinstance(v, (int, float)) and math.isfinite(v):
                        self._w.add_scalar(f"{split}/{metric}/{d}", v, step)
        self._w.flush()

    def close(self) -> None:
        self._w.close()


class DomainStats:
    """Per-domain training loss and token counts, accumulated on device without a sync per step.

    ``loss`` is the token-weighted mean since the last `pop_losses` (Σ n_b ℓ_b / Σ n_b per domain);
    ``tokens`` counts non-pad target tokens seen since the start. Under DDP each rank holds its
    share; `reduce` sums them onto every rank (the checkpoint keeps the sums, other ranks restart
    from zero, so totals stay right under any world size).
    """

    _KEYS = ("loss_sum", "tok_since", "tokens")

    def __init__(self, names: Sequence[str], device: torch.device) -> None:
        self.names = tuple(names)
        k = len(self.names)
        self.loss_sum = torch.zeros(k, dtype=torch.float64, device=device)
        self.tok_since = torch.zeros(k, dtype=torch.float64, device=device)
        self.tokens = torch.zeros(k, dtype=torch.float64, device=device)

    def update(self, domains: torch.Tensor, loss: torch.Tensor, n_tokens: torch.Tensor) -> None:
        n = n_tokens.to(torch.float64)
        self.loss_sum.index_add_(0, domains, loss.detach().to(torch.float64) * n)
        self.tok_since.index_add_(0, domains, n)
        self.tokens.index_add_(0, domains, n)

    def reduce(self, env: Env) -> None:
        """Sum over ranks; afterwards only rank 0 keeps the totals (so the next reduce adds up)."""
        if not env.distributed:
            return
        for key in self._KEYS:
            t = all_reduce_sum(getattr(self, key), env)
            if not env.is_main:
                t.zero_()

    def running_losses(self) -> dict[str, float]:
        """Mean loss per domain since the last `pop_losses` (NaN where a domain got no tokens)."""
        mean = (self.loss_sum / self.tok_since).tolist()
        return dict(zip(self.names, mean, strict=True))

    def pop_losses(self) -> dict[str, float]:
        out = self.running_losses()
        self.loss_sum.zero_()
        self.tok_since.zero_()
        return out

    def token_counts(self) -> dict[str, int]:
        return {n: int(v) for n, v in zip(self.names, self.tokens.tolist(), strict=True)}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k).cpu().clone() for k in self._KEYS}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], env: Env) -> None:
        for k in self._KEYS:
            t = getattr(self, k)
            t.copy_(state[k].to(t.device) if env.is_main else torch.zeros_like(t))
