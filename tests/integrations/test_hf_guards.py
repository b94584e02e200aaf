"""`MixtureTrainer` guards: an unreachable loss target is refused by the check `cm.loss_weights`
makes, a rarely drawn up-weighted domain gets the one rare-domain warning, and a corrupt
``coolmix_sampler.json`` is one ConfigError line on resume."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from test_hf_trainer import make_trainer, training_args  # noqa: E402

import coolmix as cm  # noqa: E402
from coolmix.integrations.hf import STATE_FILE  # noqa: E402

NO_SW = cm.Constant(cm.Explicit({"en": 1.0, "it": 1.0, "sw": 0.0}))


def test_an_unreachable_target_is_refused_like_loss_weights_refuses_it(tmp_path):
    with pytest.raises(cm.ConfigError) as lib:
        cm.loss_weights({"en": 24, "it": 7, "sw": 3}, target=5.0, sample=NO_SW.dist)
    assert lib.value.field == "sample"
    with pytest.raises(cm.ConfigError) as e:
        make_trainer(training_args(tmp_path, max_steps=10), schedule=NO_SW, target=5.0)
    assert e.value.field == "target" and "'sw'" in str(e.value)


def test_a_target_reached_in_one_phase_is_fine(tmp_path):
    staged = cm.Stages(starts=(0, 5), dists=(NO_SW.dist, cm.Temperature(1.0)))
    make_trainer(training_args(tmp_path, max_steps=10), schedule=staged, target=5.0)


def test_a_rare_up_weighted_domain_gets_the_one_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="coolmix"):
        make_trainer(
            training_args(tmp_path, max_steps=10, per_device_train_batch_size=4), schedule=1.0, target=5.0
        )
    said = [r.getMessage() for r in caplog.records if "p·B" in r.getMessage()]
    assert any(m.startswith("sw: p·B = 0.35 < 1") and "loss weight 3.063" in m for m in said)


def test_loss_weights_warns_with_the_same_words(caplog):
    sizes = {"en": 2733, "it": 162, "zh": 39, "sw": 1}
    with caplog.at_level(logging.WARNING, logger="coolmix"):
        w = cm.loss_weights(sizes, target=5, sample=1, batch_size=64)
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("sw: p·B = 0.022 < 1: absent from about 98% of batches") for m in said)
    assert f"{w['sw']:.4g}" in " ".join(said)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="coolmix"):
        cm.loss_weights(sizes, target=1, sample=1, batch_size=64)  # nothing up-weighted: silent
    assert caplog.records == []


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    args = training_args(out, max_steps=2, save_strategy="steps", save_steps=1)
    make_trainer(args, schedule=3.0, target=3.0).train()
    return out / "checkpoint-1"


@pytest.mark.parametrize(
    "damage",
    ["{not json", "null", "[]", '{"format": 1}', "sampler", "ledger", "step", b"\xff\xfe"],
)
def test_a_corrupt_sampler_state_is_one_line_on_resume(checkpoint, tmp_path, damage):
    ckpt = tmp_path / "checkpoint-1"
    shutil.copytree(checkpoint, ckpt)
    path = ckpt / STATE_FILE
    if damage in ("sampler", "ledger", "step"):
        data = json.loads(path.read_text())
        data[damage] = "garbage" if damage != "step" else 7
        path.write_text(json.dumps(data))
    elif isinstance(damage, bytes):
        path.write_bytes(damage)
    else:
        path.write_text(damage)
    trainer = make_trainer(training_args(tmp_path / "b", max_steps=2), schedule=3.0, target=3.0)
    with pytest.raises(cm.ConfigError) as e:
        trainer.train(resume_from_checkpoint=str(ckpt))
    assert "\n" not in str(e.value) and STATE_FILE in e.value.field
