"""torchtitan adapter: a coolmix-scheduled dataloader and a per-domain weighted loss.

Which hook. torchtitan 0.3.0 (PyPI) predates the Grain data path (pytorch/torchtitan #4088): it
has no ``components/data`` and no ``DatasetConfig.build -> grain.MapDataset``, so this adapter
implements the 0.3.0 protocol, ``torchtitan.components.dataloader.BaseDataLoader`` (``Stateful``:
``__iter__ -> ({"input", "positions"}, labels)``, ``state_dict``, ``load_state_dict``), as a
``ParallelAwareDataloader`` (torchdata's ``StatefulDataLoader``; workers, pinning, snapshots).
Once a torchtitan release ships the Grain path, `coolmix.integrations.grain.mix` is its hook.

`CoolmixDataLoader` packs each rank's rows with `coolmix.integrations.streams.PackedStreams`
(documents of the domain with the largest token deficit, per-token domain ids, exact resume
mid-document). One coolmix step is one *optimizer* step: the loader packs ``local_batch_size ×
microbatches`` rows per step and hands them out as ``microbatches`` batches (set it to gradient
accumulation × pipeline microbatches), so ``total_steps`` and Cooldown's ``at`` are in torchtitan's
``training.steps``. Its state is torchtitan's (per dp rank, same dp degree on resume: torchtitan
refuses another one) plus the number of steps delivered.

Loss weights. torchtitan calls ``loss_fn(pred, labels, global_valid_tokens)``: the domains cannot
travel in the input dict (every key there becomes a model kwarg). So with ``vocab_size`` set the
loader *encodes the domain in the labels*: a counted label y of domain d becomes y + V·(d + 1)
(`encode_labels`; ignored positions stay -100). The encoding follows the labels through gradient
accumulation, pipeline microbatches, device moves and context-parallel sharding. `DomainWeightedLoss`
decodes it and returns Σ_j w_{d_j}·ℓ_j / global_valid_tokens, the paper's unbiased scalarised
mean (`coolmix.weighted_loss`, ``reduction="mean"`` over the global batch); plain labels (< V,
e.g. validation data) get weight 1. The weights are a `LossWeights` shared by the loader and the
loss configs: static, or a function of the step, set by the loader when it hands out a step's
first microbatch (torchtitan fetches all microbatches of a step before the first forward).

torch and torchtitan are imported when a class is first used; ``import coolmix`` imports neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.errors import ConfigError
from coolmix.packing import IGNORE_INDEX, as_tokens
from coolmix.validate import check_int
from coolmix.weighting import weights_array

__all__ = [
    "IGNORE_INDEX",
    "CoolmixDataLoader",  # noqa: F822 (defined on first access: PEP 562 __getattr__)
    "DomainWeightedLoss",  # noqa: F822
    "LossWeights",
    "decode_labels",
    "encode_labels",
]

DELIVERED_KEY = "coolmix_steps_delivered"


class LossWeights:
    """Per-domain loss weights of the step in flight: fixed, or ``fn(step)`` (aligned with the names).

    The loader calls `at` with the step whose microbatches it starts handing out; the loss reads
    `current`. Share one instance between `CoolmixDataLoader.Config` and `DomainWeightedLoss.Config`.

    >>> lw = LossWeights(lambda t: [1.0, 4.0] if t < 10 else [1.0, 1.0], names=["en", "sw"])
    >>> lw.at(3); lw.current.tolist()
    [1.0, 4.0]
    """

    def __init__(
        self,
        weights: Mapping[str, float] | Sequence[float] | np.ndarray | Callable[[int], Any],
        names: Sequence[str],
    ) -> None:
        if isinstance(names, str) or not isinstance(names, Sequence) or not names:
            raise ConfigError("names", names, "must be the domain names, in the loader's order")
        self.names = tuple(names)
        self.fn = weights if callable(weights) else None
        self.step = 0
        self.current = weights_array(self.fn(0) if self.fn else weights, self.names)  # type: ignore[arg-type]

    def at(self, step: int) -> None:
        """Make ``current`` the weights of ``step`` (a no-op for fixed weights)."""
        self.step = check_int("step", step, lo=0)
        if self.fn is not None:
            self.current = weights_array(self.fn(self.step), self.names)


def encode_labels(labels: Any, domain_ids: Any, vocab_size: int) -> Any:
    """labels + V·(domain + 1) where a label is counted (not -100) and its domain id is >= 0.

    Tensors or numpy arrays; every label but -100 must be in [0, ``vocab_size``) (else a ConfigError).
    """
    v = check_int("vocab_size", vocab_size, lo=1)
    real = labels != IGNORE_INDEX
    if real.any():  # decoding tells a tagged label by label >= V, so every real label must be < V
        top, low = int(labels[real].max()), int(labels[real].min())
        if top >= v:
            raise ConfigError("vocab_size", v, f"token id {top} in the labels is >= vocab_size")
        if low < 0:
            raise ConfigError("labels", low, f"a label must be a token id in [0, {v}) or {IGNORE_INDEX}")
    counted = real & (domain_ids >= 0)
    if counted.any() and (int(domain_ids[counted].max()) + 2) * v > 2**63 - 1:
        raise ConfigError("vocab_size", v, "vocab_size × (domains + 1) overflows int64 labels")
    enc = labels + v * (domain_ids + 1)
    if hasattr(labels, "new_tensor"):
        return labels.where(~counted, enc)
    return np.where(counted, enc, labels)


def decode_labels(labels: Any, vocab_size: int) -> tuple[Any, Any]:
    """(token labels, domain ids): the inverse of `encode_labels`; plain labels and -100 get id -1."""
    v = check_int("vocab_size", vocab_size, lo=1)
    tagged = labels >= v
    dom = labels // v - 1
    tok = labels - v * (dom + 1)
    if hasattr(labels, "new_tensor"):
        return labels.where(~tagged, tok), dom.where(tagged, dom.new_full((), -1))
    return np.where(tagged, tok, labels), np.where(tagged, dom, -1)


def _tokenizer_transform(tokenizer: Any, text_key: str) -> Callable[[Any], Any]:
    """Item -> token ids: text (or ``item[text_key]``) through torchtitan's tokenizer, else as is."""

    def tokens(item: Any) -> Any:
        if isinstance(item, Mapping) and text_key in item:
            item = item[text_key]
        if isinstance(item, str):
            if tokenizer is None:
                raise ConfigError("tokenizer", None, "text items need the trainer's tokenizer")
            return tokenizer.encode(item, add_bos=True, add_eos=True)
        return as_tokens(item)

    return tokens


