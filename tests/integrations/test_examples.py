"""Every script under examples/ runs to completion (each asserts its own claim, e.g. exact resume)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
NEEDS = {
    "stateful_dataloader.py": "torchdata",
    "streaming_packing.py": "torchdata",
    "hf_trainer.py": "transformers",
    "grain_example.py": "grain",  # the engines' examples also run in tests/engines (.venv-engines)
    "torchtitan_example.py": "torchtitan",
    "megatron_example.py": "megatron.core",
}


def test_examples_are_found():
    assert {p.name for p in SCRIPTS} >= {
        "torch_dataloader.py",
        "stateful_dataloader.py",
        "tensor_parallel.py",
        "hf_trainer.py",
    }


@pytest.mark.slow  # each starts a fresh interpreter (torch import, workers): 8-45 s on a shared box
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_example_runs(script, tmp_path):
    if script.name in NEEDS:
        pytest.importorskip(NEEDS[script.name])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(var, None)
    p = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip(), "an example should print what it shows"
