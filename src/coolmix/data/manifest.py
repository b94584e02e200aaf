"""The corpus cache: where it lives, checksummed writes, a build lock and manifests.

Built corpora go into an ignored directory (``$COOLMIX_CACHE``, else ``.cache/coolmix`` under the
working directory). Every build writes a ``manifest.json`` beside its files, holding the source
(package and version), per-language counts and the sha256 of every file; a cache whose manifest
does not match what is asked for, has unexpected content (`has_fields`), or whose files fail
their checksum, is rebuilt, and the builder says so in one log line. Files are written with the
package's one atomic writer, `coolmix.fileio.write_atomic`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from coolmix.errors import ConfigError
from coolmix.fileio import open_regular, read_bytes, write_atomic

__all__ = [
    "CACHE_ENV",
    "FORMAT_VERSION",
    "build_lock",
    "default_cache_dir",
    "files_match",
    "has_fields",
    "read_json",
    "read_manifest",
    "replace_dir",
    "resolve_cache_dir",
    "sha256_bytes",
    "sha256_file",
    "write_checksummed",
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
    with os.fdopen(open_regular(path, os.O_RDONLY, "cache_dir"), "rb") as f:  # never through a link
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checksummed(path: Path, text: str) -> str:
    """Write UTF-8 text atomically (`coolmix.fileio.write_atomic`); return its sha256 for a manifest."""
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    return sha256_bytes(data)


def write_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest.json`` last, so a directory with a manifest is a finished build."""
    write_checksummed(
        directory / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False)
    )


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object with ``format == FORMAT_VERSION`` from ``path``; None if absent, unreadable,
    not an object or of another format (all of which mean: rebuild)."""
    try:  # a link, FIFO or device in the cache is a ConfigError (a ValueError): rebuilt, never read
        data = json.loads(read_bytes(path, "cache_dir").decode("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT_VERSION else None


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of a finished build, or None if absent or unreadable (which means: rebuild)."""
    return read_json(directory / MANIFEST)


def has_fields(entry: Any, fields: Mapping[str, type | tuple[type, ...]]) -> bool:
    """True if ``entry`` is a mapping holding every key of ``fields`` with a value of its type
    (bools never count as numbers). A manifest that parses but fails this is rebuilt, not trusted.

    >>> has_fields({"file": "en.tsv", "verses": 3}, {"file": str, "verses": int})
    True
    >>> has_fields({"file": "en.tsv"}, {"file": str, "verses": int})
    False
    """
    if not isinstance(entry, Mapping):
        return False
    for key, kind in fields.items():
        v = entry.get(key)
        if not isinstance(v, kind) or (isinstance(v, bool) and bool not in _types(kind)):
            return False
    return True


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


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
    with os.fdopen(open_regular(root / f".{name}.lock", os.O_RDWR | os.O_CREAT, "cache_dir"), "r+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
