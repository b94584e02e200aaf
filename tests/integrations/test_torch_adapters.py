"""torch adapters: the DataLoader stream is exactly the core stream (workers, ranks, resume)."""

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import coolmix as cm  # noqa: E402
from coolmix.errors import ConfigError  # noqa: E402
from coolmix.integrations.torch import (  # noqa: E402
    DataParallel,
    MixtureBatchSampler,
    MixtureCollator,
    MixtureDataset,
    MixtureIterableDataset,
    state_at,
)
from coolmix.weighting import weights_array  # noqa: E402

# example values reveal their domain and item: x = 1000·(domain id + 1) + index
BASE = {"a": 1000, "b": 2000, "c": 3000}
SIZES = {"a": 40, "b": 7, "c": 3}
DOMAINS = {n: [{"x": BASE[n] + j} for j in range(SIZES[n])] for n in SIZES}
STEPS, BATCH = 31, 8  # 31 steps: not a multiple of 2 or 3 workers, so the tail is uneven


def make_sampler(schedule=5.0):
    return cm.MixtureSampler(SIZES, schedule, total_steps=STEPS, batch_size=BATCH, seed=3)


def core_stream(rank=0, world_size=1, start=0, schedule=5.0):
    s = make_sampler(schedule)
    return [tuple(a.tolist() for a in s.batch(t, rank, world_size)) for t in range(start, STEPS)]


def as_pairs(batches):
    """Collated batches -> [(domains, indices)], checking every payload matches its tags."""
    out = []
    for b in batches:
        d, i = b["domain"].tolist(), b["index"].tolist()
        assert b["x"].tolist() == [1000 * (dd + 1) + ii for dd, ii in zip(d, i, strict=True)]
        assert b["domain_name"] == [list(SIZES)[dd] for dd in d]
        out.append((d, i))
    return out


def loader(dataset, bs, workers, prefetch=2):
    kw = {"num_workers": workers, "prefetch_factor": prefetch} if workers else {}
    return DataLoader(dataset, batch_sampler=bs, collate_fn=MixtureCollator(), **kw)


@pytest.fixture(autouse=True)
def _quiet_worker_count():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*worker processes in total.*")
        yield


# -- MixtureDataset ---------------------------------------------------------------------------------


def test_dataset_flat_indices_tags_and_batched_fetch():
    ds = MixtureDataset(DOMAINS)
    assert ds.sizes == SIZES and len(ds) == 50 and ds.offsets.tolist() == [0, 40, 47, 50]
    assert ds[41] == {"domain": 1, "domain_name": "b", "index": 1, "x": 2001}
    d, i = ds.locate([0, 39, 40, 46, 47, 49])
    assert d.tolist() == [0, 0, 1, 1, 2, 2] and i.tolist() == [0, 39, 0, 6, 0, 2]
    assert ds.flat_index(d, i).tolist() == [0, 39, 40, 46, 47, 49]
    flat = [49, 0, 41, 3, 48, 40]
    assert ds.__getitems__(flat) == [ds[f] for f in flat]
    with pytest.raises(IndexError):
        ds[50]


def test_dataset_non_dict_examples_are_paired_with_domain():
    ds = MixtureDataset({"a": TensorDataset(torch.arange(3.0)), "b": TensorDataset(torch.arange(10.0, 12.0))})
    (x,), d = ds[4]
    assert (x.item(), d) == (11.0, 1)
    xs, doms = MixtureCollator()([ds[0], ds[3], ds[2]])
    assert xs[0].tolist() == [0.0, 10.0, 2.0] and doms.dtype == torch.long and doms.tolist() == [0, 1, 0]


@pytest.mark.parametrize(
    "bad, field",
    [({}, "datasets"), ({"a": []}, "datasets.a"), ({"a": 5}, "datasets.a"), ({"": [1]}, "datasets")],
)
def test_dataset_rejects_bad_input(bad, field):
    with pytest.raises(ConfigError) as e:
        MixtureDataset(bad)
    assert e.value.field == field


def test_dataset_refuses_to_overwrite_user_keys():
    with pytest.raises(ConfigError, match="domain"):
        MixtureDataset({"a": [{"domain": "legal", "x": 1}]})[0]


