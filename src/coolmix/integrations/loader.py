"""`MixtureLoader`: a DataLoader whose ``state_dict()`` counts the batches it *delivered*, not prefetched.

A DataLoader with workers asks its batch sampler for ``num_workers × prefetch_factor`` batches
ahead of the training loop, so the sampler's own position runs ahead of what the loop consumed; a
checkpoint taken from it would skip the prefetched batches on resume. `MixtureLoader` wraps the
loader and counts each batch as it hands it to the loop (the adapters' ``track``), so

    loader = MixtureLoader.from_datasets({"en": en, "sw": sw}, sampler, num_workers=2)
    for batch in loader: ...
    ckpt["data"] = loader.state_dict()        # the core sampler state after the batches delivered
    loader.load_state_dict(ckpt["data"])       # the next ``iter`` continues with the next batch

is exact with any ``num_workers`` and ``prefetch_factor``. The state is the core sampler's (a few
counters, JSON-able, no rank), so it also resumes under another world size.

torchdata's ``StatefulDataLoader`` is the other exact way: it snapshots the batch sampler's
``state_dict()`` with every batch a worker returns and restores it from ``loader.state_dict()`` alone
(tested with 2 workers in ``tests/integrations/test_loader.py``). Use it if your stack already
checkpoints a ``StatefulDataLoader``; `MixtureLoader` needs nothing beyond torch.
`realised_exposure` reads the documents and tokens per domain out of a ``StatefulDataLoader``
state over a stream mixer (``PackedStreams`` / ``StreamMixture`` ``.as_torch()``).

RNG: ``iter(loader)`` draws its base seed from torch's global RNG (unless the loader has its own
``generator=``), so on resume create the iterator first, then restore torch's RNG state:
``it = iter(loader); torch.set_rng_state(ckpt["rng"])``; the other order shifts every later draw
(dropout) by one and the run diverges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from torch.utils.data import DataLoader

from coolmix.errors import ConfigError
from coolmix.integrations.collate import MixtureCollator
from coolmix.integrations.streams import STATE_VERSION, realised_from_state
from coolmix.integrations.torch import MixtureBatchSampler, MixtureDataset, MixtureIterableDataset
from coolmix.sampler import MixtureSampler

__all__ = ["MixtureLoader", "realised_exposure", "stream_states"]


def _adapter_of(loader: Any) -> MixtureBatchSampler | MixtureIterableDataset:
    """The coolmix adapter driving ``loader``: its batch sampler, or its iterable dataset."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    if isinstance(batch_sampler, MixtureBatchSampler):
        return batch_sampler
    dataset = getattr(loader, "dataset", None)
    if isinstance(dataset, MixtureIterableDataset):
        return dataset
    raise ConfigError(
        "loader",
        type(loader).__name__,
        "needs batch_sampler=MixtureBatchSampler(...) or dataset=MixtureIterableDataset(...)",
    )


