"""States saved by the code before format 3 (commit 6b1bf4c, `fixtures/make_states.py`) load, migrate to
format 3, and resume exactly: the rest of the stream is what the old uninterrupted run produced."""

import copy
import json
from pathlib import Path

import pytest

import coolmix as cm
from coolmix.packing import MapDocuments, TokenPacker
from coolmix.state_format import FORMAT, migrate

FIX = Path(__file__).resolve().parent / "fixtures"
SAMPLER_FILES = [
    "sampler_format2_exact", "sampler_format2_iid", "sampler_format2_seekable", "sampler_format1_exact"
]
PACKER_FILES = ["packer_v2", "packer_v1"]


def load(name):
    return json.loads((FIX / f"{name}.json").read_text())


def sampler(args):
    return cm.MixtureSampler(**args)


def rest(s, start, total):
    out = [s.global_batch(t) for t in range(start, total)]
    return {"domains": [d.tolist() for d, _ in out], "items": [i.tolist() for _, i in out]}


@pytest.mark.parametrize("name", SAMPLER_FILES)
def test_an_old_sampler_state_resumes_exactly(name):
    case = load(name)
    assert "format" not in case["state"] or case["state"]["format"] == 2  # really an old layout
    s = sampler(case["args"])
    s.load_state_dict(case["state"])
    step = case["state"]["step"]
    assert s.step == step and s.cursors == case["state"]["cursors"]
    assert rest(s, step, case["args"]["total_steps"]) == case["expect"]


@pytest.mark.parametrize("name", SAMPLER_FILES)
def test_a_migrated_sampler_state_saves_as_format_3_and_resumes_again(name):
    case = load(name)
    s = sampler(case["args"])
    s.load_state_dict(case["state"])
    state = json.loads(json.dumps(s.state_dict()))
    assert state["format"] == FORMAT and state["kind"] == "sampler" and state["domains"] == ["en", "it", "sw"]
    assert "version" not in state
    again = sampler(case["args"])
    again.load_state_dict(state)
    assert rest(again, state["step"], case["args"]["total_steps"]) == case["expect"]


def test_migration_is_pure_and_keeps_every_counter():
    case = load("sampler_format2_exact")
    before = copy.deepcopy(case["state"])
    new = migrate(case["state"], "sampler", "state_dict")
    assert case["state"] == before  # the input is not modified
    for key in ("step", "cursors", "residuals", "events", "mixture", "seed", "composition", "schedule"):
        assert new[key] == before[key]


def test_a_format_1_state_does_not_check_the_run_it_never_recorded():
    case = load("sampler_format1_exact")
    other = dict(case["args"], total_steps=50)  # format 1 did not record total_steps
    s = sampler(other)
    s.load_state_dict(case["state"])
    assert s.step == case["state"]["step"]
    with pytest.raises(cm.ConfigError) as e:  # format 2 did record it
        sampler(other).load_state_dict(load("sampler_format2_exact")["state"])
    assert e.value.field == "state_dict.total_steps"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda st: st.pop("cursors"), "state_dict.cursors"),  # an old state names its domains there
        (lambda st: st.update(cursors={}), "state_dict.cursors"),
        (lambda st: st.pop("version"), "state_dict.version"),
        (lambda st: st.update(version=2), "state_dict.version"),
        (lambda st: st.update(format=7), "state_dict.format"),
        (lambda st: st.update(format="2"), "state_dict.format"),
        (lambda st: st.pop("residuals"), "state_dict.residuals"),
    ],
)
def test_an_old_state_missing_what_it_needs_is_one_error(mutate, field):
    state = load("sampler_format1_exact")["state"]
    mutate(state)
    s = sampler(load("sampler_format1_exact")["args"])
    with pytest.raises(cm.ConfigError) as e:
        s.load_state_dict(state)
    assert e.value.field == field
    assert "\n" not in str(e.value) and s.step == 0


def packer_run(case):
    pk = TokenPacker(**case["args"])
    docs = MapDocuments(case["data"], seed=4)
    return pk, docs


@pytest.mark.parametrize("name", PACKER_FILES)
def test_an_old_packer_state_resumes_exactly(name):
    case = load(name)
    pk, docs = packer_run(case)
    pk.load_state_dict(case["state"])
    docs.load_state_dict(case["documents_state"])
    got = [pk.pack(docs) for _ in range(pk.step, case["args"]["total_steps"])]
    for key, want in case["expect"].items():
        assert [b[key].tolist() for b in got] == want
    # and the re-saved state is format 3 and resumes the same way
    pk2 = TokenPacker(**case["args"])
    pk2.load_state_dict(case["state"])
    state = json.loads(json.dumps(pk2.state_dict()))
    assert state["format"] == FORMAT and state["kind"] == "packer"
    pk3, docs3 = packer_run(case)
    pk3.load_state_dict(state)
    docs3.load_state_dict(case["documents_state"])
    assert pk3.state_dict() == state
    again = [pk3.pack(docs3) for _ in range(pk3.step, case["args"]["total_steps"])]
    assert [b["input_ids"].tolist() for b in again] == case["expect"]["input_ids"]


def test_a_packer_v1_state_lacking_its_domains_is_one_error():
    state = load("packer_v1")["state"]
    del state["target_tokens"]
    with pytest.raises(cm.ConfigError) as e:
        TokenPacker(**load("packer_v1")["args"]).load_state_dict(state)
    assert e.value.field == "packer_state.target_tokens"


def test_a_packer_v2_state_of_another_run_is_still_refused():
    case = load("packer_v2")
    with pytest.raises(cm.ConfigError) as e:
        TokenPacker(**dict(case["args"], total_steps=20)).load_state_dict(case["state"])
    assert e.value.field == "packer_state.total_steps"


def test_a_sampler_state_is_not_a_packer_state():
    s = sampler(load("sampler_format2_exact")["args"])
    case = load("packer_v2")
    pk = TokenPacker(**case["args"])
    with pytest.raises(cm.ConfigError) as e:
        pk.load_state_dict(s.state_dict())
    assert e.value.field == "packer_state.kind"
    with pytest.raises(cm.ConfigError) as e:
        s.load_state_dict(pk.state_dict())
    assert e.value.field == "state_dict.kind"


def test_the_packer_refuses_a_domain_change_naming_it():
    case = load("packer_v2")
    args = dict(case["args"], sizes={"en": 500, "it": 60})
    with pytest.raises(cm.ConfigError) as e:
        TokenPacker(**args).load_state_dict(case["state"])
    assert e.value.field == "packer_state.domains" and "removed: sw" in str(e.value)
