"""Adapters from the numpy core (`coolmix.MixtureSampler`) to training frameworks.

Import the submodule you need; this package imports nothing, so ``import coolmix`` and
``import coolmix.integrations`` stay free of torch.

- `coolmix.integrations.torch`: `MixtureDataset`, `MixtureBatchSampler`, `MixtureIterableDataset`,
  `state_at` (worker- and DDP-aware, exact resume under prefetch).
- `coolmix.integrations.loader`: `MixtureLoader`, a DataLoader whose ``state_dict()`` counts the
  batches delivered to the loop (torchdata's ``StatefulDataLoader`` also resumes exactly).
- `coolmix.integrations.collate`: `MixtureCollator` (tags → tensors) and `PadCollator` (padding).
- `coolmix.integrations.ranks`: the one ``dp=`` argument every adapter takes (``DataParallel(rank,
  world_size)``, a process group or a ``DeviceMesh``), read by `as_data_parallel`, resolved when
  iteration starts.
- `coolmix.integrations.datasets`: Hugging Face ``datasets`` (imported lazily): `interleave` →
  ``datasets.IterableDataset``, `as_torch_dataset` → `MixtureDataset`.
- `coolmix.integrations.hf`: `MixtureTrainer` (HF `Trainer` with a coolmix sampler, loss weights under
  gradient accumulation, sampler state in checkpoints, bit-exact resume) and `CoolmixCallback`;
  transformers imported lazily. The code lives in ``hf_trainer``, ``hf_callbacks`` and ``hf_batches``.

Every adapter tags examples with ``domain`` (id in the sampler's ``names`` order), ``domain_name``
and ``index``, and its ``state_dict`` is the core sampler's state (counters, no rank), so a
checkpoint resumes under any world size.
"""
