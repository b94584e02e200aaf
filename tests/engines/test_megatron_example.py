"""examples/megatron_example.py runs against the real megatron-core and shows what it claims."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("megatron.core", reason="megatron-core not installed (pip install 'coolmix[engines]')")

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "megatron_example.py"


def test_megatron_example_runs_and_resumes_exactly(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(SCRIPT)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout
    assert "continues the DP=2 run exactly" in out
    hot = dict(x.split() for x in out.split("τ=5 half: ")[1].splitlines()[0].split(", "))
    cold = dict(x.split() for x in out.split("τ=1 half: ")[1].splitlines()[0].split(", "))
    assert float(hot["sw"]) > 5 * float(cold["sw"])  # the rare language is upsampled before the cooldown only
    assert not list(tmp_path.iterdir())  # nothing written outside its own temporary directory
