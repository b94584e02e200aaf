"""Elastic streams, in process: any (ranks × workers) layout yields the single-process stream, a state
saved under one layout resumes exactly under any other, and the share error does not depend on the
number of lanes. Also the item readers (`coolmix.integrations.readers`) and the global state's checks.

Lanes are simulated by calling ``.lane(rank, world_size, worker, workers)`` directly; the torchrun
versions are in ``test_stream_torchrun.py``; the README's share-error numbers come from
``benchmarks/bench_stream_share.py``.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coolmix import ConfigError, Cooldown
from coolmix.integrations import streams
from coolmix.integrations.ranks import DataParallel
from coolmix.integrations.readers import (
    HFReader,
    IterableReader,
    NodeReader,
    ShardDirReader,
    reader_class,
    reader_for,
)
from coolmix.integrations.streams import DomainStream, PackedStreams, StreamMixture, latest_state

SIZES = {"en": 31, "sw": 7, "yo": 3}  # items per domain; each item names its domain and position
STEPS, BATCH, ROWS, SEQ = 16, 8, 8, 6
SCHED = Cooldown(hot=5.0, cold=1.0, at=0.5)
LAYOUTS = [(1, 1), (1, 2), (2, 1), (2, 2), (4, 1), (1, 3), (4, 2), (8, 1)]


def gen(domain, n):
    def factory():
        for i in range(n):
            yield {"text": f"{domain}-{i}", "input_ids": [100 * len(domain) + i] * (1 + i % 4)}

    return factory


def sources():
    return {d: gen(d, n) for d, n in SIZES.items()}


def mixture(**kw):
    return StreamMixture(sources(), SIZES, SCHED, STEPS, BATCH, seed=4, **kw)


def packed(**kw):
    return PackedStreams(sources(), SIZES, SCHED, STEPS, rows=ROWS, seq_len=SEQ, **kw)


MAKERS = {"mixture": mixture, "packed": packed}


def plain(batch):
    """A batch as JSON-able rows (packed: one [domain ids, token ids, doc ids] per row)."""
    if isinstance(batch, dict):
        cols = [batch[k].tolist() for k in ("domain_ids", "input_ids", "doc_ids")]
        return [list(r) for r in zip(*cols, strict=True)]
    return [[ex["domain_name"], ex["text"]] for ex in batch]


def run_layout(mode, layout, state=None, stop=None):
    """Rows per global step from every lane of ``layout`` (from ``state``), each lane stopping after
    its last step < ``stop``; returns (rows by step, the lanes' states)."""
    world, workers = layout
    rows, states = {}, []
    for r in range(world):
        for w in range(workers):
            mix = MAKERS[mode]()
            if state is not None:
                mix.load_state_dict(state)
            first = 0 if state is None else state["step"]
            for i, b in enumerate(mix.lane(r, world, w, workers)):
                step = first + w + i * workers
                if stop is not None and step >= stop:
                    break
                rows.setdefault(step, {})[r] = plain(b)
                states.append(json.loads(json.dumps(mix.state_dict())))
            else:
                states.append(json.loads(json.dumps(mix.state_dict())))
    return {
        s: [row for r in range(world) for row in by_rank[r]] for s, by_rank in sorted(rows.items())
    }, states


def whole(mode):
    return {s: plain(b) for s, b in enumerate(MAKERS[mode]())}


@pytest.mark.parametrize("mode", ["mixture", "packed"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_yields_the_single_process_stream(mode, layout):
    got, _ = run_layout(mode, layout)
    assert got == whole(mode)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(["mixture", "packed"]),
    saved=st.sampled_from(LAYOUTS),
    resumed=st.sampled_from(LAYOUTS),
    stop=st.integers(0, STEPS),
)
def test_a_state_saved_under_any_layout_resumes_exactly_under_any_other(mode, saved, resumed, stop):
    """Stop every lane of ``saved`` after global step ``stop`` − 1; `latest_state` of their states
    resumes under ``resumed``: before + after is the uninterrupted stream (each domain in its own
    order, no item duplicated or skipped, since the uninterrupted stream has that property)."""
    want = whole(mode)
    before, states = run_layout(mode, saved, stop=stop)
    state = latest_state(states)
    assert state.get("step", 0) == stop
    after, _ = run_layout(mode, resumed, state=state or None)
    assert {**before, **after} == want
    assert set(before).isdisjoint(after)


def test_each_domain_is_read_in_its_global_order_across_a_resume():
    want = whole("mixture")
    before, states = run_layout("mixture", (2, 2), stop=7)
    after, _ = run_layout("mixture", (4, 1), state=latest_state(states))
    got = {**before, **after}
    for d, n in SIZES.items():
        seq = [t for s in sorted(got) for name, t in got[s] if name == d]
        assert len(seq) > n and seq == [f"{d}-{i % n}" for i in range(len(seq))]
    assert got == want


def share_errors(layouts=((1, 1), (2, 1), (2, 2), (4, 2))) -> dict[str, dict[str, float]]:
    """Largest |realised − target| over the run per domain, summed over all lanes of each layout:
    examples for `StreamMixture` (target Σ B·p(s)), tokens for `PackedStreams` (Σ R·T·p(s))."""
    out = {}
    for mode, unit in (("mixture", BATCH), ("packed", ROWS * SEQ)):
        probs = [list(SCHED.probs_at(s, SIZES, STEPS).values()) for s in range(STEPS)]
        target = np.cumsum(unit * np.array(probs), axis=0)
        for layout in layouts:
            rows, _ = run_layout(mode, layout)
            counts = np.zeros((STEPS, len(SIZES)))
            for s, batch in rows.items():
                for row in batch:
                    if mode == "mixture":
                        counts[s, list(SIZES).index(row[0])] += 1
                    else:
                        counts[s] += np.bincount([d for d in row[0] if d >= 0], minlength=len(SIZES))
            dev = np.abs(np.cumsum(counts, axis=0) - target).max(axis=0)
            out[f"{mode} {layout[0] * layout[1]} lanes"] = {
                d: round(float(e), 2) for d, e in zip(SIZES, dev, strict=True)
            }
    return out


def test_the_share_error_does_not_grow_with_the_number_of_lanes():
    """One global composition: the error is the sampler's (examples: < 1 per domain) and the
    packer's (tokens: within one document), the same for 1, 2, 4 and 8 lanes."""
    errors = share_errors()
    for mode, bound in (("mixture", 1.0), ("packed", 2 * max(1 + i % 4 for i in range(31)))):
        by_lanes = [e for key, e in errors.items() if key.startswith(mode)]
        assert all(e == by_lanes[0] for e in by_lanes), errors
        assert max(by_lanes[0].values()) < bound, errors


# -- state: global, checked at load_state_dict ------------------------------------------------------


def saved_state(mode="mixture", steps=5):
    mix = MAKERS[mode]()
    it = mix.lane(1, 2, 0, 1)
    for _ in range(steps):
        next(it)
    return json.loads(json.dumps(mix.state_dict()))


@pytest.mark.parametrize("mode", ["mixture", "packed"])
def test_the_state_holds_no_layout(mode):
    state = saved_state(mode)
    assert not {"lane", "layout", "rank", "world_size", "workers"} & set(state)
    other = MAKERS[mode]()
    it = other.lane(0, 1, 0, 1)
    for _ in range(5):
        next(it)
    assert json.loads(json.dumps(other.state_dict())) == state  # rank 1 of 2 and 1 of 1 agree


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda s: s["streams"]["sw"].update(total=s["streams"]["sw"]["total"] + 1), "stream_state.streams"),
        (lambda s: s.update(step=s["step"] - 1), "stream_state.streams"),
        (lambda s: s.update(origin=s["step"] + 1), "stream_state.origin"),
        (lambda s: s["streams"]["en"].update(source={"file": 0}), "stream_state.streams.en.source"),
    ],
)
def test_an_inconsistent_state_fails_at_load_state_dict_not_at_next(edit, field):
    state = saved_state()
    edit(state)
    mix = mixture()
    with pytest.raises(ConfigError) as e:
        mix.load_state_dict(state)
    assert e.value.field == field and "\n" not in str(e.value)


