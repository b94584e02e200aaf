"""A handful of the hostile CLI cases as real processes: exit status 2, one stderr line, no traceback.

The in-process fuzz (``test_fuzz_cli``) calls ``main(argv)``; these check that the same holds for
the installed entry point, where nothing catches what ``main`` lets through.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

GOOD_LEDGER = json.dumps(
    {
        "step": 4,
        "ledger": {
            "en": {"examples": 12, "tokens": 120, "share": 1.0, "target_share": 1.0, "target_examples": 12,
                   "epochs": 0.12, "max_repeats": 1},
        },
    }
)  # fmt: skip

PLAN = """\
[mixture]
sizes = { en = 2733, sw = 1 }
[schedule]
kind = "cooldown"
[run]
total_steps = 10
batch_size = 4
"""


def _cases(tmp_path):
    plan = tmp_path / "p.toml"
    plan.write_text(PLAN)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(PLAN.encode() + b"# caf\xe9\n")
    bomb = tmp_path / "bomb.yaml"
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb.write_text("\n".join(lines) + "\nmixture: *a8\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_bytes(b"\x00" * 32 + b"\n" + json.dumps({"step": 1}).encode()[:5])
    out = str(tmp_path / "o")
    # planted files (issue 16): a FIFO config, a FIFO metrics file, links out of the owned folder
    decoy = tmp_path / "decoy.txt"
    decoy.write_text("must never change\n")
    fifo_cfg = tmp_path / "fifo.toml"
    os.mkfifo(fifo_cfg)
    fifo_run = tmp_path / "fifo_run"
    fifo_run.mkdir()
    os.mkfifo(fifo_run / "metrics.jsonl")
    linked = tmp_path / "linked_run"
    linked.mkdir()
    (linked / "metrics.jsonl").write_text(GOOD_LEDGER + "\n")
    (linked / "ledger.png").symlink_to(decoy)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "metrics.json").symlink_to(decoy)
    lock_out = tmp_path / "lock_out"
    lock_out.mkdir()
    (lock_out / ".lock").symlink_to(decoy)
    return {
        "FIFO config": (["plan", str(fifo_cfg), "--out", out], "FIFO"),
        "FIFO metrics": (["ledger", str(fifo_run), "--no-plot"], "FIFO"),
        "ledger.png link": (["ledger", str(linked)], "symbolic link"),
        "--out symlink loop": (["plan", str(plan), "--out", str(loop), "--no-plot"], "symbolic link"),
        "metrics.json link": (["report", str(rep)], "symbolic link"),
        ".lock link": (["reproduce", "--out", str(lock_out), "--workers", "0"], "symbolic link"),
        "non-UTF-8 config": (["plan", str(latin1), "--out", out], "not UTF-8"),
        "alias bomb": (["plan", str(bomb), "--out", out], "alias bomb"),
        "damaged metrics": (["ledger", str(run), "--no-plot"], "no usable ledger record"),
        "NaN moments": (
            ["plan", str(plan), "--out", out, "--no-plot", "--moments", "en=nan,sw=1"],
            "moments.en",
        ),
        "negative workers": (["reproduce", "--out", out, "--workers", "-3"], "workers=-3"),
        "bad --set": (["reproduce", "--out", out, "--set", "run.total_steps=abc"], "run.total_steps='abc'"),
        "long --out": (["plan", str(plan), "--out", str(tmp_path / ("o" * 300)), "--no-plot"], "255"),
    }


@pytest.mark.slow
def test_hostile_inputs_in_real_processes_are_one_line_exit_2(tmp_path):
    for name, (argv, needle) in _cases(tmp_path).items():
        done = subprocess.run(
            [sys.executable, "-m", "coolmix", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (name, done.stderr)
        assert len(lines) == 1 and "Traceback" not in done.stderr, (name, done.stderr)
        assert needle in lines[0], (name, lines[0])
    assert not (tmp_path / "o").exists()  # no command wrote output or started a run
    assert (tmp_path / "decoy.txt").read_text() == "must never change\n"
