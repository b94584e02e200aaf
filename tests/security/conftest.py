"""Shared pieces of the security tests: decoy files outside the tree a command owns."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest


class Decoys:
    """Files outside every directory a command owns; `unchanged` says whether any was touched."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.dir = root / "dir"
        self.dir.mkdir()
        self._saved: dict[Path, bytes] = {}

    def file(self, name: str, text: str = "") -> Path:
        path = self.root / name
        path.write_bytes((text or f"decoy {name}: must never change\n").encode())
        self._saved[path] = path.read_bytes()
        return path

    def missing(self, name: str) -> Path:
        """A path outside that does not exist (the target of a dangling link); must stay absent."""
        path = self.root / name
        self._saved[path] = b"<absent>"
        return path

    def unchanged(self) -> list[str]:
        """The decoys that changed, were created or were deleted (empty when all is well)."""
        bad = []
        for path, data in self._saved.items():
            now = path.read_bytes() if path.exists() else b"<absent>"
            if now != data:
                bad.append(f"{path.name}: {data[:30]!r} -> {now[:30]!r}")
        extra = sorted(p.name for p in self.dir.iterdir())
        if extra:
            bad.append(f"files written into the decoy directory: {extra}")
        return bad


@pytest.fixture
def decoys(tmp_path) -> Decoys:
    return Decoys(tmp_path / "outside")


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Fail (instead of hanging the suite) if the test blocks for 20 s: a FIFO read, /dev/zero."""

    def boom(*_: object) -> None:
        raise TimeoutError("blocked for 20 s (a FIFO or device was read)")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
