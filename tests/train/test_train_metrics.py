"""Metric sinks and per-domain running statistics."""

import math

import pytest
import torch

from coolmix.train.distributed import Env
from coolmix.train.metrics import DomainStats, JsonlSink, read_records


def test_jsonl_truncates_back_to_a_checkpoint_offset(tmp_path):
    path = tmp_path / "metrics.jsonl"
    sink = JsonlSink(path)
    sink.write({"step": 2, "dev": {"loss": {"en": 3.5, "sw": math.nan}}})
    offset, lines = sink.offset, sink.lines
    sink.write({"step": 4})
    sink.close()
    resumed = JsonlSink(path, offset, lines)  # the checkpoint was taken after step 2's record
    resumed.write({"step": 4, "again": True})
    resumed.close()
    assert read_records(tmp_path) == [
        {"step": 2, "dev": {"loss": {"en": 3.5, "sw": None}}},  # NaN is written as null
        {"step": 4, "again": True},
    ]
    assert resumed.lines == 2


def test_jsonl_shorter_than_offset_is_an_error(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="shorter"):
        JsonlSink(tmp_path / "metrics.jsonl", offset=10, lines=1)


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