# -- MixtureBatchSampler ----------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
def test_batch_sampler_stream_equals_core_stream(workers):
    ds = MixtureDataset(DOMAINS)
    bs = MixtureBatchSampler(make_sampler(), dataset=ds)
    assert len(bs) == STEPS
    assert as_pairs(loader(ds, bs, workers)) == core_stream()


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_rank_slices_partition_the_global_batch(world_size):
    ds = MixtureDataset(DOMAINS)
    per_rank = [
        as_pairs(loader(ds, MixtureBatchSampler(make_sampler(), dp=DataParallel(r, world_size)), workers=0))
        for r in range(world_size)
    ]
    for t, (gd, gi) in enumerate(core_stream()):
        assert [d for r in range(world_size) for d in per_rank[r][t][0]] == gd
        assert [i for r in range(world_size) for i in per_rank[r][t][1]] == gi
        assert all(len(per_rank[r][t][0]) == BATCH // world_size for r in range(world_size))


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_with_workers_and_prefetch_gives_exactly_the_rest(workers):
    ds, expected = MixtureDataset(DOMAINS), core_stream()
    bs = MixtureBatchSampler(make_sampler(), dataset=ds)
    dl = loader(ds, bs, workers, prefetch=3)
    seen = []
    for batch in bs.track(dl):
        seen += as_pairs([batch])
        if len(seen) == 10:
            break
    state = json.loads(json.dumps(bs.state_dict()))  # JSON-able
    assert seen == expected[:10] and state["step"] == 10
    assert (bs.sampler.step > 10) if workers else (bs.sampler.step == 10)  # workers prefetched ahead
    assert bs.state_dict(step=10) == bs.state_dict()

    # same loader again: restarts at the consumed step, not at the prefetched one
    assert as_pairs(bs.track(dl)) == expected[10:]
    # a fresh process: load the state, get exactly the remaining stream
    bs2 = MixtureBatchSampler(make_sampler(), dataset=ds)
    bs2.load_state_dict(state)
    assert len(bs2) == STEPS - 10
    assert as_pairs(loader(ds, bs2, workers, prefetch=3)) == expected[10:]


def test_resume_under_another_world_size_continues_the_global_stream():
    ds = MixtureDataset(DOMAINS)
    bs = MixtureBatchSampler(make_sampler())
    for k, _ in enumerate(bs.track(loader(ds, bs, workers=2))):
        if k == 6:
            break
    state = bs.state_dict()
    ranks = []
    for r in range(2):
        b = MixtureBatchSampler(make_sampler(), dp=DataParallel(r, 2))
        b.load_state_dict(state)
        ranks.append(as_pairs(loader(ds, b, workers=0)))
    merged = [(d0 + d1, i0 + i1) for (d0, i0), (d1, i1) in zip(*ranks, strict=True)]
    assert merged == core_stream(start=7)


def test_event_recorded_during_prefetch_resumes_exactly():
    """An adaptive cooldown recorded mid-run takes effect at the produced step; resume replays it."""
    ds = MixtureDataset(DOMAINS)
    schedule = cm.Adaptive(hot=cm.Constant(cm.Temperature(100.0)), cold=cm.Constant(cm.Proportional()))
    bs = MixtureBatchSampler(make_sampler(schedule), dataset=ds)
    stream, state = [], None
    for batch in bs.track(loader(ds, bs, workers=2, prefetch=2)):
        stream += as_pairs([batch])
        if len(stream) == 5:
            event = bs.sampler.record_event("cooldown")
            assert event.step > 5  # batches up to event.step - 1 were already prefetched
        if len(stream) == 8:
            state = json.loads(json.dumps(bs.state_dict()))
    assert len(stream) == STEPS and state["step"] == 8 and len(state["events"]) == 1
    hot_only = core_stream(schedule=schedule)
    assert stream[: event.step] == hot_only[: event.step] and stream != hot_only
    resumed = MixtureBatchSampler(make_sampler(schedule), dataset=ds)
    resumed.load_state_dict(state)
    assert as_pairs(loader(ds, resumed, workers=2)) == stream[8:]


def test_state_dict_outside_the_kept_window_is_refused():
    ds = MixtureDataset(DOMAINS)
    bs = MixtureBatchSampler(make_sampler(), window=4)
    list(loader(ds, bs, workers=0))
    assert bs.state_dict(step=28)["step"] == 28
    with pytest.raises(ConfigError, match="kept"):
        bs.state_dict(step=3)


# -- MixtureIterableDataset -------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_iterable_stream_equals_core_stream(workers):
    ids = MixtureIterableDataset(DOMAINS, make_sampler())
    assert len(ids) == STEPS * BATCH
    dl = DataLoader(ids, batch_size=ids.batch_size, num_workers=workers, collate_fn=MixtureCollator())
    assert as_pairs(ids.track(dl)) == core_stream()
    assert ids.state_dict()["step"] == STEPS


def test_iterable_ranks_with_workers_partition_the_global_batch():
    ranks = []
    for r in range(2):
        ids = MixtureIterableDataset(DOMAINS, make_sampler(), dp=DataParallel(r, 2))
        ranks.append(as_pairs(DataLoader(ids, batch_size=4, num_workers=2, collate_fn=MixtureCollator())))
    assert [(d0 + d1, i0 + i1) for (d0, i0), (d1, i1) in zip(*ranks, strict=True)] == core_stream()


def test_iterable_resume_with_workers_gives_exactly_the_rest():
    ids = MixtureIterableDataset(DOMAINS, make_sampler())
    dl = DataLoader(ids, batch_size=BATCH, num_workers=2, prefetch_factor=3, collate_fn=MixtureCollator())
    for k, _ in enumerate(ids.track(dl)):
        if k == 11:
            break
    state = json.loads(json.dumps(ids.state_dict()))
    assert state["step"] == 12
    resumed = MixtureIterableDataset(DOMAINS, make_sampler())
    resumed.load_state_dict(state)
    dl = DataLoader(resumed, batch_size=BATCH, num_workers=2, collate_fn=MixtureCollator())
    assert as_pairs(dl) == core_stream(start=12)


def test_iterable_track_rejects_batches_that_are_not_one_step():
    ids = MixtureIterableDataset(DOMAINS, make_sampler())
    with pytest.raises(ConfigError, match="per-rank 8"):
        next(ids.track(DataLoader(ids, batch_size=5, collate_fn=MixtureCollator())))


# -- collate + weighted loss, configuration ---------------------------------------------------------


def test_weighted_loss_on_a_collated_batch_matches_hand_computation():
    ds = MixtureDataset(DOMAINS)
    sampler = make_sampler()
    batch = next(iter(loader(ds, MixtureBatchSampler(sampler), workers=0)))
    assert batch["domain"].dtype == torch.long
    loss = batch["x"].double().requires_grad_()  # a per-example "loss" whose value is known
    w = cm.scalarization_weights(SIZES, tau=5.0)
    got = cm.weighted_loss(loss, batch["domain"], weights_array(w, sampler.names))
    names = list(SIZES)
    hand = (
        sum(w[names[d]] * x for d, x in zip(batch["domain"].tolist(), batch["x"].tolist(), strict=True))
        / BATCH
    )
    assert got.item() == pytest.approx(hand, rel=1e-12)
    got.backward()
    assert loss.grad.tolist() == pytest.approx([w[names[d]] / BATCH for d in batch["domain"].tolist()])


def test_collator_passes_fields_through_a_custom_collate_fn():
    def pad(examples):  # a stand-in for a padding collator that knows nothing of the tags
        assert all(set(ex) == {"x"} for ex in examples)
        return {"x": torch.tensor([ex["x"] for ex in examples])}

    ds = MixtureDataset(DOMAINS)
    batch = MixtureCollator(pad)([ds[0], ds[45]])
    assert batch["x"].tolist() == [1000, 2005] and batch["index"].tolist() == [0, 5]


def test_rank_and_sizes_are_validated():
    ds = MixtureDataset(DOMAINS)
    with pytest.raises(ConfigError) as e:
        MixtureBatchSampler(make_sampler(), dp=DataParallel(1))
    assert e.value.field == "world_size"
    with pytest.raises(ConfigError, match="does not divide"):
        MixtureBatchSampler(make_sampler(), dp=DataParallel(0, 3))
    with pytest.raises(ConfigError, match=r"must be an integer in \[0, 2\)"):
        MixtureIterableDataset(DOMAINS, make_sampler(), dp=DataParallel(2, 2))
    swapped = cm.MixtureSampler({"b": 7, "a": 40, "c": 3}, 5.0, total_steps=STEPS, batch_size=BATCH)
    with pytest.raises(ConfigError, match="names, order, lengths"):
        MixtureBatchSampler(swapped, dataset=ds)
    with pytest.raises(ConfigError, match="in_order"):
        MixtureBatchSampler(make_sampler()).track(DataLoader(ds, in_order=False))


def test_rank_falls_back_to_torch_distributed(monkeypatch):
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 4)
    bs = MixtureBatchSampler(make_sampler())
    assert (bs.rank, bs.world_size, bs.batch_size) == (1, 4, 2)
    assert as_pairs(loader(MixtureDataset(DOMAINS), bs, workers=0)) == core_stream(1, 4)


def test_state_at_moves_a_position_marker_forward_only():
    s = make_sampler()
    assert state_at(s, 0)["step"] == 0
    state = state_at(s, 17)
    ref = make_sampler()
    for t in range(17):
        ref.batch(t)
    assert state == ref.state_dict()
    with pytest.raises(ConfigError, match="only moves forward"):
        state_at(s, 3)
    assert np.array_equal(s.global_batch(17)[0], ref.global_batch(17)[0])


def _late_worker(worker_id):
    if worker_id == 2:  # starts after the loop has consumed the batches of workers 0 and 1
        import time

        time.sleep(1.0)


def test_a_worker_that_starts_late_still_starts_at_the_pass_start():
    """The workers read where the pass began, not the position the loop has already moved."""
    ids = MixtureIterableDataset(DOMAINS, make_sampler())
    dl = DataLoader(
        ids,
        batch_size=ids.batch_size,
        num_workers=3,
        collate_fn=MixtureCollator(),
        worker_init_fn=_late_worker,
    )
    assert as_pairs(ids.track(dl)) == core_stream()
