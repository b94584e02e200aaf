"""Megatron-core: a coolmix schedule over per-language Megatron datasets, indexed by global sample.

Return `CoolmixBlendedDataset` from your ``train_valid_test_datasets_provider`` in place of
Megatron's `BlendedDataset`. Megatron's training loop reads global samples
[consumed, consumed + global batch) at every iteration and hands rank r of D the micro-batch
slices r·m .. r·m + m − 1 of each m·D chunk (`MegatronPretrainingSampler`), so a dataset that is a
pure function of the global sample g resumes, under any data-parallel size, from Megatron's own
``consumed_samples``: nothing extra goes into the checkpoint. Sample g is
``sampler.sample_at(g)`` (`coolmix.global_index.GlobalIndex`, built once and cached like
Megatron's own blend index), so batch t of the run is the coolmix batch t when the sampler's
``batch_size`` is Megatron's ``--global-batch-size`` (no batch-size ramp-up).

Megatron (``megatron-core``) is never imported here: the per-language datasets are anything with
``__len__``/``__getitem__`` (`GPTDataset` returns a dict of tensors), and `loss_func` only needs
torch-like tensors. Limits: with tensor parallelism Megatron's ``get_batch`` broadcasts only its own
keys from TP rank 0, so ``loss_weight`` must be broadcast alongside them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.distributions import as_distribution
from coolmix.errors import ConfigError
from coolmix.global_index import GlobalIndex
from coolmix.sampler import MixtureSampler
from coolmix.validate import check_int
from coolmix.weighting import step_weights, weighted_loss

__all__ = ["CoolmixBlendedDataset", "loss_func"]


class CoolmixBlendedDataset:
    """Megatron-style blend: ``ds[g] = {"dataset_id": d, **datasets[d][item]}`` for (d, item) =
    ``sampler.sample_at(g)``, plus ``"loss_weight"`` = p_target,d / p_d(g // B) with ``loss_target``.

    ``datasets`` maps each of the sampler's domain names to a dataset (or is a sequence in
    ``sampler.names`` order); each must hold exactly the sampler's item count for its domain
    (``len(datasets[d])``: e.g. ``MixtureSampler(Mixture(tokens, unit="tokens"), ..., items=
    {d: len(ds)})``). ``len(self)`` = total_steps · batch_size, the run's training samples; pass
    Megatron's ``train_val_test_num_samples[0]`` as ``num_samples`` to have it checked.
    ``cache_dir`` keeps the index as memory-mapped files keyed by the config (build on one rank,
    barrier, then the other ranks map it); ``build=False`` materialises blocks lazily instead.
    """

    def __init__(
        self,
        datasets: Mapping[str, Any] | Sequence[Any],
        sampler: MixtureSampler,
        *,
        loss_target: Any = None,
        num_samples: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        build: bool = True,
    ) -> None:
        self.index = GlobalIndex(sampler, cache_dir=cache_dir)
        self.names = self.index.names
        self.datasets = _aligned(datasets, self.names)
        items = self.index.sampler.state_dict()["mixture"]
        for name, ds in zip(self.names, self.datasets, strict=True):
            n = len(ds)
            if n != items[name]:
                why = f"has {n} samples but the mixture declares {items[name]} items for {name!r}"
                raise ConfigError(f"datasets[{name!r}]", n, why)
        if num_samples is not None:
            num_samples = check_int("num_samples", num_samples, lo=0)
            if num_samples > len(self.index):
                why = (
                    f"Megatron asks for more training samples than the schedule has "
                    f"({len(self.index)} = total_steps · batch_size)"
                )
                raise ConfigError("num_samples", num_samples, why)
        self.batch_size = self.index.batch_size
        self._target: np.ndarray | None = None
        if loss_target is not None:
            s = self.index.sampler
            if s.schedule.needs_counts:
                why = "the schedule reads realised counts, so its p(t) is not a function of the step"
                raise ConfigError("loss_target", loss_target, why)
            self._target = as_distribution(loss_target, "loss_target").array(s.names, s.sizes)
        self._w_step, self._w = -1, np.zeros(0)
        if build:
            self.index.build()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, g: int) -> dict[str, Any]:
        d, item = self.index[int(g)]
        out = {"dataset_id": d, **self.datasets[d][item]}
        if self._target is not None:
            out["loss_weight"] = np.float32(self.weights_at(int(g) // self.batch_size)[d])
        return out

    def weights_at(self, step: int) -> np.ndarray:
        """w_d(step) = p_target,d / p_d(step), aligned with ``names`` (0 where p_d(step) = 0)."""
        if self._target is None:
            raise ConfigError("loss_target", None, "no loss target was set")
        if step != self._w_step:
            p = self.index.sampler.probs_array(step)
            self._w_step, self._w = step, step_weights(p, self._target).weights
        return self._w


def _aligned(datasets: Mapping[str, Any] | Sequence[Any], names: tuple[str, ...]) -> list[Any]:
    if isinstance(datasets, Mapping):
        if set(datasets) != set(names):
            why = f"need exactly one dataset per domain: {', '.join(names)}"
            raise ConfigError("datasets", sorted(map(str, datasets)), why)
        return [datasets[n] for n in names]
    bad = isinstance(datasets, (str, bytes)) or not isinstance(datasets, Sequence)
    if bad or len(datasets) != len(names):
        raise ConfigError("datasets", datasets, f"need {len(names)} datasets in the order {', '.join(names)}")
    return list(datasets)


def loss_func(
    loss_mask: Any, output_tensor: Any, loss_weight: Any, *, reduction: str = "mean"
) -> tuple[Any, Any, dict[str, Any]]:
    """Megatron's 3-tuple loss (numerator, token count as int, {"lm loss": [numerator, count]}) with
    per-sample weights w (``batch["loss_weight"]``, (b,)) on per-token losses ℓ (``output_tensor``).

    - ``reduction="mean"`` (default): numerator Σ w·m·ℓ over the count Σ m (m = ``loss_mask``):
      the unbiased scalarization estimator Σ w·ℓ / Σ c (Li et al. Thm. 1). Exact over the global
      batch with ``calculate_per_token_loss=True`` (Megatron divides by the global token count);
      otherwise Megatron divides each micro-batch by its count and averages the micro-batches.
    - ``reduction="self_normalized"``: the micro-batch's Σ w·m·ℓ / Σ w·m, scaled by Σ m so that
      Megatron's division gives it back — what scaling ``loss_mask`` by w does in Megatron's own
      loss (it normalises by ``loss_mask.sum()``, truncated to an int there): the self-normalised
      estimator, biased towards the sampling distribution.

    Use it as ``partial(loss_func, batch["loss_mask"], loss_weight=batch["loss_weight"])``.
    """
    import torch

    if reduction not in ("mean", "self_normalized"):
        raise ConfigError("reduction", reduction, "must be 'mean' or 'self_normalized'")
    losses = output_tensor.float()
    b = losses.shape[0]
    losses = losses.reshape(b, -1)
    mask = loss_mask.reshape(b, -1).float()
    w = torch.as_tensor(loss_weight, device=losses.device).reshape(b).to(losses.dtype)
    ids = torch.arange(b, device=losses.device)
    num = weighted_loss(losses, ids, w, "sum", mask=mask > 0, check_ids=False)  # masked ℓ never counts
    count = mask.sum()
    if reduction == "self_normalized":
        wsum = (mask * w[:, None]).sum()
        num = num * count / torch.where(wsum > 0, wsum, torch.ones_like(wsum))
    tokens = count.detach().to(torch.int)
    return num, tokens, {"lm loss": torch.cat([num.detach().view(1), tokens.view(1)])}