class MixtureLoader:
    """Iterate a DataLoader over a coolmix adapter; ``state_dict()`` is the state after the batches yielded.

    ``loader`` is a ``torch.utils.data.DataLoader`` (or compatible) whose ``batch_sampler`` is a
    `MixtureBatchSampler` or whose ``dataset`` is a `MixtureIterableDataset` (then with
    ``batch_size=ds.batch_size``). Other attributes (``batch_size``, ``dataset``, …) are the loader's.
    A pass left early (``break``) resumes at the first batch not delivered, whatever was prefetched.
    """

    def __init__(self, loader: Any) -> None:
        self.adapter = _adapter_of(loader)
        self.loader = loader

    @classmethod
    def from_datasets(
        cls,
        datasets: Mapping[str, Any] | MixtureDataset,
        sampler: MixtureSampler,
        *,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        dp: Any = None,
        **loader_kwargs: Any,
    ) -> MixtureLoader:
        """Per-domain map-style datasets → `MixtureDataset` + `MixtureBatchSampler` + DataLoader, wrapped.

        ``collate_fn`` collates the untagged fields (e.g. `PadCollator`); the batches also carry
        ``domain``, ``index`` and ``domain_name`` (`MixtureCollator`). ``dp`` is the data-parallel
        coordinate (`coolmix.integrations.ranks`). ``loader_kwargs`` go to the DataLoader
        (``num_workers``, ``pin_memory``, …).
        """
        for banned in ("batch_size", "batch_sampler", "sampler", "shuffle", "drop_last"):
            if banned in loader_kwargs:
                raise ConfigError(banned, loader_kwargs[banned], "the coolmix sampler decides the batches")
        dataset = datasets if isinstance(datasets, MixtureDataset) else MixtureDataset(datasets)
        batches = MixtureBatchSampler(sampler, dp=dp, dataset=dataset)
        loader = DataLoader(
            dataset, batch_sampler=batches, collate_fn=MixtureCollator(collate_fn), **loader_kwargs
        )
        return cls(loader)

    @property
    def sampler(self) -> MixtureSampler:
        """The core sampler (the producer; it runs ahead of the loop by the prefetch)."""
        return self.adapter.sampler

    def __iter__(self) -> Iterator[Any]:
        return iter(self.adapter.track(self.loader))

    def __len__(self) -> int:
        """Batches left from the delivered position (one per step)."""
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        if name in ("adapter", "loader"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def state_dict(self) -> dict[str, Any]:
        """The core sampler's state after the batches this loader delivered (JSON-able)."""
        return self.adapter.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a core state (from any world size); the next ``iter`` starts at its step."""
        self.adapter.load_state_dict(state)


def stream_states(loader_state: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The coolmix stream lanes' states inside a ``StatefulDataLoader.state_dict()``.

    One per DataLoader worker that has started (``num_workers`` > 0), or the one in-process lane
    (``num_workers=0``), each as of the last batch the loader delivered. torchdata keeps them
    under private keys (``_snapshot._worker_snapshots.worker_i.dataset_state``); this is the one
    place that reads them.
    """
    if not isinstance(loader_state, Mapping) or not ({"_snapshot", "dataset_state"} & set(loader_state)):
        got = sorted(map(str, loader_state))[:6] if isinstance(loader_state, Mapping) else type(loader_state)
        raise ConfigError("loader_state", got, "is not a StatefulDataLoader state_dict()")
    if "_snapshot" in loader_state:
        snap = _mapping(loader_state["_snapshot"], "loader_state._snapshot")
        workers = _mapping(snap.get("_worker_snapshots") or {}, "loader_state._snapshot._worker_snapshots")
        found = [
            _mapping(w, f"loader_state._snapshot._worker_snapshots.{k}").get("dataset_state")
            for k, w in sorted(workers.items(), key=lambda kv: _worker_no(kv[0]))
        ]
    else:
        found = [loader_state["dataset_state"]]
    lanes = [st for st in found if st]  # a worker that has not started has no state yet
    for st in lanes:
        _check_lane(st)
    return lanes


def _mapping(x: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(x, Mapping):
        raise ConfigError(field, type(x).__name__, "must be a mapping (a StatefulDataLoader state_dict())")
    return x


def _check_lane(st: Any) -> None:
    """A lane state from `PackedStreams`/`StreamMixture.state_dict()`, with whole counts per domain."""
    field = "loader_state.dataset_state"
    why = "holds no coolmix stream state (StatefulDataLoader over PackedStreams/StreamMixture.as_torch())"
    if not isinstance(st, Mapping) or st.get("version") != STATE_VERSION or "realised" not in st:
        raise ConfigError(field, type(st).__name__, why)
    for name, c in _mapping(st["realised"], f"{field}.realised").items():
        c = _mapping(c, f"{field}.realised.{name}")
        for key in ("documents", "tokens"):
            v = c.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"{field}.realised.{name}.{key}", v, "must be a count (int >= 0)")


def _worker_no(key: str) -> int:
    try:
        return int(str(key).rsplit("_", 1)[-1])
    except ValueError:
        raise ConfigError(
            "loader_state._worker_snapshots", key, "expected keys worker_0, worker_1, …"
        ) from None


def realised_exposure(*loader_states: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """The run's realised documents and tokens per domain from ``StatefulDataLoader`` states.

    Stream states are global, so this is the latest lane state's count (not a sum): any rank's
    ``loader.state_dict()`` gives the run's ``{"en": {"documents": …, "tokens": …}}``.
    Counted as of the last batch each loader delivered, whatever its workers had prefetched.
    """
    if not loader_states:
        raise ConfigError("loader_states", 0, "pass at least one StatefulDataLoader state_dict()")
    return realised_from_state([lane for st in loader_states for lane in stream_states(st)])
