"""Adaptive Cooldown in the trainer: the switch is an event in the checkpointed sampler state, so a
run resumed before or after the switch ends bit-identical to one never stopped; plus the live
gradient-variance monitor and the exposure ledger in the metrics."""

import shutil

import pytest
from test_train_resume import assert_same_run

from coolmix.train import read_records, train
from coolmix.train.checkpoint import list_checkpoints

ADAPTIVE = (
    'balance.sample={ kind = "adaptive", hot = 5, cold = 1 }',
    'balance.target="none"',
    "adaptive.max_epochs=2.0",  # deterministic trigger: Swahili (8 verses) passes 2 epochs at step 8
    "run.total_steps=16",
    "run.eval_every=4",
    "run.keep=10",
)


@pytest.fixture
def reference(tmp_path, lm_config, data_cache):
    cfg = lm_config(*ADAPTIVE)
    out = tmp_path / "reference"
    train(cfg, out, cache=data_cache)
    return cfg, out


def test_switch_is_recorded_once_and_changes_tau(reference):
    _, out = reference
    records = read_records(out)
    switches = [r["switch"] for r in records if "switch" in r]
    assert len(switches) == 1 and switches[0]["step"] == 8 and switches[0]["info"]["domain"] == "sw"
    assert [r["tau"] for r in records] == [5.0, 5.0, 1.0, 1.0]  # τ in force at the last step of each eval
    assert records[-1]["events"] == [switches[0]]


@pytest.mark.parametrize("resume_from", [4, 12])  # before and after the switch
def test_resume_around_the_switch_is_bit_exact(tmp_path, reference, data_cache, resume_from):
    cfg, ref = reference
    out = tmp_path / f"from{resume_from}"
    shutil.copytree(ref, out)
    for step, path in list_checkpoints(out):
        if step > resume_from:
            path.unlink()
    train(cfg, out, resume=True, cache=data_cache)
    assert_same_run(ref, out)


def test_variance_monitor_and_ledger_in_metrics(tmp_path, lm_config, data_cache):
    cfg = lm_config("diagnostics.variance_examples=2", "balance.sample=5", 'balance.target="none"')
    out = tmp_path / "diag"
    train(cfg, out, cache=data_cache)
    rec = read_records(out)[-1]
    v = rec["variance"]
    assert set(v["s"]) == {"en", "sw"} and all(x > 0 for x in v["s"].values())
    assert v["tau"] == 5.0 and v["F"] > 1 and isinstance(v["upsample_lower_variance"], bool)
    assert {k: row["examples"] for k, row in rec["ledger"].items()} == rec["examples"]
    assert rec["ledger"]["sw"]["max_repeats"] >= 1
