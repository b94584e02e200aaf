"""DataLoader ergonomics: state counts delivered batches (MixtureLoader, StatefulDataLoader), collators.

Every resume test stops after k batches with workers that prefetched further, takes the state the
user would checkpoint (JSON round trip), loads it into a fresh object (a new process), and
asserts the rest of the stream is exactly the core sampler's steps k, k+1, ….
"""

import json
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

import coolmix as cm  # noqa: E402
from coolmix.errors import ConfigError  # noqa: E402
from coolmix.integrations.collate import IGNORE_INDEX, MixtureCollator, PadCollator  # noqa: E402
from coolmix.integrations.loader import MixtureLoader  # noqa: E402
from coolmix.integrations.torch import (  # noqa: E402
    MixtureBatchSampler,
    MixtureDataset,
    MixtureIterableDataset,
)

# x = 1000·(domain id + 1) + index; sequences repeat x, one token per position up to the index's length
SIZES = {"a": 40, "b": 7, "c": 3}
DOMAINS = {
    n: [{"x": 1000 * (k + 1) + j, "input_ids": [k + 1] * (1 + j % 4)} for j in range(SIZES[n])]
    for k, n in enumerate(SIZES)
}
STEPS, BATCH = 23, 8


def make_sampler():
    return cm.MixtureSampler(SIZES, 5.0, total_steps=STEPS, batch_size=BATCH, seed=5)


def core_stream(start=0):
    s = make_sampler()
    return [tuple(a.tolist() for a in s.batch(t)) for t in range(start, STEPS)]


def pairs(batches):
    """Collated batches -> [(domains, indices)], checking each payload matches its tags."""
    out = []
    for b in batches:
        d, i = b["domain"].tolist(), b["index"].tolist()
        assert b["x"].tolist() == [1000 * (dd + 1) + ii for dd, ii in zip(d, i, strict=True)]
        out.append((d, i))
    return out


@pytest.fixture(autouse=True)
def _quiet_worker_count():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*worker processes in total.*")
        yield


def take(loader, k):
    """The first k batches of a pass, leaving it early (workers have prefetched beyond k)."""
    out = []
    for batch in loader:
        out += pairs([batch])
        if len(out) == k:
            break
    return out


# -- MixtureLoader ------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 9])
def test_mixture_loader_state_counts_delivered_batches_with_workers(k):
    loader = MixtureLoader.from_datasets(
        DOMAINS, make_sampler(), collate_fn=PadCollator(), num_workers=2, prefetch_factor=3
    )
    assert len(loader) == STEPS and loader.num_workers == 2  # the DataLoader's attributes pass through
    assert take(loader, k) == core_stream()[:k]
    assert loader.sampler.step > k  # the producer ran ahead by the prefetch ...
    state = json.loads(json.dumps(loader.state_dict()))
    assert state["step"] == k  # ... but the state is what the loop received
    fresh = MixtureLoader.from_datasets(DOMAINS, make_sampler(), collate_fn=PadCollator(), num_workers=2)
    fresh.load_state_dict(state)
    assert len(fresh) == STEPS - k
    assert pairs(fresh) == core_stream(k)
    assert pairs(loader) == core_stream(k)  # the same loader, iterated again, continues too


def test_mixture_loader_wraps_an_iterable_dataset_loader():
    ids = MixtureIterableDataset(DOMAINS, make_sampler())
    collate = MixtureCollator(PadCollator())
    loader = MixtureLoader(DataLoader(ids, batch_size=ids.batch_size, collate_fn=collate, num_workers=2))
    assert take(loader, 6) == core_stream()[:6]
    state = loader.state_dict()
    assert state["step"] == 6
    ids2 = MixtureIterableDataset(DOMAINS, make_sampler())
    again = MixtureLoader(DataLoader(ids2, batch_size=ids2.batch_size, collate_fn=collate, num_workers=2))
    again.load_state_dict(state)
    assert pairs(again) == core_stream(6)


def test_mixture_loader_rejects_loaders_it_cannot_count():
    ds = MixtureDataset(DOMAINS)
    with pytest.raises(ConfigError, match="MixtureBatchSampler"):
        MixtureLoader(DataLoader(ds, batch_size=4))
    with pytest.raises(ConfigError) as e:
        MixtureLoader.from_datasets(DOMAINS, make_sampler(), batch_size=4)
    assert e.value.field == "batch_size"


# -- torchdata's StatefulDataLoader -------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")  # torchdata 0.11 on torch 2.13
@pytest.mark.parametrize("k", [0, 1, 7, STEPS])
def test_stateful_dataloader_resumes_from_its_own_state_dict(k):
    """torchdata snapshots the batch sampler's state per delivered batch: its state_dict alone resumes."""
    tdl = pytest.importorskip("torchdata.stateful_dataloader")

    def make():
        ds = MixtureDataset(DOMAINS)
        bs = MixtureBatchSampler(make_sampler(), dataset=ds)
        collate = MixtureCollator(PadCollator())
        return tdl.StatefulDataLoader(
            ds, batch_sampler=bs, collate_fn=collate, num_workers=2, prefetch_factor=2
        )

    first = make()
    if k:
        assert take(first, k) == core_stream()[:k]
    state = first.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    assert pairs(resumed) == core_stream(k)


# -- collators ----------------------------------------------------------------------------------------


def test_pad_collator_pads_masks_and_makes_labels():
    batch = PadCollator(pad_token_id=9)(
        [{"input_ids": [1, 2, 3], "score": 1.5, "tag": "x"}, {"input_ids": [4], "score": 2.0, "tag": "y"}]
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[1, 2, 3], [4, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["score"].tolist() == [1.5, 2.0] and batch["tag"] == ["x", "y"]
    given = PadCollator(pad_to_multiple_of=4)(
        [{"input_ids": [1, 2], "labels": [7, 8]}, {"input_ids": [3], "labels": [9]}]
    )
    assert given["labels"].tolist() == [[7, 8, -100, -100], [9, -100, -100, -100]]
    # per-token domain ids from a packer pad with their own value
    packed = PadCollator(pad_values={"token_domain": -1})(
        [{"input_ids": [1, 2], "token_domain": [0, 1]}, {"input_ids": [3], "token_domain": [2]}]
    )
    assert packed["token_domain"].tolist() == [[0, 1], [2, -1]]
    for bad in ({"pad_token_id": -1}, {"pad_to_multiple_of": 0}, {"pad_to_multiple_of": 2.5}):
        with pytest.raises(ConfigError):
            PadCollator(**bad)
    with pytest.raises(ConfigError, match="dict examples"):
        PadCollator()([[1, 2]])


def test_torch_path_pads_through_the_mixture_collator():
    ds = MixtureDataset(DOMAINS)
    batch = MixtureCollator(PadCollator())([ds[0], ds[3], ds[41]])
    assert batch["input_ids"].tolist() == [[1, 0, 0, 0], [1, 1, 1, 1], [2, 2, 0, 0]]
    assert batch["domain"].tolist() == [0, 0, 1] and batch["index"].tolist() == [0, 3, 1]


@pytest.mark.parametrize("returns", [lambda ex: [e["x"] for e in ex], lambda ex: torch.zeros(len(ex))])
def test_collate_fn_returning_a_non_mapping_is_a_clear_error(returns):
    ds = MixtureDataset(DOMAINS)
    with pytest.raises(ConfigError) as e:
        MixtureCollator(returns)([ds[0], ds[1]])
    assert e.value.field == "collate_fn" and "must return a mapping" in str(e.value)
    with pytest.raises(ConfigError, match="callable"):
        MixtureCollator("pad")
