"""Exact resume: a run killed with SIGKILL and resumed ends bit-identical to one never stopped.

Dropout is on (p = 0.1), so the test also covers the per-step dropout seeding. The reference
runs in-process; the killed run is a real ``coolmix train`` subprocess, resumed by another.
"""

import os
import shutil
import signal
import subprocess
import time

import pytest
import torch
from train_helpers import REPO, cli_command, final_params, run_cli, write_config

from coolmix.train import read_records, train
from coolmix.train.checkpoint import list_checkpoints

STEPS = 120


def comparable(records):
    """Records minus the wall-clock fields and the provenance (where it ran): they may differ."""
    return [{k: v for k, v in r.items() if k not in ("time", "tokens_per_s", "provenance")} for r in records]


def assert_same_run(a, b):
    pa, pb = final_params(a), final_params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k  # bit-identical, not merely close
    assert comparable(read_records(a)) == comparable(read_records(b))  # no duplicated or lost records


@pytest.fixture
def reference(tmp_path, lm_config, data_cache):
    cfg = lm_config(
        f"run.total_steps={STEPS}",
        "run.eval_every=10",
        "run.checkpoint_every=5",
        "run.keep=3",
        "run.batch_size=16",
        "model.d_model=64",
    )
    out = tmp_path / "reference"
    train(cfg, out, cache=data_cache)
    return cfg, out


@pytest.mark.slow  # multi-process (torchrun / SIGKILL): the slow job
def test_sigkill_then_resume_is_bit_exact(tmp_path, reference):
    cfg, ref = reference
    config = write_config(cfg, tmp_path / "config.toml")
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        cli_command(config, out),
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not any(step >= 20 for step, _ in list_checkpoints(out)):  # mid-run, after two evals
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = list_checkpoints(out)[-1][0]
    assert 20 <= killed_at < STEPS, killed_at  # it really was interrupted
    run_cli(config, out, "--resume")
    assert_same_run(ref, out)


def test_corrupt_newest_checkpoint_resumes_from_the_previous_one(tmp_path, reference, data_cache, caplog):
    cfg, ref = reference
    out = tmp_path / "corrupt"
    shutil.copytree(ref, out)
    newest = out / f"ckpt-{STEPS:08d}.pt"
    raw = bytearray(newest.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one flipped bit
    newest.write_bytes(bytes(raw))
    with caplog.at_level("WARNING", logger="coolmix"):
        train(cfg, out, resume=True, cache=data_cache)  # retrains the last 5 steps
    warning = [r.getMessage() for r in caplog.records if "p·B" not in r.getMessage()]  # not the config's
    assert len(warning) == 1 and newest.name in warning[0] and "checksum mismatch" in warning[0]
    assert_same_run(ref, out)
