"""Streaming sources: passes, lanes (ranks × workers) that together are the global stream, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coolmix import ConfigError, Cooldown
from coolmix.integrations import streams
from coolmix.integrations.ranks import DataParallel
from coolmix.integrations.streams import (
    DomainStream,
    PackedStreams,
    StreamMixture,
    latest_state,
    realised_from_state,
)
from coolmix.packing import token_weights

datasets = pytest.importorskip("datasets")
torch = pytest.importorskip("torch")

SIZES = {"en": 23, "sw": 9}  # items per domain; values reveal the domain ("en-17")


def gen_items(domain: str, n: int):
    for i in range(n):
        yield {"text": f"{domain}-{i}", "input_ids": [len(domain) + 1000 * i + j for j in range(1 + i % 5)]}


def hf_source(domain: str, n: int, shards: int):
    def gen(parts):
        for part in parts:
            for i in range(part, n, shards):
                yield {"text": f"{domain}-{i}", "input_ids": [7] * (1 + i % 5)}

    return datasets.IterableDataset.from_generator(gen, gen_kwargs={"parts": list(range(shards))})


def dir_source(tmp_path, domain: str, n: int, files: int):
    root = tmp_path / domain
    root.mkdir()
    for f in range(files):
        lines = [
            json.dumps({"text": f"{domain}-{i}", "input_ids": [3] * (1 + i % 4)}) for i in range(f, n, files)
        ]
        (root / f"part-{f:03d}.jsonl").write_text("\n".join(lines) + "\n")
    return root


class OwnShards:
    """A re-iterable with its own HF-style ``shard(num_shards, index)`` (contiguous blocks)."""

    def __init__(self, items):
        self.items = items

    def shard(self, num_shards, index):
        n = len(self.items)
        return OwnShards(self.items[index * n // num_shards : (index + 1) * n // num_shards])

    def __iter__(self):
        return iter(self.items)


def make_sources(kind: str, tmp_path):
    if kind == "factory":
        return {d: (lambda d=d, n=n: gen_items(d, n)) for d, n in SIZES.items()}
    if kind == "list":
        return {d: list(gen_items(d, n)) for d, n in SIZES.items()}
    if kind == "own-shard":
        return {d: OwnShards(list(gen_items(d, n))) for d, n in SIZES.items()}
    if kind == "hf-shards":  # 4 shards over 4 lanes: whole shards per lane
        return {d: hf_source(d, n, 4) for d, n in SIZES.items()}
    if kind == "hf-steps":  # 3 shards over 4 lanes: every 4th example
        return {d: hf_source(d, n, 3) for d, n in SIZES.items()}
    if kind == "dir":
        return {d: dir_source(tmp_path, d, n, 4 if d == "en" else 3) for d, n in SIZES.items()}
    if kind == "node":
        from torchdata.nodes import IterableWrapper

        return {d: IterableWrapper(list(gen_items(d, n))) for d, n in SIZES.items()}
    raise AssertionError(kind)


KINDS = ["factory", "list", "own-shard", "hf-shards", "hf-steps", "dir", "node"]


def mixture(sources, **kw):
    return StreamMixture(
        sources, SIZES, Cooldown(hot=5.0, cold=1.0, at=0.5), total_steps=40, batch_size=8, **kw
    )


def layout_stream(make, world_size, workers, steps):
    """The global stream as the lanes of a layout yield it: step s = the ranks' rows of worker s % W."""
    coords = [(r, w) for r in range(world_size) for w in range(workers)]
    lanes = {(r, w): list(make().lane(r, world_size, w, workers)) for r, w in coords}
    out = []
    for s in range(steps):
        parts = [lanes[(r, s % workers)][s // workers] for r in range(world_size)]
        if isinstance(parts[0], dict):  # packed rows: stack the ranks' rows
            out.append({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
        else:
            out.append([ex for p in parts for ex in p])
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_four_lanes_partition_every_pass(kind, tmp_path):
    """4 strided views of one domain: within each pass, every item goes to exactly one view."""
    if kind == "node":
        pytest.importorskip("torchdata")
    sources = make_sources(kind, tmp_path)
    for d, n in SIZES.items():
        by_pass = {0: [], 1: [], 2: []}
        for lane in range(4):
            s = DomainStream(sources[d], d, lane, 4)
            while True:
                item = next(s)["text"]
                if s.state_dict()["pass"] > 2:
                    break
                by_pass[s.state_dict()["pass"]].append(item)
        for items in by_pass.values():  # no duplicates, no gaps
            assert sorted(items) == sorted(f"{d}-{i}" for i in range(n))


@pytest.mark.parametrize("kind", KINDS)
def test_the_lanes_of_2x2_are_the_single_process_stream(kind, tmp_path):
    """What the 4 lanes yield together is the 1-lane stream, and each domain reads in its own order."""
    if kind == "node":
        pytest.importorskip("torchdata")
    sources = make_sources(kind, tmp_path)
    whole = list(mixture(sources))
    assert layout_stream(lambda: mixture(sources), 2, 2, 40) == whole
    for d, n in SIZES.items():
        seq = [ex["text"] for batch in whole for ex in batch if ex["domain_name"] == d]
        assert len(seq) > n  # long enough to cover a new pass
        reader = DomainStream(sources[d], d)  # the domain's global order, pass after pass
        assert seq == [next(reader)["text"] for _ in seq]
        assert sorted(seq[:n]) == sorted(f"{d}-{i}" for i in range(n))


def test_global_batches_have_exact_counts():
    """Each domain's global count is within 1 of Σ B·p(step), whatever the layout."""
    sources = make_sources("factory", None)
    sched = Cooldown(hot=5.0, cold=1.0, at=0.5)
    planned, counted = np.zeros(2), np.zeros(2)
    for step, batch in enumerate(layout_stream(lambda: mixture(sources), 2, 2, 40)):
        planned += 8 * np.array(list(sched.probs_at(step, SIZES, 40).values()))
        counted += np.bincount([e["domain"] for e in batch], minlength=2)
        assert np.abs(counted - planned).max() < 1 + 1e-9


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stop", [3, 11])
def test_stream_mixture_resumes_exactly(kind, stop, tmp_path):
    if kind == "node":
        pytest.importorskip("torchdata")
    sources = make_sources(kind, tmp_path)
    whole = list(mixture(sources).lane(0, 2, 1, 2))
    mix = mixture(sources)
    it = mix.lane(0, 2, 1, 2)
    for _ in range(stop):
        next(it)
    state = json.loads(json.dumps(mix.state_dict()))
    if kind.startswith("hf") or kind in ("node", "dir"):  # restored from the source's own state, not skipped
        assert all(s["source"] is not None for s in state["streams"].values())
    again = mixture(sources)
    again.load_state_dict(state)
    assert list(again.lane(0, 2, 1, 2)) == whole[stop:]


@pytest.mark.parametrize(("saved", "resumed"), [((2, 2), (1, 2)), ((1, 1), (2, 2)), ((2, 2), (4, 1))])
@pytest.mark.parametrize("kind", ["factory", "hf-steps", "dir"])
def test_a_state_saved_under_one_layout_resumes_under_another(kind, saved, resumed, tmp_path):
    """Lanes of ``saved`` stop after step 13 (each worker after its last step <= 13); the latest
    of their states resumes under ``resumed``: before + after = the uninterrupted stream."""
    sources = make_sources(kind, tmp_path)
    whole = list(mixture(sources))
    (r0, w0), (r1, w1) = saved, resumed
    states, before = [], {}
    for r in range(r0):
        for w in range(w0):
            mix = mixture(sources)
            it = mix.lane(r, r0, w, w0)
            for s in range(w, 14, w0):
                before[(s, r)] = next(it)
            states.append(json.loads(json.dumps(mix.state_dict())))
    state = latest_state(states)
    assert state["step"] == 14
    assert [[ex for r in range(r0) for ex in before[(s, r)]] for s in range(14)] == whole[:14]
    mix = mixture(sources)
    mix.load_state_dict(state)
    lanes = {(r, w): list(mix.lane(r, r1, w, w1)) for r in range(r1) for w in range(w1)}
    after = [[ex for r in range(r1) for ex in lanes[(r, s % w1)][(s - 14) // w1]] for s in range(14, 40)]
    assert after == whole[14:]


def packed(sources, **kw):
    return PackedStreams(
        sources, {"en": 900.0, "sw": 60.0}, Cooldown(hot=5.0, cold=1.0, at=0.5), 30, 4, 8, **kw
    )


@pytest.mark.parametrize("kind", ["factory", "hf-steps", "dir"])
def test_packed_streams_resume_exactly_mid_document(kind, tmp_path, monkeypatch):
    """Lane (rank 1 of 2, worker 0 of 2) stops after 5 batches (steps 0, 2, …, 8), mid-document.

    Restored inside a DataLoader worker (StatefulDataLoader's own snapshot), it continues with its
    steps 10, 12, …; loaded in the main process (a fresh loader), its workers restart at step 9.
    """
    sources = make_sources(kind, tmp_path)
    whole = list(packed(sources))
    ps = packed(sources)
    it = ps.lane(1, 2, 0, 2)
    for _ in range(5):
        next(it)
    state = json.loads(json.dumps(ps.state_dict()))
    assert (state["step"], state["origin"]) == (9, 0)
    with monkeypatch.context() as m:  # as a DataLoader worker restoring its snapshot
        m.setattr(streams, "_worker_info", lambda: object())
        again = packed(sources)
        again.load_state_dict(state)
    rest = list(again.lane(1, 2, 0, 2))
    assert len(rest) == 10
    for step, got in zip(range(10, 30, 2), rest, strict=True):
        for key in got:
            np.testing.assert_array_equal(whole[step][key][2:], got[key])
    fresh = packed(sources)
    fresh.load_state_dict(state)  # main process: worker 0 now makes steps 9, 11, …
    for step, got in zip(range(9, 30, 2), fresh.lane(1, 2, 0, 2), strict=True):
        for key in got:
            np.testing.assert_array_equal(whole[step][key][2:], got[key])


def test_packed_lane_shapes_and_realised_counts():
    """A rank's batches hold its rows; the realised counts in its state are the run's (both ranks')."""
    sources = make_sources("factory", None)
    ps = packed(sources)
    batches = list(ps.lane(0, 2, 0, 1))
    assert len(batches) == 30 and batches[0]["input_ids"].shape == (2, 8)
    other = list(packed(sources).lane(1, 2, 0, 1))
    dom = np.concatenate([b["domain_ids"] for b in batches + other])
    total = realised_from_state([ps.state_dict()])
    assert total["en"]["tokens"] == int((dom == 0).sum()) and total["sw"]["tokens"] == int((dom == 1).sum())


@pytest.mark.parametrize("layout", [(2, 1), (2, 2), (4, 1), (1, 3)])
def test_packed_lanes_are_the_single_process_packing(layout):
    """One global packer: the ranks' rows of every step are the 1-lane batch, whatever the layout."""
    sources = make_sources("factory", None)
    whole = list(packed(sources))
    got = layout_stream(lambda: packed(sources), *layout, 30)
    for want, have in zip(whole, got, strict=True):
        for key in want:
            np.testing.assert_array_equal(want[key], have[key])


def test_domain_stream_calls_set_epoch_with_the_pass_number():
    class Epoched:
        def __init__(self):
            self.epochs = []

        def set_epoch(self, e):
            self.epochs.append(e)

        def __iter__(self):
            return iter([f"e{self.epochs[-1]}-0", f"e{self.epochs[-1]}-1"])

    src = Epoched()
    s = DomainStream(src, "x")
    assert [next(s) for _ in range(5)] == ["e0-0", "e0-1", "e1-0", "e1-1", "e2-0"]
    assert src.epochs == [0, 1, 2]


def test_bad_sources_are_one_line_errors():
    with pytest.raises(ConfigError, match="cannot restart"):
        s = DomainStream(iter([1]), "x")
        next(s), next(s)
    with pytest.raises(ConfigError, match="no items"):
        next(DomainStream(lambda: iter([]), "x", lane=1, lanes=2))
    with pytest.raises(ConfigError, match="domains"):
        mixture({"en": [1]})


def test_token_weights_on_tensors_follow_the_ids():
    ids = torch.tensor([[0, 1, -1]])
    tw = token_weights(ids, [2.0, 0.5])
    assert tw.dtype == torch.float64 and tw.tolist() == [[2.0, 0.5, 0.0]]


@pytest.mark.slow
def test_dataloader_two_workers_matches_in_process_lanes_and_resumes():
    """A StatefulDataLoader with 2 workers yields the lanes interleaved; its state resumes exactly."""
    pytest.importorskip("torchdata")
    from torchdata.stateful_dataloader import StatefulDataLoader

    sources = make_sources("factory", None)
    lanes = [list(packed(sources).lane(0, 1, w, 2)) for w in range(2)]
    want = [lanes[t % 2][t // 2] for t in range(30)]
    loader = StatefulDataLoader(
        packed(sources, dp=DataParallel(0, 1)).as_torch(), batch_size=None, num_workers=2
    )
    got = []
    for i, b in enumerate(loader):
        got.append(b)
        if i == 6:
            state = loader.state_dict()
    assert len(got) == 30
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(w["input_ids"], g["input_ids"].numpy())
    loader = StatefulDataLoader(
        packed(sources, dp=DataParallel(0, 1)).as_torch(), batch_size=None, num_workers=2
    )
    loader.load_state_dict(state)
    rest = list(loader)
    assert len(rest) == 23
    for w, g in zip(want[7:], rest, strict=True):
        np.testing.assert_array_equal(w["domain_ids"], g["domain_ids"].numpy())
