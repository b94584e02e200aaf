"""One atomic writer for every file the package persists (checkpoints, manifests, reports, metrics).

Readers see either the old file or the whole new one: write a temp file beside the target, fsync
it, rename it over the target, then fsync the directory so the rename itself survives a crash.
Temp files are named ``.{name}.tmp-{pid}`` so housekeeping can find and remove a killed writer's.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["TMP_MARK", "fsync_dir", "remove_stale_temps", "write_atomic", "write_atomic_text"]

TMP_MARK = ".tmp-"


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (temp file, fsync, rename, fsync dir)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    fsync_dir(path.parent)


def write_atomic_text(path: str | os.PathLike[str], text: str) -> None:
    """`write_atomic` for UTF-8 text."""
    write_atomic(path, text.encode("utf-8"))


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temp files left by writers that no longer run (their pid is gone); return what was removed."""
    removed = []
    for p in Path(directory).glob(f".*{TMP_MARK}*"):
        pid = p.name.rsplit(TMP_MARK, 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
