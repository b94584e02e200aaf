"""The run directory never loses data and never accepts a wrong run (issue 8).

One reference run (12 steps, an eval every 2, a checkpoint every 4, all three kept) is copied and
damaged in every way a crash, a user or a second process can damage it; each resume must end
bit-identical to the reference (parameters and records), saying what it did in one warning line.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from train_helpers import REPO, TINY_LM, cli_command, final_params, run_cli, write_config

from coolmix.errors import ConfigError
from coolmix.train import load_config, preflight, read_records, train
from coolmix.train import loop as loopmod
from coolmix.train.checkpoint import list_checkpoints, read
from coolmix.train.metrics import METRICS_FILE
from coolmix.train.rundir import LOCK_FILE, RunLock

STEPS = 12


def comparable(records):
    """Records minus the wall-clock fields and the provenance (where it ran): they may differ."""
    return [{k: v for k, v in r.items() if k not in ("time", "tokens_per_s", "provenance")} for r in records]


def assert_same_run(a: Path, b: Path) -> None:
    pa, pb = final_params(a), final_params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
    assert comparable(read_records(a)) == comparable(read_records(b))


def config(cache_dir, *extra):
    return load_config(
        TINY_LM,
        [
            f'run.cache_dir="{cache_dir}"',
            f"run.total_steps={STEPS}",
            "run.eval_every=2",
            "run.checkpoint_every=4",
            "run.keep=3",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir, data_cache):
    cfg = config(cache_dir)
    out = tmp_path_factory.mktemp("reference")
    torch.set_num_threads(1)
    train(cfg, out, cache=data_cache)
    assert [s for s, _ in list_checkpoints(out)] == [4, 8, 12]
    return cfg, out


def crashed_copy(reference, tmp_path: Path, at: int = 8) -> Path:
    """The reference as a crash right after the checkpoint of step ``at`` would leave it."""
    _, ref = reference
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    for step, path in list_checkpoints(out):
        if step > at:
            path.unlink()
    return out


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# -- metrics.jsonl is not the source of truth: the checkpoint is -------------------------------

METRICS_DAMAGE = {
    "deleted": lambda p: p.unlink(),
    "empty": lambda p: p.write_bytes(b""),
    "truncated_mid_line": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3]),
    "zeroed_same_size": lambda p: p.write_bytes(b"\0" * len(p.read_bytes())),
    "garbage_first_line": lambda p: p.write_bytes(b"garbage\n" + p.read_bytes()),
}


@pytest.mark.parametrize("damage", METRICS_DAMAGE.values(), ids=METRICS_DAMAGE.keys())
def test_resume_repairs_damaged_metrics_and_stays_bit_exact(reference, tmp_path, data_cache, caplog, damage):
    cfg, ref = reference
    out = crashed_copy(reference, tmp_path)
    damage(out / METRICS_FILE)
    with caplog.at_level(logging.WARNING, logger="coolmix"):
        train(cfg, out, resume=True, cache=data_cache)
    assert_same_run(ref, out)
    assert (out / METRICS_FILE).read_bytes()[:1] == b"{"  # no NUL bytes, no garbage kept
    said = [w for w in warnings_of(caplog) if METRICS_FILE in w]
    assert len(said) == 1 and "up to step 8 from the checkpoint" in said[0]


@pytest.mark.parametrize("damage", ["empty", "deleted", "zeroed_same_size"])
def test_resume_of_a_finished_run_returns_its_final_record(reference, tmp_path, data_cache, caplog, damage):
    cfg, ref = reference
    out = crashed_copy(reference, tmp_path, at=STEPS)
    METRICS_DAMAGE[damage](out / METRICS_FILE)
    with caplog.at_level(logging.WARNING, logger="coolmix"):
        result = train(cfg, out, resume=True, cache=data_cache)  # today: IndexError / NUL bytes
    final = read_records(ref)[-1]
    assert result == final and result["final"] is True
    assert read_records(out) == read_records(ref)  # the file is rewritten from the checkpoint
    assert len([w for w in warnings_of(caplog) if METRICS_FILE in w]) == 1


def test_tail_written_after_the_checkpoint_is_cut_silently(reference, tmp_path, data_cache, caplog):
    cfg, ref = reference
    out = crashed_copy(reference, tmp_path)  # metrics still hold steps 10 and 12
    with open(out / METRICS_FILE, "ab") as f:
        f.write(b'{"step": 13, "half')  # and a torn last line
    with caplog.at_level(logging.WARNING, logger="coolmix"):
        train(cfg, out, resume=True, cache=data_cache)
    assert_same_run(ref, out)
    # the normal aftermath of a crash is not news (the config's rare-domain warning is not about it)
    assert [w for w in warnings_of(caplog) if "p·B" not in w] == []


# -- checkpoint housekeeping -------------------------------------------------------------------


def test_stale_temp_files_of_a_killed_writer_are_removed(reference, tmp_path, data_cache, caplog):
    cfg, ref = reference
    out = crashed_copy(reference, tmp_path)
    dead = _dead_pid()
    stale = [out / f".ckpt-00000012.pt.tmp-{dead}", out / f".metrics.jsonl.tmp-{os.getppid()}"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    with caplog.at_level(logging.WARNING, logger="coolmix"):
        train(cfg, out, resume=True, cache=data_cache)
    assert not any(p.exists() for p in stale)
    assert any("removed 2 temp file(s)" in w for w in warnings_of(caplog))
    assert_same_run(ref, out)


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("stray", ["garbage", "renamed_copy"])
def test_stray_checkpoint_names_never_count_toward_keep(reference, tmp_path, data_cache, caplog, stray):
    cfg, ref = reference
    out = crashed_copy(reference, tmp_path, at=4)
    bogus = out / "ckpt-99999999.pt"
    if stray == "garbage":
        bogus.write_bytes(b"a user's file that only looks like a checkpoint")
    else:
        shutil.copy(out / "ckpt-00000004.pt", bogus)  # valid bytes, wrong step for its name
    keep1 = cfg.replace(overrides=["run.keep=1"])  # operational: same config hash
    with caplog.at_level(logging.WARNING, logger="coolmix"):
        train(keep1, out, resume=True, cache=data_cache)
    # today every new checkpoint is deleted, since the stray one is "the newest"
    assert [p.name for _, p in list_checkpoints(out)] == ["ckpt-00000012.pt", bogus.name]
    assert read(out / "ckpt-00000012.pt")["step"] == STEPS and bogus.exists()
    assert any(bogus.name in w for w in warnings_of(caplog))  # skipped, with its reason
    pa, pb = final_params(ref), read(out / "ckpt-00000012.pt")["model"]
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


# -- one writer per run directory --------------------------------------------------------------


def test_a_held_directory_is_refused_in_process(reference, tmp_path, data_cache):
    cfg, _ = reference
    out = crashed_copy(reference, tmp_path)
    with RunLock(out), pytest.raises(ConfigError, match=r"^out=.*is in use by another coolmix train process"):
        train(cfg, out, resume=True, cache=data_cache)
    assert [s for s, _ in list_checkpoints(out)] == [4, 8]  # nothing touched


def _popen(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        cli_command(config, out, *extra),
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(cond, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.slow
def test_two_writers_second_refused_then_stale_lock_after_sigkill(tmp_path, cache_dir, data_cache):
    cfg = config(cache_dir, "run.total_steps=400", "run.eval_every=20", "run.checkpoint_every=4")
    cfg_file = write_config(cfg, tmp_path / "config.toml")
    out = tmp_path / "shared"
    first = _popen(cfg_file, out)
    try:
        _wait_for(lambda: bool(list_checkpoints(out)), first)
        first.send_signal(signal.SIGSTOP)  # alive and holding the lock, but not finishing meanwhile
        for extra in ((), ("--resume",)):
            second = subprocess.run(
                cli_command(cfg_file, out, *extra),
                cwd=REPO,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert second.returncode == 2, second.stderr[-2000:]
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1 and "is in use by another coolmix train process" in lines[0]
            assert f"pid {first.pid}" in lines[0]
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        first.stderr.close()
    assert (out / LOCK_FILE).exists()  # the dead run's lock file is still there...
    killed_at = list_checkpoints(out)[-1][0]
    assert killed_at < 400
    run_cli(cfg_file, out, "--resume", timeout=300)  # ...and does not block the resume
    assert read_records(out)[-1]["step"] == 400 and list_checkpoints(out)[-1][0] == 400


@pytest.mark.slow
def test_kill_anywhere_including_checkpoint_writes_then_resume_is_bit_exact(tmp_path, cache_dir, data_cache):
    """SIGKILL at many moments (checkpoints every step, so many kills land inside a write)."""
    cfg = config(cache_dir, "run.total_steps=120", "run.eval_every=5", "run.checkpoint_every=1", "run.keep=2")
    ref = tmp_path / "reference"
    train(cfg, ref, cache=data_cache)
    cfg_file = write_config(cfg, tmp_path / "config.toml")
    out = tmp_path / "killed"
    kills = 0
    for delay in (0.0, 0.05, 0.013, 0.21, 0.09, 0.33, 0.002, 0.5):
        proc = _popen(cfg_file, out, "--resume")
        start = list_checkpoints(out)[-1][0] if list_checkpoints(out) else 0
        # wait until this process has written a checkpoint of its own, then kill after `delay`
        try:
            _wait_for(lambda s=start: bool(list_checkpoints(out)) and list_checkpoints(out)[-1][0] > s, proc)
        except AssertionError:
            if proc.poll() == 0:
                break  # finished before we got to kill it
            raise
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        proc.stderr.close()
    assert kills >= 3
    run_cli(cfg_file, out, "--resume", timeout=300)
    assert_same_run(ref, out)
    assert not list(out.glob(".*.tmp-*"))  # every killed writer's temp file is gone


# -- a run that would be silently wrong is refused at start --------------------------------------


def test_resume_with_other_threads_says_bit_exactness_is_lost(reference, tmp_path, data_cache, caplog):
    cfg, _ = reference
    out = crashed_copy(reference, tmp_path)
    two = cfg.replace(overrides=["run.threads=2"])  # not hashed: the resume is allowed...
    with caplog.at_level(logging.WARNING, logger="coolmix"):
        train(two, out, resume=True, cache=data_cache)
    said = [w for w in warnings_of(caplog) if "bit-exactness" in w]
    assert len(said) == 1 and "threads 1 -> 2" in said[0]  # ...and says what it costs
    assert read(out / "ckpt-00000012.pt")["threads"] == 2


def test_unreachable_target_is_refused_at_start(tmp_path, cache_dir, data_cache):
    import coolmix as cm

    sample = {"kind": "explicit", "weights": {"en": 1, "sw": 0}}
    cfg = config(cache_dir, f"balance.sample={_toml(sample)}", "balance.target=5")
    with pytest.raises(ConfigError) as core:  # the core refuses the same input
        cm.loss_weights({"en": 200, "sw": 8}, target=cm.Temperature(5), sample=cm.Explicit(sample["weights"]))
    with pytest.raises(ConfigError) as e:
        train(cfg, tmp_path / "run", cache=data_cache)
    assert e.value.field == "balance.target" and "'sw'" in str(e.value) and "never samples" in str(e.value)
    assert core.value.value == "sw" and not list_checkpoints(tmp_path / "run")
    # a domain absent in one phase only is reachable (weights p_target / p_sample elsewhere)
    preflight.check_target_reachable(
        cm.Stages(starts=(0, 6), dists=(cm.Explicit({"en": 1}), cm.Temperature(1.0))),
        cm.Temperature(5),
        {"en": 200, "sw": 8},
        STEPS,
    )


def _toml(d: dict) -> str:
    inner = ", ".join(f"{k} = {_toml(v) if isinstance(v, dict) else repr(v)}" for k, v in d.items())
    return "{" + inner.replace("'", '"') + "}"


def test_model_is_built_from_the_configured_vocabulary(reference):
    cfg, ref = reference
    params = final_params(ref)
    assert params["wte.weight"].shape[0] == cfg.tokenizer.vocab_size


def test_a_tokenizer_larger_than_the_config_is_an_error(reference):
    cfg, _ = reference

    class Big:
        vocab_size = cfg.tokenizer.vocab_size + 1

    with pytest.raises(ConfigError, match=r"^tokenizer\.vocab_size=300: the cached tokenizer has 301 tokens"):
        preflight.check_vocab(cfg, Big())


def test_cuda_without_a_gpu_is_one_line_before_any_data(tmp_path, cache_dir, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setattr(loopmod.tasks, "prepare", lambda *a, **k: pytest.fail("data built"))
    with pytest.raises(ConfigError, match=r"^run\.device='cuda': no CUDA GPU"):
        train(config(cache_dir, 'run.device="cuda"'), tmp_path / "run")


@pytest.mark.parametrize(("name", "value"), [("WORLD_SIZE", "two"), ("RANK", "1.5"), ("WORLD_SIZE", "-3")])
def test_non_integer_torchrun_environment_is_one_line(tmp_path, cache_dir, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(loopmod.tasks, "prepare", lambda *a, **k: pytest.fail("data built"))
    with pytest.raises(ConfigError) as e:
        train(config(cache_dir), tmp_path / "run")
    assert e.value.field == name and "environment variable must be an integer" in str(e.value)


# -- the file system says no: one line, state kept -----------------------------------------------


def test_out_with_a_too_long_name_is_one_line(tmp_path, cache_dir):
    out = tmp_path / ("x" * 300)
    with pytest.raises(ConfigError, match=r"^out=.*cannot (write|create the directory): File name too long"):
        train(config(cache_dir), out)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_full_disk_or_read_only_out_keeps_the_checkpoints(reference, tmp_path, data_cache, monkeypatch, err):
    cfg, _ = reference
    out = crashed_copy(reference, tmp_path)
    before = {p.name: p.read_bytes() for _, p in list_checkpoints(out)}
    import coolmix.train.checkpoint as ckpt

    def refuse(path, data):
        raise OSError(err, os.strerror(err), str(path))

    monkeypatch.setattr(ckpt, "write_atomic", refuse)
    with pytest.raises(ConfigError) as e:
        train(cfg, out, resume=True, cache=data_cache)
    assert e.value.field == "out" and os.strerror(err) in str(e.value) and "\n" not in str(e.value)
    assert {p.name: p.read_bytes() for _, p in list_checkpoints(out)} == before
    monkeypatch.undo()
    train(cfg, out, resume=True, cache=data_cache)  # once there is room, the run continues
    assert read(out / "ckpt-00000012.pt")["step"] == STEPS


def test_cli_reports_a_locked_out_and_an_os_error_in_one_line(reference, tmp_path, capsys):
    from coolmix.cli.__main__ import main

    cfg, _ = reference
    out = crashed_copy(reference, tmp_path)
    cfg_file = write_config(cfg, tmp_path / "config.toml")
    with RunLock(out):
        assert main(["train", str(cfg_file), "--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("coolmix: error: out=") and "in use" in err[0]
    assert main(["train", str(cfg_file), "--out", str(tmp_path / ("y" * 300)), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "File name too long" in err[0]


# -- clipping is measured ------------------------------------------------------------------------


def test_records_carry_pre_clip_grad_norms_per_step(reference, tmp_path, cache_dir, data_cache):
    _, ref = reference
    records = read_records(ref)
    for r in records:
        assert len(r["grad_norm"]) == len(r["clipped"]) == 2  # one per step since the last record
        assert all(n > 0 for n in r["grad_norm"])
        assert r["clipped"] == [n + 1e-6 > 1.0 for n in r["grad_norm"]]  # optim.clip = 1.0
        assert r["clipped_fraction"] == sum(r["clipped"]) / 2
    # a clip no step reaches changes nothing: same trajectory, same norms, nothing clipped
    loose = train(config(cache_dir, "optim.clip=1e9"), tmp_path / "loose", cache=data_cache)
    off = train(config(cache_dir, "optim.clip=0"), tmp_path / "off", cache=data_cache)
    assert loose["grad_norm"] == off["grad_norm"] and not any(loose["clipped"] + off["clipped"])
    # the first step's norm does not depend on the clip (it is measured before clipping)
    assert read_records(tmp_path / "off")[0]["grad_norm"][0] == records[0]["grad_norm"][0]


@pytest.mark.slow
def test_cli_shows_the_warning_lines(reference, tmp_path):
    cfg, ref = reference
    out = crashed_copy(reference, tmp_path)
    (out / METRICS_FILE).unlink()
    cfg_file = write_config(cfg, tmp_path / "config.toml")
    p = subprocess.run(
        cli_command(cfg_file, out, "--resume"),
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    said = [ln for ln in p.stderr.splitlines() if ln.startswith("coolmix: warning:")]
    # the config's own rare-domain warning (p·B < 1, said at every start) is not about the crash
    about_the_crash = [ln for ln in said if "p·B" not in ln]
    assert len(about_the_crash) == 1 and "metrics.jsonl was missing" in about_the_crash[0]
    assert len(said) == 2
    assert_same_run(ref, out)
