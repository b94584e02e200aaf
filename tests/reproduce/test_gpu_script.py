"""scripts/gpu_table4.sh, the GPU-ready Table-4 core: its CPU dry run (tiny sizes) writes both
reports and the verdicts-by-size table, so the script cannot rot while no GPU is lent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_script_dry_run_on_cpu_writes_both_reports_and_the_size_table(tmp_path):
    env = {
        **os.environ,
        "DEVICE": "cpu",
        "TINY": "1",
        "WORKERS": "2",
        "COOLMIX": str(Path(sys.executable).parent / "coolmix"),
    }
    out = tmp_path / "gpu"
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_table4.sh"), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for size in ("20m", "85m"):
        report = (out / size / "report.md").read_text()
        assert f"preset: **gpu-{size}**" in report and "`run.device=cpu`" in report
    table = (out / "by_size.md").read_text()
    assert "| claim | 20M | 85M | moved? / trend |" in table
    assert all(f"| {c} |" in table for c in ("E5", "E5m", "E6", "E8m", "E9"))
