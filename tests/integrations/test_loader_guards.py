"""Loader guards: persistent DataLoader workers resume at the consumed step, item counts that are
not the datasets' lengths are refused, and collators given malformed examples say so in one line."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

import coolmix as cm  # noqa: E402
from coolmix.integrations.collate import MixtureCollator, PadCollator  # noqa: E402
from coolmix.integrations.torch import MixtureBatchSampler, MixtureDataset, MixtureIterableDataset  # noqa: E402

DATA = {"en": [{"x": i} for i in range(30)], "sw": [{"x": 100 + i} for i in range(5)]}


def _sampler(**kw):
    return cm.MixtureSampler({"en": 30, "sw": 5}, 5.0, total_steps=12, batch_size=4, seed=0, **kw)


def _steps(batches):
    return [b["x"].tolist() for b in batches]


@pytest.mark.parametrize("workers", [0, 2])
def test_persistent_workers_resume_at_the_consumed_step_after_a_break(workers):
    reference = _steps(DataLoader(MixtureIterableDataset(DATA, _sampler()), batch_size=4))
    ds = MixtureIterableDataset(DATA, _sampler())
    loader = DataLoader(
        ds, batch_size=4, num_workers=workers, persistent_workers=workers > 0, collate_fn=MixtureCollator()
    )
    first = []
    for i, b in enumerate(ds.track(loader)):
        first.append(b["x"].tolist())
        if i == 4:
            break
    assert ds.state_dict()["step"] == 5
    rest = [b["x"].tolist() for b in ds.track(loader)]
    assert first + rest == reference  # not a replay from step 0


def test_a_load_while_persistent_workers_live_is_refused():
    ds = MixtureIterableDataset(DATA, _sampler())
    loader = DataLoader(
        ds, batch_size=4, num_workers=1, persistent_workers=True, collate_fn=MixtureCollator()
    )
    state = None
    for i, _ in enumerate(ds.track(loader)):
        if i == 2:
            state = ds.state_dict()
            break
    ds.load_state_dict(state)
    with pytest.raises(Exception, match="persistent_workers"):
        next(iter(loader))


@pytest.mark.parametrize("factor", [2, 40])
def test_item_counts_that_are_not_the_dataset_lengths_are_refused(factor):
    """Token counts given as item counts: indices past a dataset's end, refused by every adapter."""
    declared = {n: len(v) * factor for n, v in DATA.items()}
    sampler = cm.MixtureSampler(cm.Mixture(declared, unit="tokens"), 5.0, total_steps=6, batch_size=4)
    ds = MixtureDataset(DATA)
    with pytest.raises(cm.ConfigError) as e:
        MixtureIterableDataset(DATA, sampler)
    assert e.value.field == "datasets"
    with pytest.raises(cm.ConfigError):
        MixtureBatchSampler(sampler, dataset=ds)
    with pytest.raises(cm.ConfigError) as e:
        for t in range(6):
            ds.examples(*sampler.batch(t))
    assert e.value.field == "index"


def test_token_sizes_with_the_item_counts_given_are_fine():
    sampler = cm.MixtureSampler(
        cm.Mixture({"en": 30_000, "sw": 900}, unit="tokens"), 5.0, 6, 4, items={"en": 30, "sw": 5}
    )
    assert len(list(MixtureIterableDataset(DATA, sampler))) == 24


def _tagged(d, i, **kw):
    return {"domain": d, "domain_name": ("en", "sw")[d], "index": i, **kw}


@pytest.mark.parametrize(
    "examples",
    [
        [],
        [{"x": 1}, {"x": 2}],
        [_tagged(0, 0, x=[1, 2]), _tagged(0, 1, x=[1])],
        [_tagged(0, 0, x=1), _tagged(0, 1)],
        [None, None],
        [(1,), (2,)],
        ["a", "b"],
        [{"domain": "en", "domain_name": "en", "index": 0, "x": 1}],
    ],
    ids=["empty", "untagged", "ragged", "mixed_keys", "none", "bad_pairs", "strings", "str_domain"],
)
def test_mixture_collator_malformed_examples_are_one_line(examples):
    with pytest.raises(cm.ConfigError) as e:
        MixtureCollator()(examples)
    assert "\n" not in str(e.value) and e.value.field.startswith("examples")


@pytest.mark.parametrize(
    "examples",
    [
        [{"input_ids": [[1, 2], [3]]}],
        [{"input_ids": [1, 2]}, {"labels": [1]}],
        [{"input_ids": [1, 2]}, {"input_ids": [[1, 2]]}],
        [{"input_ids": None}],
        [],
        [{"input_ids": [1]}, "x"],
    ],
    ids=["nested", "missing_key", "mixed_dims", "none", "empty", "not_a_dict"],
)
def test_pad_collator_malformed_examples_are_one_line(examples):
    with pytest.raises(cm.ConfigError) as e:
        PadCollator(0)(examples)
    assert "\n" not in str(e.value) and e.value.field.startswith("examples")
