"""Real torchrun (2 processes, gloo on loopback) against the single-process run.

Each rank trains on ``sampler.batch(step, rank, 2)`` and the loss is normalised by the global
batch, so DDP's gradient average is the single-process gradient: parameters agree up to float
reduction order. Dropout is off here (its masks are per rank, so they differ by construction).
"""

import shutil

import pytest
import torch
from train_helpers import final_params, run_cli, write_config

from coolmix.train import read_records, train

STEPS = 8


@pytest.fixture
def single(tmp_path, lm_config, data_cache):
    """The 1-process run, with a checkpoint at every step (so it can be resumed from step 4)."""
    cfg = lm_config(
        f"run.total_steps={STEPS}",
        "run.eval_every=4",
        "run.checkpoint_every=1",
        f"run.keep={STEPS}",
        "model.dropout=0.0",
        "balance.reduction=self_normalized",  # the normaliser needs the global batch, not the slice
    )
    out = tmp_path / "single"
    train(cfg, out, cache=data_cache)
    return cfg, out


def assert_close_runs(a, b):
    pa, pb = final_params(a), final_params(b)
    moved = max((pa[k] - final_params_init(a)[k]).abs().max().item() for k in pa)
    assert moved > 1e-3  # the parameters did move, so agreement means something
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], rtol=0, atol=1e-5, msg=k)
    ra, rb = read_records(a), read_records(b)
    assert [r["step"] for r in ra] == [r["step"] for r in rb]
    for x, y in zip(ra, rb, strict=True):
        assert x["examples"] == y["examples"] and x["tokens"] == y["tokens"]  # all-reduced counts
        for d, v in x["dev"]["loss"].items():
            assert y["dev"]["loss"][d] == pytest.approx(v, abs=1e-5)


def final_params_init(out):
    from coolmix.train import checkpoint

    (_, first), *_ = checkpoint.list_checkpoints(out)
    return checkpoint.read(first)["model"]


@pytest.mark.slow  # multi-process (torchrun / SIGKILL): the slow job
def test_two_processes_match_one(tmp_path, single):
    cfg, one = single
    two = tmp_path / "two"
    run_cli(write_config(cfg, tmp_path / "config.toml"), two, nproc=2)
    assert_close_runs(one, two)


@pytest.mark.slow  # multi-process (torchrun / SIGKILL): the slow job
def test_two_processes_resume_a_one_process_checkpoint(tmp_path, single):
    cfg, one = single
    resumed = tmp_path / "resumed"
    shutil.copytree(one, resumed)
    for step in range(5, STEPS + 1):  # keep only the checkpoints up to step 4
        (resumed / f"ckpt-{step:08d}.pt").unlink()
    run_cli(write_config(cfg, tmp_path / "config.toml"), resumed, "--resume", nproc=2)
    assert_close_runs(one, resumed)
