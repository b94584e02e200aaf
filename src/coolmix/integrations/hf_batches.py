"""The torch-only pieces of the HF Trainer integration: micro-batches of one step, per-token losses.

`MicroBatchSampler` cuts each rank's slice of a sampler step into gradient-accumulation
micro-batches; `per_example_loss` and `token_losses` compute cross-entropy the way
`MixtureTrainer.compute_loss` reduces it; `token_domains` aligns the batch's domain ids — one per
example (B,) or one per token (B, T), as a packer produces — with those losses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Sampler

from coolmix.distributions import Distribution, Temperature, as_distribution, check_tau
from coolmix.errors import ConfigError
from coolmix.integrations.collate import IGNORE_INDEX
from coolmix.integrations.torch import MixtureBatchSampler, MixtureDataset
from coolmix.sampler import MixtureSampler
from coolmix.validate import check_int

__all__ = [
    "STATE_FILE",
    "MicroBatchSampler",
    "per_example_loss",
    "target_counts",
    "token_domains",
    "token_losses",
]

STATE_FILE = "coolmix_sampler.json"
"""Name of the sampler + ledger state written into every Trainer checkpoint folder."""
STATE_FORMAT = 1
REDUCTIONS = ("mean", "self_normalized")
UNITS = ("token", "sequence")


class MicroBatchSampler(Sampler[list[int]]):
    """One sampler step = ``accumulation_steps`` micro-batches of this rank's slice, in order.

    Wraps a `MixtureBatchSampler` (per step: this rank's contiguous slice of the global batch,
    as flat indices into a `MixtureDataset`) and cuts each slice into ``accumulation_steps``
    consecutive micro-batches of ``micro_batch_size``. ``len`` is the whole run's micro-batch
    count (``total_steps × accumulation_steps``) whatever the position; iteration starts at the
    loaded step. ``state_dict(step)`` is the core sampler state after ``step`` steps consumed.

    >>> s = MixtureSampler({"a": 10, "b": 3}, 1.0, total_steps=2, batch_size=4)
    >>> from coolmix.integrations.ranks import DataParallel
    >>> mb = MicroBatchSampler(s, micro_batch_size=2, accumulation_steps=2, dp=DataParallel(0, 1))
    >>> len(mb), [len(b) for b in mb]
    (4, [2, 2, 2, 2])
    """

    def __init__(
        self,
        sampler: MixtureSampler,
        micro_batch_size: int,
        accumulation_steps: int = 1,
        *,
        dp: Any = None,
        dataset: MixtureDataset | None = None,
    ) -> None:
        self.micro_batch_size = check_int("micro_batch_size", micro_batch_size, lo=1)
        self.accumulation_steps = check_int("accumulation_steps", accumulation_steps, lo=1)
        self.inner = MixtureBatchSampler(sampler, dp=dp, dataset=dataset)
        if self.inner.batch_size != self.micro_batch_size * self.accumulation_steps:
            raise ConfigError(
                "micro_batch_size",
                micro_batch_size,
                f"× accumulation_steps={accumulation_steps} must equal the per-rank batch "
                f"{self.inner.batch_size} (sampler batch_size / world_size)",
            )

    @property
    def sampler(self) -> MixtureSampler:
        return self.inner.sampler

    def __len__(self) -> int:
        return self.inner.sampler.total_steps * self.accumulation_steps

    def __iter__(self) -> Iterator[list[int]]:
        m = self.micro_batch_size
        for flat in self.inner:
            for k in range(self.accumulation_steps):
                yield flat[k * m : (k + 1) * m]

    def state_dict(self, step: int | None = None) -> dict[str, Any]:
        return self.inner.state_dict(step=step)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.inner.load_state_dict(state)


def per_example_loss(
    logits: torch.Tensor, labels: torch.Tensor, shift: bool, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_t ℓ_bt, n_b): per-example summed cross-entropy and target-token counts (labels -100 skipped).

    ``shift``: position t predicts label t+1 (causal LMs). 2-D logits (B, C) with labels (B,) are
    one target per example (sequence classification).
    """
    ce, counted = token_losses(logits, labels, shift, label_smoothing)
    return ce.sum(-1), counted.sum(-1)


def token_losses(
    logits: torch.Tensor, labels: torch.Tensor, shift: bool, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ℓ_bt, counted_bt): per-token cross-entropy (B, T') and its mask (labels != -100), float32.

    ``shift``: position t predicts label t+1 (causal LMs), so T' = T − 1. 2-D logits (B, C) with
    labels (B,) give (B, 1): one target per example (sequence classification).
    """
    if logits.dim() == 2:
        logits, labels = logits[:, None], labels[:, None]
    elif shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    labels = labels.to(logits.device)
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
        label_smoothing=label_smoothing,
    ).view(labels.shape)
    return ce, (labels != IGNORE_INDEX).to(ce.dtype)


def token_domains(domains: torch.Tensor, labels: torch.Tensor, shift: bool) -> torch.Tensor:
    """Domain ids aligned with `token_losses`: (B,) kept; (B, T) cut like the labels (the target's id).

    Per-token ids must match the labels' shape; `PAD_DOMAIN` (−1) marks padding.
    """
    if domains.dim() == 1:
        if domains.shape[0] != labels.shape[0]:
            raise ConfigError("domain", tuple(domains.shape), f"needs one id per row ({labels.shape[0]})")
        return domains.long()
    if domains.dim() != 2 or labels.dim() != 2 or domains.shape != labels.shape:
        why = f"per-token domain ids must have the labels' shape {tuple(labels.shape)}"
        raise ConfigError("domain", tuple(domains.shape), why)
    return (domains[:, 1:] if shift else domains).long()


def target_counts(labels: torch.Tensor, shift: bool) -> torch.Tensor:
    """n_b, the target tokens per example, without a forward pass (the step's normaliser needs it)."""
    if labels.dim() == 1:
        return (labels != IGNORE_INDEX).long()
    if shift:
        labels = labels[:, 1:]
    return (labels != IGNORE_INDEX).sum(-1).long()


def _as_distribution(d: Distribution | float | Mapping[str, Any] | str, field: str) -> Distribution:
    """The core coercer (`coolmix.distributions.as_distribution`); a bad τ number is named ``field``."""
    if isinstance(d, (int, float, np.integer, np.floating)) and not isinstance(d, bool):
        return Temperature(check_tau(d, field))
    return as_distribution(d, field)


def _pad_id(model: Any, processing_class: Any) -> int:
    """Pad id for the default collator: the tokenizer's, else the model config's, else 0.

    Padded positions are masked (attention 0, labels -100), so any id in the vocabulary will do.
    """
    config = getattr(model, "config", None)
    vocab = getattr(config, "vocab_size", None)
    for owner in (processing_class, config):
        v = getattr(owner, "pad_token_id", None) if owner is not None else None
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0 and (vocab is None or v < vocab):
            return v
    return 0
