"""Checkpoint files: atomic and checksummed; corrupt ones are skipped, foreign ones refused."""

import pytest
import torch

from coolmix.errors import ConfigError
from coolmix.train import checkpoint

HASH = "a" * 16


def payload(step: int, config_hash: str = HASH) -> dict:
    return {
        "version": checkpoint.CHECKPOINT_VERSION,
        "step": step,
        "config_hash": config_hash,
        "model": {"w": torch.full((3,), float(step))},
        "sampler": {"cursors": {"en": 10 * step, "sw": step}},
    }


def test_round_trip_and_keep_last_k(tmp_path):
    for step in (2, 4, 6, 8):
        checkpoint.save(tmp_path, step, payload(step), keep=2)
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path)] == [6, 8]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-00000006.pt",
        "ckpt-00000008.pt",
    ]  # no temp files
    state = checkpoint.load_latest(tmp_path, HASH)
    assert state["step"] == 8 and torch.equal(state["model"]["w"], torch.full((3,), 8.0))
    assert state["sampler"] == {"cursors": {"en": 80, "sw": 8}}


def test_no_checkpoint_is_none(tmp_path):
    assert checkpoint.load_latest(tmp_path / "missing", HASH) is None


def flip_byte(path, offset=-10):
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_corrupt_newest_falls_back_to_previous_with_one_line_warning(tmp_path):
    for step in (4, 8):
        checkpoint.save(tmp_path, step, payload(step), keep=2)
    flip_byte(tmp_path / "ckpt-00000008.pt")
    warnings = []
    state = checkpoint.load_latest(tmp_path, HASH, warn=warnings.append)
    assert state["step"] == 4
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "ckpt-00000008.pt" in warnings[0] and "checksum mismatch" in warnings[0]


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda p: flip_byte(p), "corrupt: SHA-256 checksum mismatch"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "corrupt: SHA-256 checksum mismatch"),  # torn write
        (lambda p: p.write_bytes(b""), "corrupt: not a coolmix checkpoint"),
        (lambda p: flip_byte(p, 3), "corrupt: not a coolmix checkpoint"),
    ],
)
def test_every_checkpoint_corrupt_raises_one_line(tmp_path, damage, why):
    checkpoint.save(tmp_path, 4, payload(4), keep=2)
    damage(tmp_path / "ckpt-00000004.pt")
    with pytest.raises(ConfigError) as e:
        checkpoint.load_latest(tmp_path, HASH, warn=lambda _: None)
    assert e.value.field == "checkpoint" and e.value.why.startswith(why) and "\n" not in str(e.value)


def test_checkpoint_of_another_config_is_refused_not_skipped(tmp_path):
    checkpoint.save(tmp_path, 4, payload(4), keep=2)
    checkpoint.save(tmp_path, 8, payload(8, config_hash="b" * 16), keep=2)
    with pytest.raises(ConfigError, match=r"written by a different config \(hash bbbbbbbbbbbbbbbb"):
        checkpoint.load_latest(tmp_path, HASH)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    checkpoint.save(tmp_path, 4, payload(4), keep=1)

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(tmp_path, 8, payload(8), keep=1)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-00000004.pt"]  # temp file cleaned up
    assert checkpoint.load_latest(tmp_path, HASH)["step"] == 4


def test_pruning_counts_only_this_runs_checkpoints(tmp_path):
    stray = tmp_path / "ckpt-99999999.pt"
    stray.write_bytes(b"not a checkpoint")
    foreign = tmp_path / "ckpt-00000001.pt"
    checkpoint.save(tmp_path, 1, payload(1, config_hash="b" * 16), keep=5)  # another config's
    owned: list = []
    for step in (2, 4, 6):
        checkpoint.save(tmp_path, step, payload(step), keep=1, owned=owned)
    assert sorted(p.name for p in tmp_path.iterdir()) == [foreign.name, "ckpt-00000006.pt", stray.name]
    assert owned == [(6, tmp_path / "ckpt-00000006.pt")]
    # without a list, the directory's checkpoints that verify under the payload's hash count
    checkpoint.save(tmp_path, 8, payload(8), keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [foreign.name, "ckpt-00000008.pt", stray.name]


def test_renamed_copy_and_unreadable_newest_are_skipped(tmp_path):
    checkpoint.save(tmp_path, 4, payload(4), keep=3)
    (tmp_path / "ckpt-00000008.pt").write_bytes((tmp_path / "ckpt-00000004.pt").read_bytes())
    (tmp_path / "ckpt-00000012.pt").mkdir()
    warned = []
    owned: list = []
    state = checkpoint.load_latest(tmp_path, HASH, warn=warned.append, owned=owned)
    assert state["step"] == 4 and owned == [(4, tmp_path / "ckpt-00000004.pt")]
    assert len(warned) == 2 and "not the step its name says" in warned[1] and "unreadable" in warned[0]
