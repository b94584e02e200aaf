"""The corpus cache: where it lives, atomic writes, checksums, a build lock and manifests.

Built corpora go into an ignored directory (``$COOLMIX_CACHE``, else ``.cache/coolmix`` under the
working directory). Every build writes a ``manifest.json`` beside its files, holding the source
(package and version), per-language counts and the sha256 of every file; a cache whose manifest
does not match what is asked for, or whose files fail their checksum, is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from coolmix.errors import ConfigError

__all__ = [
    "CACHE_ENV",
    "FORMAT_VERSION",
    "atomic_write_text",
    "build_lock",
    "default_cache_dir",
    "files_match",
    "read_manifest",
    "replace_dir",
    "resolve_cache_dir",
    "sha256_bytes",
    "sha256_file",
    "write_manifest",
]

CACHE_ENV = "COOLMIX_CACHE"
FORMAT_VERSION = 1
"""Bumped when the layout of built files changes; old caches then fail to match and are rebuilt."""

MANIFEST = "manifest.json"


def default_cache_dir() -> Path:
    """``$COOLMIX_CACHE`` if set, else ``.cache/coolmix`` under the current directory."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.cwd() / ".cache" / "coolmix"


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    """The cache root to use, created if missing; ConfigError if it cannot be created."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError("cache_dir", str(root), f"cannot create: {e.strerror}") from None
    return root


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> str:
    """Write UTF-8 text via a temp file + rename (readers never see half a file); return its sha256."""
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return sha256_bytes(data)


def write_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest.json`` last, so a directory with a manifest is a finished build."""
    atomic_write_text(
        directory / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False)
    )


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of a finished build, or None if absent or unreadable (which means: rebuild)."""
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT_VERSION else None


def files_match(directory: Path, checksums: Mapping[str, str]) -> bool:
    """True if every listed file exists with the recorded sha256 (a corrupt file means rebuild)."""
    try:
        return all(sha256_file(directory / name) == digest for name, digest in checksums.items())
    except OSError:
        return False


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished build directory into place, replacing a stale one."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


@contextlib.contextmanager
def build_lock(root: Path, name: str) -> Iterator[None]:
    """Exclusive inter-process lock around a build, so ranks of one job do not build twice.

    Uses ``fcntl.flock`` where available; elsewhere it is a no-op (single-process use).
    """
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(root / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
