"""Every file the package reads or writes in a directory it owns: regular files only, links never followed.

Writes go through one atomic writer: a temp file beside the target (created with ``O_EXCL`` and
``O_NOFOLLOW``), fsync, rename over the target, fsync of the directory, so readers see the old
file or the whole new one. Temp files are named ``.{name}.tmp-{pid}`` so housekeeping can find
and remove a killed writer's. A target (or a file read) that is a symbolic link, a directory, a
FIFO or a device is refused with one `ConfigError` line: a run, cache or report directory that a
user downloaded must not make coolmix overwrite, truncate or block on anything outside it.
Reads open with ``O_NOFOLLOW | O_NONBLOCK`` and check the opened descriptor with ``fstat``, so
there is no window between the check and the use, and a FIFO never blocks the open.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coolmix.errors import ConfigError

__all__ = [
    "TMP_MARK",
    "fsync_dir",
    "iter_lines",
    "make_dir",
    "open_regular",
    "read_bytes",
    "read_text",
    "regular_or_missing",
    "remove_stale_temps",
    "save_figure",
    "write_atomic",
    "write_atomic_text",
]

TMP_MARK = ".tmp-"

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _kind(mode: int) -> str:
    """What a non-regular file is, in the words of an error message."""
    if stat.S_ISLNK(mode):
        return "a symbolic link (coolmix does not follow links in the directories it reads and writes)"
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "not a regular file"


def _field(field: str | None, path: Path) -> str:
    return field or path.name


def regular_or_missing(path: str | os.PathLike[str], field: str | None = None) -> bool:
    """True if ``path`` is a regular file, False if nothing is there; `ConfigError` for anything else
    (a link, even to a regular file, a directory, a FIFO, a device) or a path that cannot be checked."""
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return False
    except OSError as e:
        raise ConfigError(_field(field, p), str(p), f"cannot check it: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(_field(field, p), str(p), f"is {_kind(st.st_mode)}")
    return True


def open_regular(
    path: str | os.PathLike[str], flags: int, field: str | None = None, *, follow: bool = False
) -> int:
    """``os.open`` that only ever returns a descriptor of a regular file (blocking mode restored).

    Links are refused unless ``follow`` (a file the user named on the command line may be one; a
    file inside a directory coolmix owns may not). A FIFO or device is refused without blocking.
    ``FileNotFoundError`` passes through (callers decide whether missing is fine); every other
    refusal is one `ConfigError` naming ``field`` (default: the file name).
    """
    p = Path(path)
    extra = _NONBLOCK | _CLOEXEC | (0 if follow else _NOFOLLOW)
    try:
        fd = os.open(p, flags | extra, 0o644)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:
            try:
                mode = os.lstat(p).st_mode
            except OSError:
                mode = stat.S_IFLNK
            raise ConfigError(_field(field, p), str(p), f"is {_kind(mode)}") from None
        if e.errno == errno.ELOOP:
            raise ConfigError(_field(field, p), str(p), "is a symbolic link loop") from None
        if e.errno == errno.EISDIR:
            raise ConfigError(_field(field, p), str(p), f"is {_kind(stat.S_IFDIR)}") from None
        if e.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise ConfigError(_field(field, p), str(p), f"is {_kind(stat.S_IFIFO)}") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(_field(field, p), str(p), f"is {_kind(mode)}")
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(
    path: str | os.PathLike[str], field: str | None = None, *, follow: bool = False, limit: int | None = None
) -> bytes:
    """The bytes of a regular file (see `open_regular`); more than ``limit`` bytes is a `ConfigError`."""
    fd = open_regular(path, os.O_RDONLY, field, follow=follow)
    with os.fdopen(fd, "rb") as f:
        if limit is None:
            return f.read()
        data = f.read(limit + 1)
    if len(data) > limit:
        p = Path(path)
        raise ConfigError(_field(field, p), str(p), f"larger than {limit:,} bytes")
    return data


def read_text(path: str | os.PathLike[str], field: str | None = None, *, follow: bool = False) -> str:
    """`read_bytes` decoded as UTF-8 (a leading byte-order mark dropped); not UTF-8 is a `ConfigError`."""
    data = read_bytes(path, field, follow=follow)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        p = Path(path)
        why = f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
        raise ConfigError(_field(field, p), str(p), why) from None


def iter_lines(
    path: str | os.PathLike[str], field: str | None = None, *, follow: bool = True
) -> Iterator[tuple[int, str]]:
    """(line number, text) of a regular UTF-8 file, lazily (shards may be large); ``\r\n`` reads as ``\n``.

    A FIFO, a device or a directory is a `ConfigError` before anything is read (links are followed
    by default: data files are named by the user); so is a line that is not UTF-8, naming it.
    """
    p = Path(path)
    try:
        fd = open_regular(p, os.O_RDONLY, field, follow=follow)
    except FileNotFoundError:
        raise ConfigError(_field(field, p), str(p), "file not found") from None
    with os.fdopen(fd, "rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                why = f"line {n} is not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start})"
                raise ConfigError(_field(field, p), str(p), why) from None
            yield n, text[:-2] + "\n" if text.endswith("\r\n") else text


def make_dir(
    path: str | os.PathLike[str], field: str | None = None, root: str | os.PathLike[str] | None = None
) -> Path:
    """Create directory ``path`` (and its parents) inside a tree coolmix owns; return it.

    ``path`` (and, with ``root``, every directory from ``root`` down to it) must end up a real
    directory, not a link to one: a planted ``runs -> /elsewhere`` would otherwise send every
    write below it outside the tree. `ConfigError` otherwise, or when the directory cannot be made.
    """
    p = Path(path)
    chain = [p]
    if root is not None:
        base = Path(root)
        chain = [base]
        for part in p.relative_to(base).parts:
            chain.append(chain[-1] / part)
    for i, d in enumerate(chain):
        try:
            d.mkdir(parents=i == 0, exist_ok=True)
        except FileExistsError:
            pass  # a file or a link in the way: described below
        except OSError as e:
            why = f"cannot create the directory: {e.strerror or e}"
            raise ConfigError(_field(field, d), str(d), why) from None
        try:
            mode = os.lstat(d).st_mode
        except OSError as e:
            why = f"cannot create the directory: {e.strerror or e}"
            raise ConfigError(_field(field, d), str(d), why) from None
        if not stat.S_ISDIR(mode):
            raise ConfigError(_field(field, d), str(d), f"must be a directory but is {_kind(mode)}")
    return p


def write_atomic(path: str | os.PathLike[str], data: bytes, field: str | None = None) -> None:
    """Write ``data`` to ``path`` atomically and durably (temp file, fsync, rename, fsync dir).

    A target that exists and is not a regular file (a link, a directory, a FIFO, a device) is
    refused with a `ConfigError`; the temp file is created with ``O_EXCL | O_NOFOLLOW``, so a
    link planted under its name is never written through.
    """
    path = Path(path)
    regular_or_missing(path, field)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    fd = _create_temp(tmp, field)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        regular_or_missing(path, field)  # checked again just before the rename
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    fsync_dir(path.parent)


def _create_temp(tmp: Path, field: str | None) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    try:
        return os.open(tmp, flags, 0o644)
    except FileExistsError:  # a killed writer's temp with our pid, or something planted there
        try:
            tmp.unlink()  # removes a link itself, never its target
        except OSError as e:
            why = f"cannot replace a stale temp file: {e}"
            raise ConfigError(_field(field, tmp), str(tmp), why) from None
        return os.open(tmp, flags, 0o644)


def write_atomic_text(path: str | os.PathLike[str], text: str, field: str | None = None) -> None:
    """`write_atomic` for UTF-8 text."""
    write_atomic(path, text.encode("utf-8"), field)


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 110, field: str | None = None) -> Path:
    """Render a matplotlib figure to PNG in memory and write it with `write_atomic` (never through a link)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    write_atomic(path, buf.getvalue(), field)
    return Path(path)


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
    except (OverflowError, ValueError):  # a number no pid can be
        return False
    return True
