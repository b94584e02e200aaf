"""Where a run was trained: code commit, library versions and machine, stored in its final record.

A result reproduces bit for bit only with the same code, libraries, machine and thread count; on
another CPU it reproduces to float level (README, "What reproduces where"). Recording these lets a
report name the runs trained at another commit or on another machine.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["git_commit", "provenance"]


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The checkout's commit (with ``+dirty`` if tracked files changed), or None outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "") if sha else None


def _cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@functools.lru_cache(maxsize=1)
def _static() -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {
        "git_commit": git_commit(Path(__file__).parent),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": f"{platform.machine()}, {_cpu_model()}, {os.cpu_count()} cores",
        "platform": platform.platform(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
    return out


def provenance(threads: int | None = None) -> dict[str, Any]:
    """{git_commit, python, numpy, torch (if loaded), machine, platform, threads} of this process."""
    out = dict(_static())
    if threads is not None:
        out["threads"] = int(threads)
    return out