def test_a_lane_state_of_the_earlier_format_is_refused_in_one_line():
    old = {"version": 2, "lane": 1, "layout": [2, 2], "streams": {}, "batches": 3}
    with pytest.raises(ConfigError) as e:
        mixture().load_state_dict(old)
    assert e.value.field == "stream_state.version" and "global" in str(e.value)
    assert "\n" not in str(e.value)


def test_the_state_is_a_format_3_stream_envelope_and_names_a_domain_change():
    state = saved_state()
    assert (state["format"], state["kind"], state["domains"]) == (3, "stream", list(SIZES))
    fewer = StreamMixture(
        {d: gen(d, n) for d, n in SIZES.items() if d != "yo"},
        {"en": 31, "sw": 7},
        SCHED,
        STEPS,
        BATCH,
        seed=4,
    )
    with pytest.raises(ConfigError) as e:
        fewer.load_state_dict(state)
    assert e.value.field == "stream_state.domains" and "removed: yo" in str(e.value)
    with pytest.raises(ConfigError) as e:
        mixture().load_state_dict({**state, "kind": "sampler"})
    assert e.value.field == "stream_state.kind"


def test_latest_state_takes_the_largest_step_and_refuses_what_is_not_a_state():
    a, b = saved_state(steps=3), saved_state(steps=6)
    b["origin"] = 2
    got = latest_state([a, {}, b])
    assert got["step"] == b["step"] == 6 and got["origin"] == 6  # a fresh iteration starts there
    assert latest_state([{}, {}]) == {}
    with pytest.raises(ConfigError) as e:
        latest_state([a, {"version": 2, "step": 9}])
    assert e.value.field == "stream_states[1]"


