"""Metric sinks and per-domain running statistics."""

import math

import pytest
import torch

from coolmix.train.distributed import Env
from coolmix.train.metrics import DomainStats, GradLog, JsonlSink, read_records


def test_jsonl_truncates_back_to_a_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    sink = JsonlSink(path)
    sink.write({"step": 2, "dev": {"loss": {"en": 3.5, "sw": math.nan}}})
    saved = sink.state()
    sink.write({"step": 4})
    sink.close()
    warned = []
    resumed = JsonlSink.resume(path, saved, 2, warned.append)  # the checkpoint was taken after step 2
    resumed.write({"step": 4, "again": True})
    resumed.close()
    assert read_records(tmp_path) == [
        {"step": 2, "dev": {"loss": {"en": 3.5, "sw": None}}},  # NaN is written as null
        {"step": 4, "again": True},
    ]
    assert resumed.lines == 2 and warned == []  # a tail after the checkpoint is normal, not news


def _good(tmp_path):
    path = tmp_path / "metrics.jsonl"
    sink = JsonlSink(path)
    for step in (2, 4, 6):
        sink.write({"step": step, "note": "ünïcode \u2028 line separator"})
    saved = sink.state()
    sink.write({"step": 8})
    sink.close()
    return path, saved


DAMAGES = {
    "deleted": lambda p: p.unlink(),
    "empty": lambda p: p.write_bytes(b""),
    "half_last_line": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "zeroed_same_size": lambda p: p.write_bytes(b"\x00" * len(p.read_bytes())),
    "garbage_line": lambda p: p.write_bytes(b'{"step": 2}\nnot json\n' + p.read_bytes()),
    "interleaved": lambda p: p.write_bytes(p.read_bytes().replace(b"\n", b'{"ste\n', 1)),
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_resume_rewrites_damaged_metrics_from_the_checkpoint(tmp_path, damage):
    path, saved = _good(tmp_path)
    want = saved["text"].encode()
    damage(path)
    warned = []
    sink = JsonlSink.resume(path, saved, 6, warned.append)
    sink.write({"step": 8})
    sink.close()
    assert path.read_bytes() == want + b'{"step": 8}\n'
    assert [r["step"] for r in read_records(path)] == [2, 4, 6, 8]
    assert len(warned) == 1 and "rewrote its 3 record(s) up to step 6" in warned[0]


def test_old_checkpoint_without_text_keeps_valid_lines_up_to_its_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 2}\n\x00\x00garbage\n{"step": 4}\n{"step": 3}\n{"step": 6}\n{"step": 8, "tru')
    warned = []
    sink = JsonlSink.resume(path, {"offset": 10, "lines": 2}, 6, warned.append)
    sink.close()
    assert [r["step"] for r in read_records(path)] == [2, 4, 6] and len(warned) == 1


def test_each_record_is_one_write_call(tmp_path, monkeypatch):
    """Line-atomic appends: a crash can leave at most a half last line, never a buffered mix."""
    import coolmix.train.metrics as metrics

    writes = []
    real = metrics.os.write
    monkeypatch.setattr(metrics.os, "write", lambda fd, b: writes.append(bytes(b)) or real(fd, b))
    sink = JsonlSink(tmp_path / "metrics.jsonl")
    sink.write({"step": 1, "x": "y" * 10_000})
    sink.write({"step": 2})
    sink.close()
    assert len(writes) == 2 and all(w.endswith(b"\n") and w.count(b"\n") == 1 for w in writes)


def test_domain_stats_are_token_weighted_per_domain():
    stats = DomainStats(("en", "sw"), torch.device("cpu"))
    # en: two examples, losses 1 and 4 over 3 and 1 tokens -> (3 + 4) / 4; sw: none
    stats.update(torch.tensor([0, 0]), torch.tensor([1.0, 4.0]), torch.tensor([3, 1]))
    losses = stats.pop_losses()
    assert losses["en"] == 7 / 4 and math.isnan(losses["sw"])
    stats.update(torch.tensor([1]), torch.tensor([2.0]), torch.tensor([5]))
    assert stats.pop_losses()["sw"] == 2.0
    assert stats.token_counts() == {"en": 4, "sw": 5}  # cumulative, not reset by pop
    restored = DomainStats(("en", "sw"), torch.device("cpu"))
    restored.load_state_dict(stats.state_dict(), Env())
    assert restored.token_counts() == {"en": 4, "sw": 5}


def test_grad_log_reports_norms_and_torch_clip_rule():
    log = GradLog(clip=1.0)
    for n in (0.5, 1.0, 2.0):
        log.add(torch.tensor(n))
    state = log.state_dict()  # a checkpoint between records keeps the pending norms
    log.add(torch.tensor(0.25))
    out = log.pop()
    assert out["grad_norm"] == [0.5, 1.0, 2.0, 0.25]
    # clipped iff clip / (norm + 1e-6) < 1: at exactly the clip norm torch still scales by 1/(1+1e-6)
    assert out["clipped"] == [False, True, True, False] and out["clipped_fraction"] == 0.5
    again = GradLog(clip=1.0)
    again.load_state_dict(state)
    again.add(torch.tensor(0.25))
    assert again.pop() == out
    assert GradLog(clip=0.0).pop() == {"grad_norm": [], "clipped": [], "clipped_fraction": None}
