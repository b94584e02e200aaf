"""Hugging Face ``datasets`` adapter: a `MixtureSampler` stream over a mapping of ``datasets.Dataset``.

``datasets`` is imported on first use; without it every function raises a `ConfigError` saying
``pip install datasets``. Two forms, both exactly ``sampler.batch(step, rank, world_size)`` per step:

- `interleave` → a ``datasets.IterableDataset`` with every column plus ``domain``, ``domain_name``
  and ``index`` (HF's ``interleave_datasets`` with the schedule, exact composition, ranks and
  resume of `MixtureSampler`). Each step is one of its shards, so a torch DataLoader with W workers
  gives worker w the steps start + w + kW (HF's ``contiguous=False`` split) and takes them back
  round-robin, in step order. Ranks are sliced here: do not also call ``split_dataset_by_node``.
- `as_torch_dataset` → a `MixtureDataset` (HF Datasets are map-style), for
  `MixtureBatchSampler` and the torch DataLoader.

Resume: the sampler you pass is copied; keep it as a position marker and checkpoint
``state_at(sampler, steps_consumed)``. To resume, ``sampler.load_state_dict(state)`` and call
`interleave` again: the new dataset starts at that step. (HF's own ``IterableDataset.state_dict``
also works, since skipping whole steps skips shards without reading them.)

This module is the datasets-only adapter; the HF Trainer integration is ``coolmix.integrations.hf``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from coolmix.errors import ConfigError
from coolmix.integrations.collate import DOMAIN_KEY, DOMAIN_NAME_KEY, INDEX_KEY, TAG_KEYS
from coolmix.integrations.ranks import DataParallel
from coolmix.integrations.torch import MixtureDataset, _check_matches, _checked_dp, _dp_slice, state_at
from coolmix.sampler import MixtureSampler

__all__ = ["as_torch_dataset", "interleave", "state_at"]


def _hf() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError("datasets", "not installed", "pip install datasets (or coolmix[hf])") from None
    return datasets


def _check_hf(datasets: Mapping[str, Any]) -> Any:
    """Every value is a ``datasets.Dataset`` without tag columns; returns the module."""
    hf = _hf()
    if not isinstance(datasets, Mapping) or not datasets:
        raise ConfigError("datasets", datasets, "must be a non-empty mapping name -> datasets.Dataset")
    for name, ds in datasets.items():
        if not isinstance(ds, hf.Dataset):
            raise ConfigError(f"datasets.{name}", type(ds).__name__, "must be a datasets.Dataset")
        clash = sorted(TAG_KEYS & set(ds.column_names))
        if clash:
            raise ConfigError(f"datasets.{name}", clash, "columns clash with coolmix's tags; rename them")
    return hf


def interleave(
    datasets: Mapping[str, Any],
    sampler: MixtureSampler,
    *,
    dp: Any = None,
) -> Any:
    """A ``datasets.IterableDataset`` of this rank's tagged examples, from ``sampler.step`` on.

    All domains must share their features; the result has ``domain`` (int64), ``domain_name``
    (string) and ``index`` (int64) first, then the columns. Columns are read unformatted: call
    ``.with_format("torch")`` on the result. The data-parallel coordinate ``dp`` is as in the torch
    adapters (`coolmix.integrations.ranks`), read when iteration starts.

    >>> import datasets as hfds
    >>> s = MixtureSampler({"en": 4, "sw": 2}, 1.0, total_steps=2, batch_size=3)
    >>> en = hfds.Dataset.from_dict({"x": [10, 11, 12, 13]})
    >>> sw = hfds.Dataset.from_dict({"x": [20, 21]})
    >>> [ex["x"] // 10 - 1 == ex["domain"] for ex in interleave({"en": en, "sw": sw}, s)]
    [True, True, True, True, True, True]
    """
    hf = _check_hf(datasets)
    mixture = MixtureDataset({n: ds.with_format(None) for n, ds in datasets.items()})
    _check_matches(mixture, sampler)
    dp = _checked_dp(sampler, dp)
    first_name, first = next(iter(datasets.items()))
    for name, ds in datasets.items():
        if ds.features != first.features:
            raise ConfigError(f"datasets.{name}", dict(ds.features), f"features differ from {first_name!r}'s")
    features = hf.Features(
        {
            DOMAIN_KEY: hf.Value("int64"),
            DOMAIN_NAME_KEY: hf.Value("string"),
            INDEX_KEY: hf.Value("int64"),
            **first.features,
        }
    )
    gen_kwargs = {
        # one shard per step: HF hands shards to DataLoader workers round-robin
        "steps": list(range(sampler.step, sampler.total_steps)),
        "mixture": mixture,
        "sampler": copy.deepcopy(sampler),
        "dp": dp,
    }
    return hf.IterableDataset.from_generator(_generate, features=features, gen_kwargs=gen_kwargs)


def _generate(
    steps: list[int], mixture: MixtureDataset, sampler: MixtureSampler, dp: DataParallel
) -> Iterator[dict[str, Any]]:
    """The examples of ``steps`` (increasing, so the sampler copy only moves forward)."""
    rank, world_size, _ = _dp_slice(sampler, dp)  # at iteration start
    for step in steps:
        yield from mixture.examples(*sampler.batch(step, rank, world_size))


def as_torch_dataset(
    datasets: Mapping[str, Any], format: str | None = "torch", columns: list[str] | None = None
) -> MixtureDataset:
    """A `MixtureDataset` over HF Datasets (``.with_format(format, columns)`` applied to each).

    Pair it with `MixtureBatchSampler` (or `MixtureIterableDataset`) and `MixtureCollator`.
    """
    _check_hf(datasets)
    if format is not None or columns is not None:
        datasets = {n: ds.with_format(format, columns=columns) for n, ds in datasets.items()}
    return MixtureDataset(datasets)