@pytest.mark.parametrize("make", ["mixture", "packed"])
def test_dp_is_the_only_data_parallel_argument(make):
    """``dp=`` gives the dp rank's lane; the five separate arguments of earlier versions are gone."""
    half = [plain(b) for b in MAKERS[make](dp=DataParallel(1, 2))]
    assert half == [plain(b) for b in MAKERS[make]().lane(1, 2)]  # the same lane as the layout's rank 1
    assert half != [plain(b) for b in MAKERS[make](dp=DataParallel(0, 2))]
    for old in ("rank", "world_size", "group", "mesh", "mesh_dim"):
        with pytest.raises(TypeError, match=old):
            MAKERS[make](**{old: 1})
    with pytest.raises(ConfigError) as e:
        MAKERS[make](dp=(1, 2))
    assert e.value.field == "dp"


# -- readers -------------------------------------------------------------------------------------------


def test_reader_for_picks_one_class_per_source_kind(tmp_path):
    datasets = pytest.importorskip("datasets")
    nodes = pytest.importorskip("torchdata.nodes")
    (tmp_path / "a.jsonl").write_text("1\n")
    hf = datasets.Dataset.from_dict({"x": [1, 2]}).to_iterable_dataset(num_shards=2)
    assert reader_class(str(tmp_path)) is ShardDirReader
    assert reader_class(hf) is HFReader
    assert reader_class(nodes.IterableWrapper([1])) is NodeReader
    assert reader_class([1]) is reader_class(lambda: iter([1])) is IterableReader
    with pytest.raises(ConfigError) as e:
        reader_class(3)
    assert e.value.field == "sources"


def test_a_reader_skips_across_passes_and_restores_exactly():
    r = reader_for(gen("en", 5), "en")
    r.skip(7)
    assert next(r)["text"] == "en-2" and (r.pass_, r.consumed, r.total) == (1, 3, 8)
    again = reader_for(gen("en", 5), "en")
    again.load_state_dict(r.state_dict())
    assert [next(again)["text"] for _ in range(3)] == ["en-3", "en-4", "en-0"]


