"""The token packer's guards: every state field is checked on load, a state resumes only its own
run, token ids are in [0, 2**63), ``pack(step=)`` is a step of the run, and the sizes are tokens."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import coolmix as cm
from coolmix.packing import TokenPacker

SIZES = {"en": 900, "sw": 100}


def _packer(**kw):
    args = {"schedule": cm.Cooldown(at=0.5), "total_steps": 20, "rows": 2, "seq_len": 8} | kw
    return TokenPacker(SIZES, **args)


def _docs(seed=0):
    rng = np.random.default_rng(seed)
    return lambda d: rng.integers(0, 50, int(rng.integers(1, 12)))


def _saved(steps=3, **kw):
    pk = _packer(**kw)
    docs = _docs()
    for _ in range(steps):
        pk.pack(docs)
    return json.loads(json.dumps(pk.state_dict()))


def test_a_saved_state_resumes_exactly():
    pk, docs = _packer(), _docs()
    for _ in range(3):
        pk.pack(docs)
    state = json.loads(json.dumps(pk.state_dict()))
    again = _packer()
    again.load_state_dict(state)
    assert again.state_dict() == state


FIELDS = [
    "format", "kind", "domains", "shape", "step", "target_tokens", "realised_tokens", "documents",
    "truncated_tokens", "longest", "next_doc_id", "pending", "events", "total_steps", "schedule", "sizes",
]  # fmt: skip


@pytest.mark.parametrize("key", FIELDS)
def test_a_missing_field_is_one_error_naming_it(key):
    state = _saved()
    del state[key]
    pk = _packer()
    with pytest.raises(cm.ConfigError) as e:
        pk.load_state_dict(state)
    assert e.value.field == f"packer_state.{key}"
    assert pk.step == 0


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("target_tokens", {"en": 1e18, "sw": -1e18}, "packer_state.target_tokens.en"),
        ("target_tokens", {"en": float("nan"), "sw": 1.0}, "packer_state.target_tokens.en"),
        ("target_tokens", {"en": "1", "sw": 1.0}, "packer_state.target_tokens.en"),
        ("step", -4, "packer_state.step"),
        ("step", 2, "packer_state.realised_tokens"),  # fewer steps than the tokens placed
        ("step", 21, "packer_state.step"),
        ("step", 3.0, "packer_state.step"),
        ("realised_tokens", {"en": 2**70, "sw": 0}, "packer_state.realised_tokens.en"),
        ("realised_tokens", {"en": 1}, "packer_state.realised_tokens"),
        ("documents", {"en": -1, "sw": 0}, "packer_state.documents.en"),
        ("longest", {"en": True, "sw": 3}, "packer_state.longest.en"),
        ("next_doc_id", "7", "packer_state.next_doc_id"),
        ("pending", {"domain": "xx", "tokens": [1], "doc_id": 0}, "packer_state.pending.domain"),
        ("pending", {"domain": "en", "tokens": [-5], "doc_id": 0}, "packer_state.pending.tokens"),
        ("pending", {"domain": "en", "tokens": [1]}, "packer_state.pending.doc_id"),
        ("events", [{"step": -1, "name": "cooldown"}], "packer_state.events[0].step"),
        ("events", {"x": 1}, "packer_state.events"),
        ("version", 1, "packer_state.version"),
    ],
)
def test_a_hostile_field_is_refused_and_the_packer_untouched(key, value, field):
    state = _saved()
    state[key] = value
    pk = _packer()
    with pytest.raises(cm.ConfigError) as e:
        pk.load_state_dict(state)
    assert e.value.field == field
    assert pk.step == 0 and np.isfinite(pk._deficit.target).all()


def test_a_nan_target_would_starve_a_domain():
    """Why targets are checked: with Z_sw = NaN the deficit argmax never picks sw again."""
    state = _saved()
    state["target_tokens"]["sw"] = float("nan")
    with pytest.raises(cm.ConfigError):
        _packer().load_state_dict(state)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total_steps": 40}, "packer_state.total_steps"),
        ({"schedule": cm.Cooldown(at=0.75)}, "packer_state.schedule"),
        ({"rows": 4}, "packer_state.shape"),
    ],
)
def test_a_resume_under_another_run_is_refused(change, field):
    state = _saved()
    with pytest.raises(cm.ConfigError) as e:
        _packer(**change).load_state_dict(state)
    assert e.value.field == field


def test_other_sizes_are_refused():
    state = _saved()
    pk = TokenPacker({"en": 800, "sw": 200}, cm.Cooldown(at=0.5), 20, 2, 8)
    with pytest.raises(cm.ConfigError) as e:
        pk.load_state_dict(state)
    assert e.value.field == "packer_state.sizes"


@pytest.mark.parametrize("doc", [[5, -100, 7], [-1], [1, 2**63, 3], np.array([3, -2])])
def test_token_ids_outside_0_to_2_63_are_refused(doc):
    pk = _packer()
    with pytest.raises(cm.ConfigError) as e:
        pk.pack(lambda d: doc)
    assert e.value.field.startswith("document")


@pytest.mark.parametrize("step", [-1, 1.5, "3", True, 20, 2**62])
def test_pack_step_must_be_a_step_of_the_run(step):
    with pytest.raises(cm.ConfigError) as e:
        _packer().pack(_docs(), step=step)
    assert e.value.field == "step"


def test_packing_past_the_last_step_is_refused():
    pk, docs = _packer(total_steps=4), _docs()
    for _ in range(4):
        pk.pack(docs)
    with pytest.raises(cm.ConfigError) as e:
        pk.pack(docs)
    assert e.value.field == "step"


@pytest.mark.parametrize("unit", ["documents", "examples", "bytes"])
def test_a_mixture_not_counted_in_tokens_is_refused(unit):
    with pytest.raises(cm.ConfigError) as e:
        TokenPacker(cm.Mixture(SIZES, unit=unit), 1.0, 10, 2, 8)
    assert e.value.field == "sizes.unit"
    TokenPacker(cm.Mixture(SIZES, unit="tokens"), 1.0, 10, 2, 8)  # tokens: fine
    TokenPacker(copy.copy(SIZES), 1.0, 10, 2, 8)  # a plain mapping is read as tokens


def test_a_bad_id_in_the_carried_over_rest_of_a_document_is_refused_too():
    """Only id 5 fits the batch; -100 would be carried into the state (unloadable) and the next batch."""
    pk = TokenPacker(SIZES, 1.0, 10, 1, 1)
    with pytest.raises(cm.ConfigError) as e:
        pk.pack(lambda d: [5, -100, 7])
    assert e.value.field.startswith("documents.")
