"""TrainConfig: every shipped preset validates (without training); bad input is a one-line ConfigError."""

import math
import re
from pathlib import Path

import pytest
from train_helpers import REPO, TINY_LM

from coolmix.config import load_file
from coolmix.errors import ConfigError
from coolmix.train import config_hash, load_config
from coolmix.train.config import TrainConfig
from coolmix.train.loop import lr_factor
from coolmix.train.tasks import check_config

PRESETS = sorted((REPO / "configs" / "train").rglob("*.toml"))


def test_presets_exist_for_every_task_and_strategy():
    names = {p.stem for p in PRESETS}
    for task in ("lm_bible", "mt_gettext"):
        for strategy in ("tau1", "tau5", "tau100", "scalarization_tau5", "cooldown"):
            assert f"{task}_{strategy}" in names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_validates(path: Path):
    cfg = load_config(path)
    check_config(cfg)  # [model] against the corpus's task, built on the meta device
    # the header says what it is, the exact command, how to override
    head = path.read_text(encoding="utf-8").splitlines()[:6]
    assert all(line.startswith("#") for line in head[:4])
    rel = path.relative_to(REPO).as_posix()
    assert any(f"coolmix train {rel}" in line for line in head)
    assert any("--set" in line for line in head)
    # the strategy in the file name is the one configured
    sched, target = cfg.balance.schedule(), cfg.balance.target_dist()
    if path.stem.endswith("cooldown"):
        assert sched.tau_at(0, 100) == 5 and sched.tau_at(50, 100) == 1 and target is None
    elif "scalarization" in path.stem:
        assert sched.tau_at(0, 100) == 1 and target.tau == 5
    elif re.fullmatch(r".*_tau[0-9.]+", path.stem):
        assert sched.tau_at(0, 100) == float(path.stem.rsplit("tau", 1)[1]) and target is None


def test_resolved_config_round_trips_through_toml(tmp_path):
    cfg = load_config(
        TINY_LM, ['balance.sample={kind="cooldown", hot=5, cold=1, at=0.5}', "optim.betas=[0.9, 0.95]"]
    )
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    again = TrainConfig.from_dict(load_file(path))
    assert again == cfg and config_hash(again) == config_hash(cfg)


