"""Stream guards: every stream-state field checked on load, a state resumes only its own run, items
cannot overwrite their tag, token ids are in [0, 2**63), and a failing source never silently
shortens or skips the stream."""

from __future__ import annotations

import copy
import json

import pytest

import coolmix as cm
from coolmix.integrations.streams import DomainStream, PackedStreams, StreamMixture

SIZES = {"en": 900, "sw": 100}


def _items(base, kind="ok"):
    def gen():
        for j in range(40):
            ids = [base + j % 7, 1, 2]
            if kind == "clash":
                yield {"domain": 7, "input_ids": ids}
            elif kind == "negative":
                yield {"input_ids": [ids[0], -100, 3]}
            elif kind == "huge":
                yield {"input_ids": [ids[0], 2**63 + 5]}
            else:
                yield {"input_ids": ids}

    return gen


def _examples(kind="ok", **kw):
    args = {"schedule": 2.0, "total_steps": 8, "batch_size": 4, "seed": 1} | kw
    sizes = args.pop("sizes", SIZES)
    return StreamMixture({"en": _items(10, kind), "sw": _items(30, kind)}, sizes, **args)


def _packed(kind="ok", **kw):
    args = {"schedule": 2.0, "total_steps": 8, "rows": 2, "seq_len": 5} | kw
    sizes = args.pop("sizes", SIZES)
    return PackedStreams(
        {"en": _items(10, kind), "sw": _items(30, kind)}, cm.Mixture(sizes, unit="tokens"), **args
    )


MAKERS = {"examples": _examples, "packed": _packed}


def _saved(mode, steps=3):
    mixer = MAKERS[mode]()
    it = iter(mixer)
    batches = [next(it) for _ in range(steps)]
    return mixer, json.loads(json.dumps(mixer.state_dict())), batches


@pytest.mark.parametrize("mode", ["examples", "packed"])
def test_a_saved_state_resumes_exactly(mode):
    whole = list(MAKERS[mode]())
    _, state, _ = _saved(mode)
    again = MAKERS[mode]()
    again.load_state_dict(state)
    rest = list(again)
    assert json.dumps(rest, default=lambda a: a.tolist()) == json.dumps(
        whole[3:], default=lambda a: a.tolist()
    )


@pytest.mark.parametrize(
    ("mode", "key", "value", "field"),
    [
        ("examples", "step", -4, "stream_state.step"),
        ("examples", "step", 9, "stream_state.step"),
        ("examples", "step", 2, "stream_state.streams"),  # the readers are not at step 2's counts
        ("examples", "step", "3", "stream_state.step"),
        ("examples", "realised", {"en": 3}, "stream_state.realised"),
        ("examples", "realised", {"en": {"documents": 0, "tokens": 0}, "sw": {"documents": 0, "tokens": 0}},
         "stream_state.realised"),
        ("examples", "streams", {"en": {"pass": 0}}, "stream_state.streams"),
        ("examples", "layout", [1, 2], "stream_state.layout"),  # no layout in a global state
        ("examples", "version", 2, "stream_state.version"),  # a lane state of the earlier format
        ("examples", "version", 1, "stream_state.version"),
        ("examples", "extra", 1, "stream_state.extra"),
        ("packed", "step", 2, "stream_state.step"),
        ("packed", "packer", {"version": 2}, "stream_state.packer_state.shape"),
        ("packed", "realised", {"en": {"documents": 0, "tokens": 0}, "sw": {"documents": 0, "tokens": 0}},
         "stream_state.realised"),
    ],
)  # fmt: skip
def test_a_hostile_field_is_one_error_naming_it(mode, key, value, field):
    _, state, _ = _saved(mode)
    state[key] = value
    with pytest.raises(cm.ConfigError) as e:
        MAKERS[mode]().load_state_dict(state)
    assert e.value.field == field