def shard_dir(tmp_path, n=10, files=3):
    root = tmp_path / "shards"
    root.mkdir()
    for f in range(files):
        lines = [json.dumps({"i": i}) for i in range(f, n, files)]
        (root / f"part-{f}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_a_shard_directory_skips_lines_unparsed_and_restores_by_seeking(tmp_path):
    root = shard_dir(tmp_path)
    first = root / "part-0.jsonl"
    first.write_text('{"i": 0}\nnot json\n{"i": 6}\n{"i": 9}\n')  # line 2 is broken
    r = reader_for(str(root), "d")
    r.skip(2)  # the broken line is skipped without being parsed
    assert next(r) == {"i": 6}
    state = r.state_dict()
    assert state["source"] == {"file": 0, "byte": first.stat().st_size - len('{"i": 9}\n')}
    first.write_text("X" * 26 + '\n{"i": 9}\n')  # the same offset, garbage before it: never read
    again = reader_for(str(root), "d")
    again.load_state_dict(json.loads(json.dumps(state)))
    assert [next(again) for _ in range(2)] == [{"i": 9}, {"i": 1}]
    for src in ({"file": 0, "byte": 3}, {"file": 7, "byte": 0}):  # mid-line; past the last shard
        with pytest.raises(ConfigError) as e:
            DomainStream(str(root), "d").load_state_dict({**state, "source": src})
        assert e.value.field == "stream_state.streams.d.source"
    fresh = reader_for(str(root), "d")
    first.write_text('{"i": 0}\nnot json\n')
    assert next(fresh) == {"i": 0}
    with pytest.raises(ConfigError) as e:  # reading (not skipping) the broken line: one line naming it
        next(fresh)
    assert e.value.field == "sources.d" and "not JSON" in str(e.value)


def test_a_shard_directory_refuses_links_and_non_regular_files(tmp_path):
    root = shard_dir(tmp_path)
    outside = tmp_path / "outside.jsonl"
    outside.write_text("1\n")
    os.symlink(outside, root / "part-9.jsonl")
    with pytest.raises(ConfigError) as e:
        reader_for(str(root), "d")
    assert e.value.field == "sources.d" and "link" in str(e.value)
    os.unlink(root / "part-9.jsonl")
    os.mkfifo(root / "part-8.jsonl")
    with pytest.raises(ConfigError):
        mixture_over = {"en": str(root), "sw": gen("sw", 3), "yo": gen("yo", 3)}
        StreamMixture(mixture_over, SIZES, SCHED, STEPS, BATCH)


def test_an_hf_reader_restores_from_the_datasets_own_state():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"x": list(range(10))}).to_iterable_dataset(num_shards=3)
    r = reader_for(ds, "x")
    order = [next(r)["x"] for _ in range(10)]
    assert sorted(order) == list(range(10))
    r = reader_for(ds, "x")
    r.skip(4)
    state = json.loads(json.dumps(r.state_dict()))
    assert isinstance(state["source"], dict)  # the dataset's own state (shard and offset), not a count
    again = reader_for(ds, "x")
    again.load_state_dict(state)
    assert [next(again)["x"] for _ in range(6)] == order[4:]


def test_a_strided_domain_stream_takes_every_lanes_th_item_of_the_global_order():
    views = [DomainStream(gen("en", 5), "en", lane, 3) for lane in range(3)]
    got = [[next(v)["text"] for _ in range(4)] for v in views]
    order = [f"en-{i % 5}" for i in range(12)]
    assert got == [order[lane::3] for lane in range(3)]


def test_a_worker_restoring_its_snapshot_keeps_its_origin(monkeypatch):
    """StatefulDataLoader restores each worker's own state inside the worker: the lane's steps keep
    counting from the origin of the saved iteration (here 0: worker 1 of 2 makes 1, 3, 5, …)."""
    mix = mixture()
    it = mix.lane(0, 1, 1, 2)
    for _ in range(3):  # steps 1, 3, 5
        next(it)
    state = json.loads(json.dumps(mix.state_dict()))
    with monkeypatch.context() as m:
        m.setattr(streams, "_worker_info", lambda: object())
        again = mixture()
        again.load_state_dict(state)
    rest = [plain(b) for b in again.lane(0, 1, 1, 2)]
    want = whole("mixture")
    assert rest == [want[s] for s in range(7, STEPS, 2)]


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    files=st.lists(
        st.tuples(st.lists(st.text("ab\u00e9", max_size=5), max_size=5), st.booleans()),
        min_size=1,
        max_size=4,
    ),
    skips=st.lists(st.integers(0, 12), min_size=1, max_size=4),
    block=st.sampled_from([1, 2, 3, 7, 1 << 20]),
)
def test_a_shard_directory_skip_counts_lines_as_reading_does(tmp_path_factory, files, skips, block):
    """Block-wise newline counting (any block size; empty, unterminated and multi-byte lines; several
    files; across passes) lands exactly where reading line by line does."""
    root = tmp_path_factory.mktemp("skip")
    for f, (lines, terminated) in enumerate(files):
        text = "\n".join(lines) + ("\n" if terminated and lines else "")
        (root / f"part-{f}.txt").write_text(text, encoding="utf-8")
    order = [x for f in range(len(files)) for x in _lines_of(root / f"part-{f}.txt")]
    if not order:
        return  # no items at all: a ConfigError, tested elsewhere
    import coolmix.integrations.readers as readers

    old, readers.SKIP_BLOCK = readers.SKIP_BLOCK, block
    try:
        r, pos = reader_for(str(root), "d"), 0
        for n in skips:
            r.skip(n)
            pos += n
            assert next(r) == order[pos % len(order)]
            pos += 1
            assert r.total == pos
    finally:
        readers.SKIP_BLOCK = old


def _lines_of(path):
    """What reading a shard line by line gives (Python's own line splitting on ``\\n``)."""
    with open(path, "rb") as f:
        return [raw.decode().rstrip("\n") for raw in f]