def test_hash_ignores_operational_fields_only():
    cfg = load_config(TINY_LM)
    assert config_hash(
        load_config(TINY_LM, ["run.threads=2", "run.keep=5", "run.checkpoint_every=3"])
    ) == config_hash(cfg)
    for change in ("run.seed=1", "balance.target=3", "optim.lr=0.01", "run.total_steps=9", "data.seed=1"):
        assert config_hash(load_config(TINY_LM, [change])) != config_hash(cfg), change


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("run.bogus=1", "run.bogus=1: unknown key; expected one of total_steps"),
        ("run.total_steps=0", "run.total_steps=0: must be an integer >= 1"),
        ("run.batch_size=2.5", "run.batch_size=2.5: must be an integer"),
        (
            "balance.reduction=median",
            "balance.reduction='median': must be one of 'mean', 'self_normalized', 'sum'",
        ),
        ('balance.sample={kind="cooldow"}', "balance.sample.kind='cooldow': must be one of "),
        ("balance.target=-1", "balance.target=-1.0: must be > 0"),
        ("optim.betas=[0.9]", "optim.betas=[0.9]: must be two numbers in [0, 1)"),
        ("optim.schedule=linear", "optim.schedule='linear': must be one of"),
        ("data.bogus=1", "data.bogus=1: unknown key"),
        ("data.name=nope", "data.name='nope': unknown corpus"),
        ("tokenizer.vocab_size=10", "tokenizer.vocab_size=10: must be an integer in [64, 1048576]"),
        # bounds checked at load, before any corpus is built or torch sees the value
        ("run.seed=18446744073709551616", "run.seed=18446744073709551616: must be"),
        ("run.seed=-1", "run.seed=-1: must be an integer in [0, 9223372036854775807]"),
        ("run.threads=100000", "run.threads=100000: must be an integer in [0, "),
        ("diagnostics.variance_examples=1000000000", "diagnostics.variance_examples=1000000000: must be"),
        ("tokenizer.vocab_size=1000000000", "tokenizer.vocab_size=1000000000: must be an integer in [64,"),
        ("run.batch_size=1000000000", "run.batch_size=1000000000: must be an integer in [1,"),
        ("task.seq_len=1000000000", "task.seq_len=1000000000: must be an integer in [2,"),
        ("optim.lr=nan", "optim.lr=nan: must "),
        ("task.beam_size=1000000", "task.beam_size=1000000: must be an integer in [1, 64]"),
        ("task.decode_len=1000000000", "task.decode_len=1000000000: must be an integer in [0, 65536]"),
        ("optim.clip=inf", "optim.clip=inf: must "),
        ("tokenizer.tau=true", "tokenizer.tau=True: must be a number"),
        # [data] counts: the corpus layer checks >= 1 only; the upper bound is checked at load
        (
            "data.max_train=1000000000000000000000000000000",
            "data.max_train=1000000000000000000000000000000: must be <= 2**62",
        ),
        ("data.max_train=0", "data.max_train=0: must be an integer >= 1"),
        ("data.dev_size=99999999999999999999", "data.dev_size=99999999999999999999: must be <= 2**62"),
        (
            "data.train_sizes={en=100000000000000000000000}",
            "data.train_sizes.en=100000000000000000000000: must be <= 2**62",
        ),
    ],
)
def test_bad_values_name_the_field_on_one_line(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(TINY_LM, [override])
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_absurd_max_train_is_rejected_at_load():
    """``data.max_train=10**30`` used to pass the config and fail deep in corpus building."""
    with pytest.raises(ConfigError) as e:
        load_config(TINY_LM, [f"data.max_train={10**30}"])
    assert (e.value.field, e.value.value) == ("data.max_train", 10**30) and "\n" not in str(e.value)
    assert load_config(TINY_LM, [f"data.max_train={2**62}"]).data["max_train"] == 2**62  # the bound itself


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.n_layers=2", "model.n_layers=2: unknown key for task 'lm'"),
        ("model.max_len=16", "model.max_len=16: must be >= task.seq_len = 48"),
        ("model.d_model=1000000000", "model.d_model=1000000000: must be an integer in [1, 32768]"),
        ("model.n_layer=100000", "model.n_layer=100000: must be an integer in [1, 1024]"),
        ("model.d_ff=100000000", "model.d_ff=100000000: must be an integer in [1, 131072]"),
    ],
)
def test_model_section_is_checked_without_data(override, message):
    cfg = load_config(TINY_LM, [override])
    with pytest.raises(ConfigError, match="^" + message.replace("[", r"\[").replace(".", r"\.")):
        check_config(cfg)


def test_model_beyond_this_machines_memory_is_refused_before_any_allocation():
    # every field within its bound, together ~4.4e12 parameters (~64 TiB to train)
    cfg = load_config(TINY_LM, ["model.d_model=32768", "model.n_layer=1024", "model.n_head=1"])
    with pytest.raises(ConfigError, match=r"^model\.d_model=32768: this shape has ~4\.4e\+12 parameters"):
        check_config(cfg)


def test_batch_whose_logits_cannot_fit_is_refused_at_load():
    # each field within its bound; together the B·T·V logits need ~576 TiB
    with pytest.raises(ConfigError, match=r"^run\.batch_size=1048576: with 48 tokens per example"):
        load_config(TINY_LM, ["run.batch_size=1048576", "tokenizer.vocab_size=1048576"])


def test_threads_bound_follows_the_machine():
    from coolmix.train.config import max_threads

    assert load_config(TINY_LM, [f"run.threads={max_threads()}"]).run.threads == max_threads()
    with pytest.raises(ConfigError, match=r"^run\.threads="):
        load_config(TINY_LM, [f"run.threads={max_threads() + 1}"])


def test_lr_warmup_then_inverse_sqrt_or_cosine():
    cfg = load_config(TINY_LM, ["optim.warmup=4"]).optim
    assert [lr_factor(cfg, 100, s) for s in (0, 1, 3)] == [0.25, 0.5, 1.0]
    assert lr_factor(cfg, 100, 15) == 0.5  # sqrt(4 / 16)
    cos = load_config(TINY_LM, ["optim.warmup=4", "optim.schedule=cosine", "optim.final_lr=0.1"]).optim
    assert lr_factor(cos, 104, 4) == 1.0
    assert math.isclose(lr_factor(cos, 104, 54), 0.55) and math.isclose(lr_factor(cos, 104, 104), 0.1)
