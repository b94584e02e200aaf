"""The run directory: one writer at a time, and housekeeping before a run touches it.

A run holds an exclusive ``fcntl.flock`` on ``<out>/.lock`` for the whole process: a second
``coolmix train`` into the same directory (with or without ``--resume``) is refused with one
line naming the holder's pid. The kernel drops the lock when its holder dies, however it dies
(SIGKILL included), so a crashed run never blocks the next ``--resume``; the pid written into
the file is only for the message, never trusted for the decision. ``.lock`` must be a regular
file: a link there (dangling or not) is refused, never followed, so a downloaded run directory
cannot make the lock truncate or create a file outside it. ``coolmix reproduce`` locks its own
folder the same way (``RunLock(out, "coolmix reproduce")``).

At start the lock holder also removes temp files that killed writers left behind
(``.ckpt-00000040.pt.tmp-1234``): holding the lock proves no other live run writes here.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from coolmix.errors import ConfigError
from coolmix.fileio import TMP_MARK, make_dir, open_regular, remove_stale_temps

__all__ = ["LOCK_FILE", "RunLock", "clean_temps"]

LOCK_FILE = ".lock"

log = logging.getLogger(__name__)


class RunLock:
    """Exclusive lock on a run directory, held from `acquire` until `release` or process exit.

    ``with RunLock(out): ...`` holds it for a block; a second `acquire` on the same directory,
    from this process or another, raises ``ConfigError("out", ...)`` while it is held.
    """

    def __init__(self, out: Path, command: str = "coolmix train") -> None:
        self.out = Path(out)
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (``ConfigError`` if held); ``.lock`` must be a regular file, never a link."""
        import fcntl

        make_dir(self.out, "out")
        fd = open_regular(self.out / LOCK_FILE, os.O_RDWR | os.O_CREAT, "out")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                "out",
                str(self.out),
                f"is in use by another {self.command} process (pid {holder}); wait for it to "
                "finish or use another --out",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases the flock)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def clean_temps(out: Path) -> list[Path]:
    """Remove temp files of dead writers in ``out`` (call with the `RunLock` held); log one line.

    `remove_stale_temps` removes those whose writer pid is gone; under the lock a temp file of
    a live pid other than ours is stale too (its pid was reused), so it goes as well.
    """
    removed = remove_stale_temps(out)
    for p in out.glob(f".*{TMP_MARK}*"):
        pid = p.name.rsplit(TMP_MARK, 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid():
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    if removed:
        names = ", ".join(sorted(p.name for p in removed)[:3]) + (", ..." if len(removed) > 3 else "")
        log.warning("removed %d temp file(s) left by a killed run in %s: %s", len(removed), out, names)
    return removed
