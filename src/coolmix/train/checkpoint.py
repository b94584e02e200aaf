"""Atomic, checksummed checkpoints: everything a run needs to continue bit-exactly.

File format (``ckpt-00001200.pt``): a 14-byte magic line, the SHA-256 of the payload as 64 hex
digits and a newline, then the ``torch.save`` payload. One file per checkpoint, so the checksum
can never disagree with a half-written sidecar. Writes go through `coolmix.fileio.write_atomic`
(temp file, fsync, rename, fsync of the directory): a crash at any moment leaves either the old
set of checkpoints or the new one, never a torn file; a killed writer's temp file is removed by
`coolmix.fileio.remove_stale_temps` when the next run starts.

Pruning to ``run.keep`` counts only checkpoints that are this run's: written by it, or read and
verified (header, checksum, config hash, and a step equal to the one in the file name) when it
resumed. A stray file named like a checkpoint, or a copy from another run, is never counted and
never deleted, and the checkpoint just written is never deleted.

The payload holds the model, optimizer, LR scheduler, `MixtureSampler.state_dict()`, RNG
states, running metric sums, the metrics file offset, the step and the config hash. Payloads
are loaded with ``weights_only=True``: only tensors and plain Python containers are accepted.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os  # noqa: F401  (tests patch checkpoint.os.replace to simulate a failed write)
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from coolmix.errors import ConfigError
from coolmix.fileio import make_dir, read_bytes, write_atomic

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_VERSION",
    "list_checkpoints",
    "load_latest",
    "read",
    "restore",
    "rng_state",
    "save",
    "set_rng_state",
    "snapshot",
]

CHECKPOINT_VERSION = 1
MAGIC = b"COOLMIX-CKPT1\n"
_NAME = re.compile(r"^ckpt-(\d{8})\.pt$")


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save(
    directory: Path,
    step: int,
    payload: dict[str, Any],
    keep: int,
    owned: list[tuple[int, Path]] | None = None,
) -> Path:
    """Write ``payload`` as ``ckpt-<step>.pt`` atomically, then delete this run's older ones
    beyond the newest ``keep``.

    ``owned`` lists (step, path) of the checkpoints this run may prune, the new one is added to
    it. Without it, the directory's checkpoints that verify under ``payload["config_hash"]``
    count (each is read once). Files that fail to verify are never counted or deleted.
    """
    buf = io.BytesIO()
    torch.save(payload, buf)
    body = buf.getvalue()
    digest = hashlib.sha256(body).hexdigest().encode()
    make_dir(directory, "out")
    path = directory / f"ckpt-{step:08d}.pt"
    write_atomic(path, MAGIC + digest + b"\n" + body)
    if owned is None:
        owned = [(s, p) for s, p in list_checkpoints(directory) if p != path and _verifies(p, payload)]
    # only after the new checkpoint is durable may old ones go; never the one just written
    others = sorted((s, p) for s, p in owned if p != path)
    drop = others[: max(0, len(others) - (keep - 1))]
    for _, old in drop:
        old.unlink(missing_ok=True)
    owned[:] = [*others[len(drop) :], (step, path)]
    return path


def _verifies(path: Path, payload: dict[str, Any]) -> bool:
    try:
        read(path, payload.get("config_hash"))
    except ConfigError:
        return False
    return True


def read(path: Path, config_hash: str | None = None, map_location: Any = "cpu") -> dict[str, Any]:
    """Load and verify one checkpoint; ConfigError (one line) if corrupt or from another config.

    Only a regular file is read: a link (even to a good checkpoint), a FIFO or a device is
    "unreadable", so `load_latest` skips it like a corrupt file and never follows it.
    """
    try:
        raw = read_bytes(path, "checkpoint")
    except ConfigError as e:
        raise ConfigError("checkpoint", path.name, f"unreadable: {e.why}") from None
    except OSError as e:
        raise ConfigError("checkpoint", path.name, f"unreadable: {e.strerror}") from None
    head = len(MAGIC) + 65
    if not raw.startswith(MAGIC) or len(raw) < head or raw[head - 1 : head] != b"\n":
        raise ConfigError("checkpoint", path.name, "corrupt: not a coolmix checkpoint (bad header)")
    body = raw[head:]
    if hashlib.sha256(body).hexdigest().encode() != raw[len(MAGIC) : head - 1]:
        raise ConfigError("checkpoint", path.name, "corrupt: SHA-256 checksum mismatch")
    try:
        payload = torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except Exception as e:  # a checksummed file that still fails to load: a foreign writer
        raise ConfigError("checkpoint", path.name, f"corrupt: cannot unpickle ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
        raise ConfigError("checkpoint", path.name, f"unsupported version (want {CHECKPOINT_VERSION})")
    named = _NAME.match(path.name)
    if named and payload.get("step") != int(named.group(1)):
        raise ConfigError(
            "checkpoint",
            path.name,
            f"corrupt: holds step {payload.get('step')!r}, not the step its name says (a renamed copy?)",
        )
    if config_hash is not None and payload.get("config_hash") != config_hash:
        raise ConfigError(
            "checkpoint",
            path.name,
            f"written by a different config (hash {payload.get('config_hash')}, this run's is "
            f"{config_hash}); resume with the original config or use another --out",
        )
    return payload


def load_latest(
    directory: Path,
    config_hash: str,
    map_location: Any = "cpu",
    warn: Callable[[str], None] | None = None,
    owned: list[tuple[int, Path]] | None = None,
) -> dict[str, Any] | None:
    """The newest good checkpoint in ``directory`` (None if there is none at all).

    A corrupt checkpoint is reported through ``warn`` (default: the ``coolmix`` logger) and
    skipped in favour of the previous one; if every checkpoint is corrupt the newest error is
    raised. A config-hash mismatch is raised at once: the directory belongs to another run, and
    falling back would hide that. With ``owned``, the older checkpoints are verified too and
    every good one is appended to it (the set `save` may prune).
    """
    warn = warn or log.warning
    first_error: ConfigError | None = None
    found: dict[str, Any] | None = None
    for step, path in reversed(list_checkpoints(directory)):
        try:
            payload = read(path, config_hash, map_location if found is None else "cpu")
        except ConfigError as e:
            if not e.why.startswith(("corrupt", "unreadable")):
                if found is None:
                    raise
                continue  # an older file of another run: not ours, leave it alone
            if found is None:
                warn(f"skipping {e}; trying the previous checkpoint")
                first_error = first_error or e
            continue
        if found is None:
            found = payload
        if owned is None:
            break
        owned.insert(0, (step, path))
    if found is None and first_error is not None:
        raise first_error
    return found


def snapshot(
    step: int,
    config_hash: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    sampler: Any,
    stats: Any,
    world_size: int,
) -> dict[str, Any]:
    """The payload of a training checkpoint (the caller adds run-level fields such as metrics)."""
    return {
        "version": CHECKPOINT_VERSION,
        "step": step,
        "config_hash": config_hash,
        "world_size": world_size,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "sampler": sampler.state_dict(),
        "stats": stats.state_dict(),
        "rng": rng_state(),
    }


def restore(
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    sampler: Any,
    stats: Any,
    env: Any,
) -> None:
    """Load a `snapshot` into freshly built objects (any world size: the sampler state is global)."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    sampler.load_state_dict(state["sampler"])
    stats.load_state_dict(state["stats"], env)
    if state["world_size"] == env.world_size:
        set_rng_state(state["rng"])


def rng_state() -> dict[str, Any]:
    """Python and torch RNG states (CPU, and CUDA when in use), saved for inspection and restore."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore torch's RNG states. Python's is saved but left alone: the trainer never draws from
    it, and restoring it would change the caller's global state."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
