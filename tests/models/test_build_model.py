"""`build_model`: the trainer's ``[model]`` table -> a module, with one-line errors naming the field."""

import doctest

import pytest

import coolmix.models
import coolmix.models.losses
from coolmix.errors import ConfigError
from coolmix.models import GPT, Seq2Seq, build_model


def test_lm_and_mt_tasks_build_the_configured_models():
    lm = build_model("lm", {"d_model": 64, "n_layer": 2, "max_len": 32}, vocab_size=100)
    assert isinstance(lm, GPT)
    assert (lm.cfg.vocab_size, lm.cfg.d_model, lm.cfg.n_layer, lm.cfg.max_len) == (100, 64, 2, 32)
    mt = build_model("mt", {"n_enc": 1, "n_dec": 2, "dropout": 0.0}, vocab_size=50)
    assert isinstance(mt, Seq2Seq)
    assert (mt.cfg.vocab_size, mt.cfg.n_enc, mt.cfg.n_dec, mt.cfg.dropout) == (50, 1, 2, 0.0)


def test_vocab_size_may_be_repeated_only_with_the_same_value():
    assert build_model("lm", {"vocab_size": 100}, vocab_size=100).cfg.vocab_size == 100
    with pytest.raises(ConfigError) as e:
        build_model("lm", {"vocab_size": 99}, vocab_size=100)
    assert e.value.field == "model.vocab_size"


@pytest.mark.parametrize(
    ("task", "cfg", "field"),
    [
        ("lm", {"n_layers": 4}, "model.n_layers"),  # typo of n_layer
        ("lm", {"n_enc": 3}, "model.n_enc"),  # an MT-only key
        ("mt", {"n_layer": 3}, "model.n_layer"),  # an LM-only key
        ("lm", {"d_model": 130}, "model.d_model"),  # not divisible by n_head=4
        ("mt", {"dropout": 1.5}, "model.dropout"),
        ("mt", {"max_len": 0}, "model.max_len"),
        ("clf", {}, "task"),
        # absurd sizes: one line here, never an allocation failure inside torch
        ("lm", {"d_model": 10**9}, "model.d_model"),
        ("mt", {"n_dec": 10**6}, "model.n_dec"),
        ("lm", {"max_len": 2**40}, "model.max_len"),
        ("lm", {"d_ff": 2**62 + 1}, "model.d_ff"),
        ("lm", {"n_head": 2**20, "d_model": 2**20}, "model.d_model"),
        # every field within its bound, together ~4e12 parameters: more than any machine here
        ("mt", {"d_model": 2**15, "n_enc": 1024, "n_dec": 1024, "n_head": 8}, "model.d_model"),
    ],
)
def test_bad_configs_raise_config_error_naming_the_field(task, cfg, field):
    with pytest.raises(ConfigError) as e:
        build_model(task, cfg, vocab_size=100)
    assert e.value.field == field
    assert str(e.value).startswith(f"{field}=") and "\n" not in str(e.value)


def test_memory_estimate_counts_the_shape():
    from coolmix.models.gpt import param_estimate

    lm = build_model("lm", {"d_model": 64, "n_layer": 2, "d_ff": 128, "max_len": 32}, vocab_size=100)
    exact = sum(p.numel() for p in lm.parameters())
    estimate = param_estimate(lm.cfg, ("n_layer",))
    # leading order: biases and norms are left out, the tied head is counted (an upper side)
    assert 0.9 * exact <= estimate <= 1.5 * exact


def test_docstring_examples():
    for module in (coolmix.models, coolmix.models.losses):
        assert doctest.testmod(module).failed == 0
