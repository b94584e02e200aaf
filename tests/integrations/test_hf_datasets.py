"""HF datasets adapter on small in-memory ``datasets.Dataset``s: exact core stream, ranks, resume."""

import json
import sys
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

import coolmix as cm  # noqa: E402
from coolmix.errors import ConfigError  # noqa: E402
from coolmix.integrations.datasets import as_torch_dataset, interleave, state_at  # noqa: E402
from coolmix.integrations.torch import DataParallel, MixtureBatchSampler, MixtureCollator  # noqa: E402

try:
    import datasets as hfds
except ImportError:  # only the last test runs without it
    hfds = None
needs_datasets = pytest.mark.skipif(hfds is None, reason="the HF adapter needs `pip install datasets`")

# values reveal domain and item: x = 1000·(domain id + 1) + index, text = name + index
SIZES = {"a": 40, "b": 7, "c": 3}
STEPS, BATCH = 13, 8


def hf_domains():
    return {
        n: hfds.Dataset.from_dict(
            {"x": [1000 * (d + 1) + j for j in range(k)], "text": [f"{n}{j}" for j in range(k)]}
        )
        for d, (n, k) in enumerate(SIZES.items())
    }


def make_sampler():
    return cm.MixtureSampler(SIZES, 5.0, total_steps=STEPS, batch_size=BATCH, seed=7)


def core_stream(rank=0, world_size=1, start=0):
    s = make_sampler()
    return [tuple(a.tolist() for a in s.batch(t, rank, world_size)) for t in range(start, STEPS)]


def steps_of(examples, per_step):
    """Examples (dicts) -> [(domains, indices)] per step, checking payloads against the tags."""
    out = []
    for k in range(0, len(examples), per_step):
        chunk = examples[k : k + per_step]
        for ex in chunk:
            assert ex["x"] == 1000 * (ex["domain"] + 1) + ex["index"]
            assert ex["text"] == f"{ex['domain_name']}{ex['index']}"
        out.append(([ex["domain"] for ex in chunk], [ex["index"] for ex in chunk]))
    return out


def batches_of(loader):
    out = []
    for b in loader:
        d, i = b["domain"].tolist(), b["index"].tolist()
        assert b["x"].tolist() == [1000 * (dd + 1) + ii for dd, ii in zip(d, i, strict=True)]
        assert b["text"] == [f"{n}{ii}" for n, ii in zip(b["domain_name"], i, strict=True)]
        out.append((d, i))
    return out


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*worker processes in total.*")
        yield


@needs_datasets
def test_interleave_equals_core_stream_and_has_tag_columns():
    ids = interleave(hf_domains(), make_sampler())
    assert isinstance(ids, hfds.IterableDataset)
    assert list(ids.features) == ["domain", "domain_name", "index", "x", "text"]
    assert ids.features["domain"] == hfds.Value("int64")
    assert steps_of(list(ids), BATCH) == core_stream()


@needs_datasets
@pytest.mark.parametrize("workers", [0, 2])
def test_interleave_through_torch_dataloader_workers(workers):
    ids = interleave(hf_domains(), make_sampler()).with_format("torch")
    assert batches_of(DataLoader(ids, batch_size=BATCH, num_workers=workers)) == core_stream()


@needs_datasets
def test_interleave_rank_slices_partition_the_global_batch():
    ranks = [
        steps_of(list(interleave(hf_domains(), make_sampler(), dp=DataParallel(r, 2))), BATCH // 2)
        for r in range(2)
    ]
    assert [(d0 + d1, i0 + i1) for (d0, i0), (d1, i1) in zip(*ranks, strict=True)] == core_stream()


@needs_datasets
def test_interleave_resume_from_every_step():
    expected, domains = core_stream(), hf_domains()
    position = make_sampler()  # the caller keeps this one; interleave() iterates on a copy
    ids = interleave(domains, position)
    consumed = steps_of(list(ids), BATCH)
    assert consumed == expected and position.step == 0
    for k in range(STEPS + 1):
        state = json.loads(json.dumps(state_at(position, k)))
        fresh = make_sampler()
        fresh.load_state_dict(state)
        assert steps_of(list(interleave(domains, fresh)), BATCH) == expected[k:], k


@needs_datasets
def test_as_torch_dataset_with_batch_sampler_and_workers():
    ds = as_torch_dataset(hf_domains(), columns=["x", "text"])
    bs = MixtureBatchSampler(make_sampler(), dataset=ds)
    dl = DataLoader(ds, batch_sampler=bs, num_workers=2, collate_fn=MixtureCollator())
    got = []
    for batch in bs.track(dl):
        got += batches_of([batch])
        if len(got) == 5:
            break
    state = bs.state_dict()
    resumed = MixtureBatchSampler(make_sampler(), dataset=ds)
    resumed.load_state_dict(state)
    rest = batches_of(DataLoader(ds, batch_sampler=resumed, num_workers=2, collate_fn=MixtureCollator()))
    assert got + rest == core_stream()


@needs_datasets
def test_validation():
    domains = hf_domains()
    with pytest.raises(ConfigError, match=r"must be a datasets\.Dataset"):
        interleave({**domains, "a": [{"x": 1}]}, make_sampler())
    other = {**domains, "c": hfds.Dataset.from_dict({"x": [1.5, 2.5, 3.5], "text": ["c0", "c1", "c2"]})}
    with pytest.raises(ConfigError, match="features differ from 'a'"):
        interleave(other, make_sampler())
    clash = {**domains, "c": domains["c"].add_column("index", [0, 1, 2])}
    with pytest.raises(ConfigError, match="clash"):
        as_torch_dataset(clash)
    with pytest.raises(ConfigError, match="names, order, lengths"):
        interleave({"a": domains["a"], "b": domains["b"]}, make_sampler())


def test_missing_datasets_package_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(ConfigError, match="pip install datasets"):
        interleave({"a": [1]}, make_sampler())