@pytest.mark.parametrize("mode", ["examples", "packed"])
@pytest.mark.parametrize("key", ["pass", "consumed", "total", "source"])
def test_a_domain_stream_field_is_checked(mode, key):
    _, state, _ = _saved(mode)
    for value in (None, -1, "2", 2**70):
        bad = copy.deepcopy(state)
        if key == "source" and value is None:
            continue  # None is the valid "no source state"
        bad["streams"]["en"][key] = value
        with pytest.raises(cm.ConfigError) as e:
            MAKERS[mode]().load_state_dict(bad)
        assert e.value.field.startswith("stream_state.")


@pytest.mark.parametrize("mode", ["examples", "packed"])
def test_every_missing_field_is_named(mode):
    _, state, _ = _saved(mode)
    for key in state:
        bad = {k: v for k, v in state.items() if k != key}
        with pytest.raises(cm.ConfigError) as e:
            MAKERS[mode]().load_state_dict(bad)
        assert e.value.field.startswith("stream_state."), key


@pytest.mark.parametrize(
    ("mode", "change", "field"),
    [
        ("examples", {"total_steps": 9}, "stream_state.total_steps"),
        ("examples", {"batch_size": 6}, "stream_state.batch_size"),
        ("examples", {"seed": 2}, "stream_state.seed"),
        ("examples", {"schedule": 3.0}, "stream_state.schedule"),
        ("examples", {"sizes": {"en": 800, "sw": 200}}, "stream_state.sizes"),
        ("packed", {"total_steps": 9}, "stream_state.total_steps"),
        ("packed", {"rows": 4}, "stream_state.rows"),
        ("packed", {"schedule": 3.0}, "stream_state.schedule"),
        ("packed", {"sizes": {"en": 800, "sw": 200}}, "stream_state.sizes"),
    ],
)
def test_a_resume_under_another_run_is_refused(mode, change, field):
    _, state, _ = _saved(mode)
    with pytest.raises(cm.ConfigError) as e:
        MAKERS[mode](**change).load_state_dict(state)
    assert e.value.field == field


def test_an_items_own_domain_field_cannot_replace_the_tag():
    with pytest.raises(cm.ConfigError) as e:
        next(iter(_examples("clash")))
    assert e.value.field.startswith("sources.") and "domain" in str(e.value)


@pytest.mark.parametrize("kind", ["negative", "huge"])
def test_packed_token_ids_outside_0_to_2_63_are_refused(kind):
    with pytest.raises(cm.ConfigError) as e:
        next(iter(_packed(kind)))
    assert e.value.field.startswith("document")


class Flaky:
    """Items base + 0..9; the first pass raises once, at item 3."""

    def __init__(self, base, fail=True):
        self.base, self.fail = base, fail

    def __iter__(self):
        for j in range(10):
            if j == 3 and self.fail:
                self.fail = False
                raise OSError("network blip")
            yield self.base + j


def test_a_domain_stream_resumes_exactly_after_its_source_raised():
    s = DomainStream(Flaky(100), "a")
    got = [next(s) for _ in range(3)]
    with pytest.raises(OSError):
        next(s)
    got += [next(s) for _ in range(9)]
    assert got == [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 100, 101]  # nothing skipped
    assert s.state_dict()["pass"] == 1


def test_a_lane_whose_source_raised_never_ends_silently():
    mix = StreamMixture(
        {"a": Flaky(100), "b": Flaky(200)}, {"a": 1, "b": 1}, 1.0, total_steps=6, batch_size=2
    )
    it = iter(mix)
    saved = None
    with pytest.raises(OSError):
        for _ in range(6):
            next(it)
            saved = json.loads(json.dumps(mix.state_dict()))
    for _ in range(2):  # not StopIteration: the rest of the run is not silently dropped
        with pytest.raises(cm.ConfigError) as e:
            next(it)
        assert e.value.field.startswith("sources.")
    with pytest.raises(cm.ConfigError):
        mix.state_dict()  # mid-step: no boundary to save
    healthy = {"a": Flaky(100, fail=False), "b": Flaky(200, fail=False)}
    again = StreamMixture(healthy, {"a": 1, "b": 1}, 1.0, total_steps=6, batch_size=2)
    again.load_state_dict(saved)
    assert len(list(again)) == 6 - saved["step"]