_CLASSES: dict[str, type] = {}


def _classes() -> dict[str, type]:
    """The torchtitan-derived classes, defined on first use (torchtitan and torch imported here)."""
    if _CLASSES:
        return _CLASSES
    from dataclasses import dataclass, field

    import torch
    import torch.nn.functional as F
    from torch.utils.data import IterableDataset
    from torchtitan.components.dataloader import ParallelAwareDataloader
    from torchtitan.components.loss import BaseLoss

    from coolmix.integrations.ranks import DataParallel
    from coolmix.integrations.streams import PackedStreams

    class _StepStream(IterableDataset):
        """One tensor triple (input, positions, labels) of (rows, T) per step; the state is the packer's."""

        def __init__(self, streams: PackedStreams, vocab_size: int | None) -> None:
            self.streams, self.vocab_size = streams, vocab_size

        def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
            for b in self.streams:
                labels = b["labels"]
                if self.vocab_size is not None:
                    labels = encode_labels(labels, b["domain_ids"], self.vocab_size)
                yield (torch.from_numpy(b["input_ids"]), torch.from_numpy(b["position_ids"]),
                       torch.from_numpy(np.ascontiguousarray(labels)))

        def state_dict(self) -> dict[str, Any]:
            return self.streams.state_dict()

        def load_state_dict(self, state: Mapping[str, Any]) -> None:
            self.streams.load_state_dict(state)

    class CoolmixDataLoader(ParallelAwareDataloader):
        """torchtitan dataloader over coolmix-packed rows (see the module docstring).

        ``sources``: domain -> a `PackedStreams` source (list, generator factory, HF
        ``IterableDataset``, shard directory...) of token-id lists, texts or ``{text_key: text}``
        (tokenised with the trainer's tokenizer, BOS and EOS added).
        """

        @dataclass(kw_only=True, slots=True)
        class Config(ParallelAwareDataloader.Config):
            sources: Mapping[str, Any] = field(default_factory=dict)
            """Domain name -> source of documents."""
            sizes: Mapping[str, float] = field(default_factory=dict)
            """Domain name -> size (tokens or documents): what τ is applied to."""
            schedule: Any = 1.0
            """A coolmix schedule, a τ, or a schedule dict (Cooldown(hot=5, cold=1, at=0.5)...)."""
            total_steps: int = 1
            """Optimizer steps (torchtitan's training.steps): the schedule's time axis."""
            microbatches: int = 1
            """Dataloader batches per optimizer step: gradient accumulation × PP microbatches."""
            vocab_size: int | None = None
            """Set: labels carry the domain (`encode_labels`) for `DomainWeightedLoss`."""
            loss_weights: LossWeights | None = None
            """Shared with `DomainWeightedLoss.Config`: told each step as it is handed out."""
            text_key: str = "text"
            long_docs: str = "split"

        def __init__(
            self,
            config: CoolmixDataLoader.Config,
            *,
            dp_world_size: int,
            dp_rank: int,
            tokenizer: Any = None,
            seq_len: int,
            local_batch_size: int,
            snapshot_every_n_steps: int | None = 1,
            **kwargs: Any,
        ) -> None:
            self.microbatches = check_int("microbatches", config.microbatches, lo=1)
            self.local_batch_size = check_int("local_batch_size", local_batch_size, lo=1)
            if config.vocab_size is not None:
                check_int("vocab_size", config.vocab_size, lo=1)
            self.loss_weights = config.loss_weights
            streams = PackedStreams(
                config.sources,
                config.sizes,
                config.schedule,
                config.total_steps,
                rows=self.local_batch_size * self.microbatches * dp_world_size,
                seq_len=seq_len,
                dp=DataParallel(dp_rank, dp_world_size),
                transform=_tokenizer_transform(tokenizer, config.text_key),
                long_docs=config.long_docs,  # type: ignore[arg-type]
            )
            if self.loss_weights is not None and tuple(self.loss_weights.names) != tuple(streams.names):
                raise ConfigError("loss_weights.names", self.loss_weights.names, f"expected {streams.names}")
            self.names = streams.names
            self._delivered = 0  # steps whose microbatches were all handed out
            snap = snapshot_every_n_steps
            super().__init__(
                _StepStream(streams, config.vocab_size),
                dp_rank=dp_rank,
                dp_world_size=dp_world_size,
                batch_size=None,
                num_workers=config.num_workers,
                persistent_workers=config.persistent_workers,
                pin_memory=config.pin_memory,
                prefetch_factor=config.prefetch_factor,
                snapshot_every_n_steps=None if snap is None else max(1, snap // self.microbatches),
            )

        def __iter__(self) -> Iterator[tuple[dict[str, Any], Any]]:
            m, b = self.microbatches, self.local_batch_size
            for inputs, positions, labels in super().__iter__():
                if self.loss_weights is not None:
                    self.loss_weights.at(self._delivered)
                self._mid_step = True
                for k in range(m):
                    rows = slice(k * b, (k + 1) * b)
                    if k == m - 1:  # the step is fully handed out before its last microbatch leaves
                        self._delivered += 1
                        self._mid_step = False
                    yield {"input": inputs[rows], "positions": positions[rows]}, labels[rows]

        _mid_step = False

        def state_dict(self) -> dict[str, Any]:
            if self._mid_step:
                why = "the loader is inside a step's microbatches; checkpoint between optimizer steps"
                raise ConfigError("state_dict", self._delivered, why)
            return {**super().state_dict(), DELIVERED_KEY: self._delivered}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            if state_dict:
                self._delivered = check_int(DELIVERED_KEY, state_dict.get(DELIVERED_KEY, 0), lo=0)
            super().load_state_dict({k: v for k, v in state_dict.items() if k != DELIVERED_KEY})

    class DomainWeightedLoss(BaseLoss):
        """Cross-entropy with per-token domain weights: Σ_j w_{d_j}·ℓ_j (/ global_valid_tokens).

        Labels encoded by `encode_labels` carry d_j; plain labels (< ``vocab_size``) weigh 1.
        ``pred`` must be plain logits (B, T, V): not a vocab-sharded DTensor (loss parallel).
        """

        @dataclass(kw_only=True, slots=True)
        class Config(BaseLoss.Config):
            vocab_size: int = 0
            """The model's vocabulary size V (the label encoding's base)."""
            weights: LossWeights | None = None
            """Per-domain weights (shared with the loader's config)."""

        def __init__(self, config: DomainWeightedLoss.Config, *, compile_config: Any = None) -> None:
            self.vocab_size = check_int("vocab_size", config.vocab_size, lo=1)
            if not isinstance(config.weights, LossWeights):
                raise ConfigError("weights", config.weights, "must be a coolmix LossWeights")
            self.weights = config.weights
            self.fn = self._token_sum
            self._maybe_compile(compile_config)

        def _token_sum(self, pred: Any, labels: Any, w: Any) -> Any:
            tok, dom = decode_labels(labels, self.vocab_size)
            ce = F.cross_entropy(
                pred.flatten(0, 1).float(), tok.flatten(), reduction="none", ignore_index=IGNORE_INDEX
            )
            tw = torch.where(dom >= 0, w[dom.clamp(min=0)], torch.ones((), dtype=w.dtype, device=w.device))
            return (ce * tw.flatten()).sum()

        def __call__(
            self, pred: Any, labels: Any, global_valid_tokens: Any = None, **kwargs: Any
        ) -> tuple[Any, dict[str, Any]]:
            if type(pred).__name__ == "DTensor":
                raise ConfigError("pred", "DTensor", "vocab-sharded logits (loss parallel) are not supported")
            w = torch.as_tensor(self.weights.current, dtype=torch.float32, device=pred.device)
            loss = self.fn(pred, labels, w)
            if global_valid_tokens is not None:
                loss = loss / global_valid_tokens
            return loss, {}

    for cls in (CoolmixDataLoader, DomainWeightedLoss, _StepStream):
        cls.__module__ = __name__  # pickle (spawned workers) finds them through __getattr__
    _StepStream.__qualname__ = "_StepStream"
    _CLASSES.update(
        CoolmixDataLoader=CoolmixDataLoader, DomainWeightedLoss=DomainWeightedLoss, _StepStream=_StepStream
    )
    return _CLASSES


def __getattr__(name: str) -> Any:  # PEP 562: the torchtitan classes, created on first access
    if name in ("CoolmixDataLoader", "DomainWeightedLoss", "_StepStream"):
        return _classes()[name]
    raise AttributeError(name)
